/**
 * Phi-3 decoder as an ONNX graph, the forward of reference.ts:
 *   x = embed(ids)
 *   per layer:  x += o_proj(attn(rope(q), rope(k), v))   q | k | v = qkv_proj(rmsnorm(x))
 *               x += down(up · silu(gate))               gate | up = gate_up_proj(rmsnorm(x))
 *   hidden = rmsnorm(x);  logits = steer(hidden)·Eᵀ
 * The checkpoint's fused weights are the graph's fused weights; each goes through linearLayer / embeddingLookup,
 * so the build's precision applies.
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { GraphBuildOptions } from '../../graph/buildOptions.js';
import { CONTRACT } from '../../graph/contract.js';
import { linearLayer } from '../../graph/linear.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  activation,
  declareInputs,
  rmsNorm,
  ropeAttention,
  ropeTables,
  splitLast,
  steeredHead,
  weightRows,
  type ContractInputs,
} from '../common.js';
import { vocabularyEnds } from '../embeddings.js';
import { headWeightName } from './config.js';

/**
 * cos, sin [B, T, 1, rot/2]. LongRoPE: transformers recomputes the frequencies each call from the sequence
 * length (max position + 1): short factors up to original_max_position_embeddings, long ones beyond. Here each
 * row picks its table by its own length (cache + this call's real tokens), so a row never depends on the others
 * in its batch; keys already in the cache keep the rotation they were stored with, as in transformers' cache.
 */
function phi3RopeTables(g: GraphBuilder, cfg: DecoderConfig, inp: ContractInputs): { cos: string; sin: string } {
  const s = cfg.rope!.scaling;
  if (s?.type !== 'longrope') return ropeTables(g, cfg, inp.positionIds);
  const original = s.originalMaxPositions!;
  const short = ropeTables(g, cfg, inp.positionIds, { name: 'rope_short', seqLen: original });
  const long = ropeTables(g, cfg, inp.positionIds, { name: 'rope_long', seqLen: original + 1 });
  const rowLength = g.op('Add', [inp.pastLengths, CONTRACT.keyLengths]); // [B]
  const useLong = g.op('Unsqueeze', [g.op('Greater', [rowLength, g.constI64([original], [])]), g.constI64([1, 2, 3])]);
  return {
    cos: g.op('Where', [useLong, long.cos, short.cos]),
    sin: g.op('Where', [useLong, long.sin, short.sin]),
  };
}

export function buildPhi3Graph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder(cfg.modelType);
  const inp = declareInputs(g, cfg);
  const { numHeads: H, numKvHeads: kvH, headDim: hd, hiddenSize: d, intermediateSize: I, normEps: eps } = cfg;
  const rope = phi3RopeTables(g, cfg, inp);
  const rmsnorm = (x: string, name: string) => rmsNorm(g, x, g.weight(name, w.get(name)), eps);
  const rows = (name: string) => weightRows(w, name);

  const ends = vocabularyEnds(
    g,
    w,
    inp.inputIds,
    { tokens: 'model.embed_tokens.weight', head: headWeightName(cfg) },
    build,
  );
  let x = ends.tokens;

  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const qkvName = `${p}.self_attn.qkv_proj.weight`; // [(H + 2·kvH)·hd, d]
    const h = rmsnorm(x, `${p}.input_layernorm.weight`);
    const qkv = linearLayer(g, h, qkvName, [(H + 2 * kvH) * hd, d], rows(qkvName), build);
    const [q, k, v] = splitLast(g, qkv, [H * hd, kvH * hd, kvH * hd]);
    const att = ropeAttention(g, cfg, i, inp, rope, q, k, v);
    const oName = `${p}.self_attn.o_proj.weight`; // [d, H·hd]
    x = g.op('Add', [x, linearLayer(g, att, oName, [d, H * hd], rows(oName), build)]);

    const guName = `${p}.mlp.gate_up_proj.weight`; // [2I, d]: gate rows, then up rows
    const gu = linearLayer(
      g,
      rmsnorm(x, `${p}.post_attention_layernorm.weight`),
      guName,
      [2 * I, d],
      rows(guName),
      build,
    );
    const [gate, up] = splitLast(g, gu, [I, I]);
    const act = g.op('Mul', [up, activation(g, cfg.activation, gate)]);
    const downName = `${p}.mlp.down_proj.weight`; // [d, I]
    x = g.op('Add', [x, linearLayer(g, act, downName, [d, I], rows(downName), build)]);
  }

  steeredHead(g, cfg, inp, rmsnorm(x, 'model.norm.weight'), ends.head);
  return g;
}
