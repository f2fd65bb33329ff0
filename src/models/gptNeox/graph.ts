/**
 * GPT-NeoX (Pythia) as an ONNX graph, following transformers' GPTNeoXForCausalLM: LayerNorm, fused
 * query_key_value laid out per head as [head, (q|k|v), head_dim], partial rotary (rotary_pct), exact GELU,
 * and the parallel residual x + attn(ln1(x)) + mlp(ln2(x)) when use_parallel_residual is set.
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import type { Tensor } from '../../util/tensor.js';
import { headWeightName } from './config.js';
import {
  activation,
  applyRope,
  cachedAttention,
  declareInputs,
  linear,
  ropeTables,
  steeredHead,
  transpose2d,
} from '../common.js';

/** Reorder NeoX's per-head interleaved rows (h, part, j) into (part, h, j): q | k | v blocks. */
function deinterleaveQkv(t: Tensor, H: number, hd: number): Tensor {
  const cols = t.shape.length === 2 ? t.shape[1] : 1;
  const out = new Float32Array(t.data.length);
  for (let h = 0; h < H; h++)
    for (let part = 0; part < 3; part++)
      for (let j = 0; j < hd; j++) {
        const src = ((h * 3 + part) * hd + j) * cols;
        const dst = ((part * H + h) * hd + j) * cols;
        out.set(t.data.subarray(src, src + cols), dst);
      }
  return { dtype: 'float32', shape: [...t.shape], data: out };
}

export function buildGptNeoxGraph(cfg: DecoderConfig, w: WeightStore): GraphBuilder {
  const g = new GraphBuilder('gpt_neox');
  const inp = declareInputs(g, cfg);
  const { numHeads: H, headDim: hd } = cfg;
  const rope = cfg.rope!;
  const { cos, sin } = ropeTables(g, cfg, inp.positionIds);
  const W = (name: string) => g.weight(name, w.get(name));
  const WT = (name: string) => g.weight(name, transpose2d(w.get(name)));
  const layerNorm = (x: string, p: string) =>
    g.op('LayerNormalization', [x, W(`${p}.weight`), W(`${p}.bias`)], { axis: -1, epsilon: cfg.normEps });

  let x = g.op('Gather', [W('gpt_neox.embed_in.weight'), inp.inputIds], { axis: 0 });
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `gpt_neox.layers.${i}`;
    const qkvW = g.weight(
      `${p}.qkv.weight`,
      transpose2d(deinterleaveQkv(w.get(`${p}.attention.query_key_value.weight`), H, hd)),
    );
    const qkvB = cfg.qkvBias
      ? g.weight(`${p}.qkv.bias`, deinterleaveQkv(w.get(`${p}.attention.query_key_value.bias`), H, hd))
      : undefined;
    const qkv = linear(g, layerNorm(x, `${p}.input_layernorm`), qkvW, qkvB);
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([H * hd, H * hd, H * hd])], { axis: -1 }, { outputs: 3 });
    const qr = applyRope(g, q, H, cos, sin, rope.rotaryDim, hd);
    const kr = applyRope(g, k, H, cos, sin, rope.rotaryDim, hd);
    const att = cachedAttention(g, cfg, i, inp, qr, kr, v);
    const attOut = linear(
      g,
      att,
      WT(`${p}.attention.dense.weight`),
      cfg.outBias ? W(`${p}.attention.dense.bias`) : undefined,
    );
    const mlp = (y: string) => {
      const fc = linear(
        g,
        layerNorm(y, `${p}.post_attention_layernorm`),
        WT(`${p}.mlp.dense_h_to_4h.weight`),
        W(`${p}.mlp.dense_h_to_4h.bias`),
      );
      return linear(
        g,
        activation(g, cfg.activation, fc),
        WT(`${p}.mlp.dense_4h_to_h.weight`),
        W(`${p}.mlp.dense_4h_to_h.bias`),
      );
    };
    if (cfg.parallelResidual) {
      x = g.op('Add', [g.op('Add', [x, attOut]), mlp(x)]);
    } else {
      const y = g.op('Add', [x, attOut]);
      x = g.op('Add', [y, mlp(y)]);
    }
  }
  const hidden = layerNorm(x, 'gpt_neox.final_layer_norm');
  steeredHead(g, cfg, inp, hidden, g.weight('embed_out.weight_t', transpose2d(w.get(headWeightName(cfg)))));
  return g;
}
