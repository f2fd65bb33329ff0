/**
 * Qwen3 decoder as an ONNX graph, the forward of reference.ts:
 *   x = embed(ids)
 *   per layer:  x += o_proj(attn(rope(q_norm(q)), rope(k_norm(k)), v))   on rmsnorm(x)
 *               x += down(silu(gate(·)) · up(·))                         on rmsnorm(x)
 *   hidden = rmsnorm(x);  logits = steer(hidden)·Eᵀ
 * Every weight matrix goes through linearLayer / embeddingLookup, so the build's precision applies.
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { GraphBuildOptions } from '../../graph/buildOptions.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  declareInputs,
  fusedQkv,
  gatedMlp,
  outProjection,
  perHeadRmsNorm,
  qkvNames,
  rmsNorm,
  ropeAttention,
  ropeTables,
  stackedBias,
  steeredHead,
} from '../common.js';
import { vocabularyEnds } from '../embeddings.js';
import { headWeightName } from './config.js';

export function buildQwen3Graph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder(cfg.modelType);
  const inp = declareInputs(g, cfg);
  const { numHeads: H, numKvHeads: kvH, headDim: hd, normEps: eps } = cfg;
  const rope = ropeTables(g, cfg, inp.positionIds);
  const gain = (name: string) => g.weight(name, w.get(name));
  const rmsnorm = (x: string, name: string) => rmsNorm(g, x, gain(name), eps);

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
    const a = `${p}.self_attn`;
    // q, k, v in one projection: [H·hd + 2·kvH·hd, d] stacked from the three [out, d] weights.
    const qkvB = cfg.qkvBias ? stackedBias(g, w, `${a}.qkv.bias`, qkvNames(a, 'bias')) : undefined;
    const h = rmsnorm(x, `${p}.input_layernorm.weight`);
    const [q, k, v] = fusedQkv(g, cfg, w, build, a, `${a}.qkv`, h, qkvB);
    const qn = perHeadRmsNorm(g, q, H, hd, gain(`${a}.q_norm.weight`), eps); // q_norm [hd], before RoPE
    const kn = perHeadRmsNorm(g, k, kvH, hd, gain(`${a}.k_norm.weight`), eps);
    const att = ropeAttention(g, cfg, i, inp, rope, qn, kn, v);
    x = g.op('Add', [x, outProjection(g, cfg, w, build, a, att)]); // o_proj [d, H·hd]

    // gate and up in one projection [2I, d]; silu(gate) · up; down [d, I].
    x = g.op('Add', [x, gatedMlp(g, cfg, w, build, `${p}.mlp`, rmsnorm(x, `${p}.post_attention_layernorm.weight`))]);
  }

  steeredHead(g, cfg, inp, rmsnorm(x, 'model.norm.weight'), ends.head);
  return g;
}
