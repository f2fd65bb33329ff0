/**
 * GPT-NeoX (Pythia) as an ONNX graph, following transformers' GPTNeoXForCausalLM: LayerNorm, fused
 * query_key_value laid out per head as [head, (q|k|v), head_dim], partial rotary (rotary_pct), exact GELU,
 * and the parallel residual x + attn(ln1(x)) + mlp(ln2(x)) when use_parallel_residual is set.
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { GraphBuildOptions } from '../../graph/buildOptions.js';
import { linearLayer } from '../../graph/linear.js';
import { sliceRows, stackRows, storeRows, type RowSource } from '../../graph/rowSource.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import type { Tensor } from '../../util/tensor.js';
import { headWeightName } from './config.js';
import {
  activation,
  declareInputs,
  layerNorm,
  ropeAttention,
  ropeTables,
  splitLast,
  steeredHead,
  weightRows,
} from '../common.js';
import { vocabularyEnds } from '../embeddings.js';

/** NeoX's query_key_value [3·H·hd, d] rows (h, part, j) seen in (part, h, j) order: q | k | v blocks. */
function deinterleavedRows(src: RowSource, H: number, hd: number): RowSource {
  const parts: RowSource[] = [];
  for (let part = 0; part < 3; part++) for (let h = 0; h < H; h++) parts.push(sliceRows(src, (h * 3 + part) * hd, hd));
  return stackRows(parts);
}

/** The same reordering of the bias [3·H·hd]. */
function deinterleaveBias(t: Tensor, H: number, hd: number): Tensor {
  const out = new Float32Array(t.data.length);
  for (let h = 0; h < H; h++)
    for (let part = 0; part < 3; part++)
      out.set(t.data.subarray((h * 3 + part) * hd, (h * 3 + part + 1) * hd), (part * H + h) * hd);
  return { dtype: 'float32', shape: [...t.shape], data: out };
}

export function buildGptNeoxGraph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder('gpt_neox');
  const inp = declareInputs(g, cfg);
  const { hiddenSize: d, numHeads: H, headDim: hd, intermediateSize: I } = cfg;
  const rope = ropeTables(g, cfg, inp.positionIds);
  const W = (name: string) => g.weight(name, w.get(name));
  const rows = (name: string) => weightRows(w, name);
  const ln = (x: string, p: string) => layerNorm(g, x, W(`${p}.weight`), W(`${p}.bias`), cfg.normEps);
  const dense = (x: string, name: string, shape: [number, number], bias?: string) =>
    linearLayer(g, x, `${name}.weight`, shape, rows(`${name}.weight`), build, bias);

  // embed_out [V, d] (the head's E; embed_in when tied, then also the token lookup table), embed_in [V, d]
  const ends = vocabularyEnds(
    g,
    w,
    inp.inputIds,
    { tokens: 'gpt_neox.embed_in.weight', head: headWeightName(cfg) },
    build,
  );
  let x = ends.tokens;
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `gpt_neox.layers.${i}`;
    const qkvB = cfg.qkvBias
      ? g.weight(`${p}.qkv.bias`, deinterleaveBias(w.get(`${p}.attention.query_key_value.bias`), H, hd))
      : undefined;
    // query_key_value: [3·H·hd, d], per head (q|k|v); reordered to q | k | v rows.
    const qkvRows = () => deinterleavedRows(storeRows(w, `${p}.attention.query_key_value.weight`), H, hd);
    const qkv = linearLayer(g, ln(x, `${p}.input_layernorm`), `${p}.qkv.weight`, [3 * H * hd, d], qkvRows, build, qkvB);
    const [q, k, v] = splitLast(g, qkv, [H * hd, H * hd, H * hd]);
    const att = ropeAttention(g, cfg, i, inp, rope, q, k, v);
    const attOut = dense(
      att,
      `${p}.attention.dense`,
      [d, H * hd],
      cfg.outBias ? W(`${p}.attention.dense.bias`) : undefined,
    ); // dense: [d, H·hd]
    const mlp = (y: string) => {
      const fc = dense(
        ln(y, `${p}.post_attention_layernorm`),
        `${p}.mlp.dense_h_to_4h`,
        [I, d],
        W(`${p}.mlp.dense_h_to_4h.bias`),
      ); // [I, d]
      return dense(
        activation(g, cfg.activation, fc),
        `${p}.mlp.dense_4h_to_h`,
        [d, I],
        W(`${p}.mlp.dense_4h_to_h.bias`),
      ); // [d, I]
    };
    if (cfg.parallelResidual) {
      x = g.op('Add', [g.op('Add', [x, attOut]), mlp(x)]);
    } else {
      const y = g.op('Add', [x, attOut]);
      x = g.op('Add', [y, mlp(y)]);
    }
  }
  const hidden = ln(x, 'gpt_neox.final_layer_norm');
  steeredHead(g, cfg, inp, hidden, ends.head);
  return g;
}
