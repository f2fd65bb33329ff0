/**
 * Gemma 2 / Gemma 3 (text) decoder as an ONNX graph, the forward of reference.ts:
 *   x = embed(ids) · √d
 *   per layer:  x += norm(o_proj(attn(rope(qk_norm(q)), rope(qk_norm(k)), v)))   on norm(x)
 *               x += norm(down(gelu_tanh(gate(·)) · up(·)))                     on norm(x)
 *   hidden = norm(x);  logits = cap·tanh(steer(hidden)·Eᵀ / cap)
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
import { embeddingScale, hasQkNorm, headWeightName } from './config.js';
import { onePlus } from './reference.js';

export function buildGemmaGraph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder(cfg.modelType);
  const inp = declareInputs(g, cfg);
  const { numHeads: H, numKvHeads: kvH, headDim: hd, normEps: eps } = cfg;
  const globalRope = ropeTables(g, cfg, inp.positionIds);
  const localRope = cfg.localRope
    ? ropeTables(g, cfg, inp.positionIds, { rope: cfg.localRope, name: 'rope_local' })
    : globalRope;
  // Gemma's RMSNorm gain is 1 + w, stored as such (float32, as transformers computes it).
  const gain = (name: string) => g.weight(`${name}+1`, onePlus(w.get(name)));
  const norm = (x: string, name: string) => rmsNorm(g, x, gain(name), eps);

  const { tokens: embedded, head } = vocabularyEnds(
    g,
    w,
    inp.inputIds,
    { tokens: 'model.embed_tokens.weight', head: headWeightName(cfg) },
    build,
  );
  let x = g.op('Mul', [embedded, g.constF32([embeddingScale(cfg, w)], [])]);

  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const a = `${p}.self_attn`;
    // q, k, v in one projection: [H·hd + 2·kvH·hd, d] stacked from the three [out, d] weights.
    const qkvB = cfg.qkvBias ? stackedBias(g, w, `${a}.qkv.bias`, qkvNames(a, 'bias')) : undefined;
    const h = norm(x, `${p}.input_layernorm.weight`);
    const [qRaw, kRaw, v] = fusedQkv(g, cfg, w, build, a, `${a}.qkv`, h, qkvB);
    // Gemma 3: q_norm and k_norm [hd] over each head, before RoPE.
    const qkNorm = hasQkNorm(cfg);
    const q = qkNorm ? perHeadRmsNorm(g, qRaw, H, hd, gain(`${a}.q_norm.weight`), eps) : qRaw;
    const k = qkNorm ? perHeadRmsNorm(g, kRaw, kvH, hd, gain(`${a}.k_norm.weight`), eps) : kRaw;
    const rope = cfg.localRope?.layers.includes(i) ? localRope : globalRope;
    const att = ropeAttention(g, cfg, i, inp, rope, q, k, v, cfg.attention);
    const o = outProjection(g, cfg, w, build, a, att); // o_proj [d, H·hd]
    x = g.op('Add', [x, norm(o, `${p}.post_attention_layernorm.weight`)]);

    // gate and up in one projection [2I, d]; act(gate) · up; down [d, I].
    const down = gatedMlp(g, cfg, w, build, `${p}.mlp`, norm(x, `${p}.pre_feedforward_layernorm.weight`));
    x = g.op('Add', [x, norm(down, `${p}.post_feedforward_layernorm.weight`)]);
  }

  steeredHead(g, cfg, inp, norm(x, 'model.norm.weight'), head, { softcap: cfg.finalLogitSoftcap });
  return g;
}
