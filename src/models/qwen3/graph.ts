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
import { headWeightName } from './config.js';

export function buildQwen3Graph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder(cfg.modelType);
  const inp = declareInputs(g, cfg);
  const { numHeads: H, numKvHeads: kvH, headDim: hd, hiddenSize: d, intermediateSize: I, normEps: eps } = cfg;
  const { cos, sin } = ropeTables(g, cfg, inp.positionIds);
  const gain = (name: string) => g.weight(name, w.get(name));
  const rmsnorm = (x: string, name: string) =>
    g.op('SimplifiedLayerNormalization', [x, gain(name)], { axis: -1, epsilon: eps });
  const rows =
    (...names: string[]) =>
    () =>
      stackRows(names.map((n) => storeRows(w, n)));

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
    const qkvB = cfg.qkvBias
      ? g.weight(`${a}.qkv.bias`, concat1d(['q', 'k', 'v'].map((n) => w.get(`${a}.${n}_proj.bias`))))
      : undefined;
    const h = rmsnorm(x, `${p}.input_layernorm.weight`);
    const qkv = linearLayer(
      g,
      h,
      `${a}.qkv.weight`,
      [(H + 2 * kvH) * hd, d],
      rows(`${a}.q_proj.weight`, `${a}.k_proj.weight`, `${a}.v_proj.weight`),
      build,
      qkvB,
    );
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([H * hd, kvH * hd, kvH * hd])], { axis: -1 }, { outputs: 3 });
    const qn = perHeadRmsNorm(g, q, H, hd, gain(`${a}.q_norm.weight`), eps); // q_norm [hd], before RoPE
    const kn = perHeadRmsNorm(g, k, kvH, hd, gain(`${a}.k_norm.weight`), eps);
    const att = cachedAttention(
      g,
      cfg,
      i,
      inp,
      applyRope(g, qn, H, cos, sin, hd, hd),
      applyRope(g, kn, kvH, cos, sin, hd, hd),
      v,
    );
    const oB = cfg.outBias ? g.weight(`${a}.o_proj.bias`, w.get(`${a}.o_proj.bias`)) : undefined;
    x = g.op('Add', [x, linearLayer(g, att, `${a}.o_proj.weight`, [d, H * hd], rows(`${a}.o_proj.weight`), build, oB)]);

    // gate and up in one projection [2I, d]; silu(gate) · up; down [d, I].
    const h2 = rmsnorm(x, `${p}.post_attention_layernorm.weight`);
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
    x = g.op('Add', [
      x,
      linearLayer(g, act, `${p}.mlp.down_proj.weight`, [d, I], rows(`${p}.mlp.down_proj.weight`), build),
    ]);
  }

  steeredHead(g, cfg, inp, rmsnorm(x, 'model.norm.weight'), ends.head);
  return g;
}
