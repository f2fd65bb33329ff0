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
import { linearLayer } from '../../graph/linear.js';
import { stackRows, storeRows } from '../../graph/rowSource.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  activation,
  applyRope,
  cachedAttention,
  concat1d,
  declareInputs,
  perHeadRmsNorm,
  ropeTables,
  steeredHead,
} from '../common.js';
import { vocabularyEnds } from '../embeddings.js';
import { embeddingScale, hasQkNorm, headWeightName } from './config.js';
import { onePlus } from './reference.js';

export function buildGemmaGraph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder(cfg.modelType);
  const inp = declareInputs(g, cfg);
  const { numHeads: H, numKvHeads: kvH, headDim: hd, hiddenSize: d, intermediateSize: I, normEps: eps } = cfg;
  const globalRope = ropeTables(g, cfg, inp.positionIds);
  const localRope = cfg.localRope
    ? ropeTables(g, cfg, inp.positionIds, { rope: cfg.localRope, name: 'rope_local' })
    : globalRope;
  // Gemma's RMSNorm gain is 1 + w, stored as such (float32, as transformers computes it).
  const gain = (name: string) => g.weight(`${name}+1`, onePlus(w.get(name)));
  const norm = (x: string, name: string) =>
    g.op('SimplifiedLayerNormalization', [x, gain(name)], { axis: -1, epsilon: eps });
  const rows =
    (...names: string[]) =>
    () =>
      stackRows(names.map((n) => storeRows(w, n)));

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
    const qkvB = cfg.qkvBias
      ? g.weight(`${a}.qkv.bias`, concat1d(['q', 'k', 'v'].map((n) => w.get(`${a}.${n}_proj.bias`))))
      : undefined;
    const h = norm(x, `${p}.input_layernorm.weight`);
    const qkv = linearLayer(
      g,
      h,
      `${a}.qkv.weight`,
      [(H + 2 * kvH) * hd, d],
      rows(`${a}.q_proj.weight`, `${a}.k_proj.weight`, `${a}.v_proj.weight`),
      build,
      qkvB,
    );
    const [qRaw, kRaw, v] = g.opN(
      'Split',
      [qkv, g.constI64([H * hd, kvH * hd, kvH * hd])],
      { axis: -1 },
      { outputs: 3 },
    );
    // Gemma 3: q_norm and k_norm [hd] over each head, before RoPE.
    const qkNorm = hasQkNorm(cfg);
    const q = qkNorm ? perHeadRmsNorm(g, qRaw, H, hd, gain(`${a}.q_norm.weight`), eps) : qRaw;
    const k = qkNorm ? perHeadRmsNorm(g, kRaw, kvH, hd, gain(`${a}.k_norm.weight`), eps) : kRaw;
    const { cos, sin } = cfg.localRope?.layers.includes(i) ? localRope : globalRope;
    const att = cachedAttention(
      g,
      cfg,
      i,
      inp,
      applyRope(g, q, H, cos, sin, hd, hd),
      applyRope(g, k, kvH, cos, sin, hd, hd),
      v,
      cfg.attention,
    );
    const oB = cfg.outBias ? g.weight(`${a}.o_proj.bias`, w.get(`${a}.o_proj.bias`)) : undefined;
    const o = linearLayer(g, att, `${a}.o_proj.weight`, [d, H * hd], rows(`${a}.o_proj.weight`), build, oB);
    x = g.op('Add', [x, norm(o, `${p}.post_attention_layernorm.weight`)]);

    // gate and up in one projection [2I, d]; act(gate) · up; down [d, I].
    const h2 = norm(x, `${p}.pre_feedforward_layernorm.weight`);
    const gu = linearLayer(
      g,
      h2,
      `${p}.mlp.gate_up.weight`,
      [2 * I, d],
      rows(`${p}.mlp.gate_proj.weight`, `${p}.mlp.up_proj.weight`),
      build,
    );
    const [gate, up] = g.opN('Split', [gu, g.constI64([I, I])], { axis: -1 }, { outputs: 2 });
    const act = g.op('Mul', [activation(g, cfg.activation, gate), up]);
    const down = linearLayer(g, act, `${p}.mlp.down_proj.weight`, [d, I], rows(`${p}.mlp.down_proj.weight`), build);
    x = g.op('Add', [x, norm(down, `${p}.post_feedforward_layernorm.weight`)]);
  }

  steeredHead(g, cfg, inp, norm(x, 'model.norm.weight'), head, { softcap: cfg.finalLogitSoftcap });
  return g;
}
