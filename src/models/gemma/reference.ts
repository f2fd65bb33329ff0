/**
 * The Gemma 2 / Gemma 3 (text) forward in plain TypeScript, float64, following transformers' Gemma2ForCausalLM
 * and Gemma3ForCausalLM for one sequence:
 *   x = embed(ids) · √d                                  (√d in the embedding's dtype: embeddingScale)
 *   per layer:  h = norm(x);  q, k, v = proj(h);  q, k = qk_norm(q, k) (Gemma 3);  q, k = rope(q, k)
 *               x += norm(o_proj(attn(q, k, v)))         scores · query_pre_attn_scalar^−½, soft-capped (Gemma 2),
 *                                                        windowed in sliding layers (their own RoPE in Gemma 3)
 *               x += norm(down(gelu_tanh(gate(norm(x))) · up(norm(x))))
 *   hidden = norm(x);  logits = cap·tanh(hidden·Eᵀ / cap)  (final_logit_softcapping; none in Gemma 3)
 * Every norm is Gemma's RMSNorm: x / √(mean(x²) + eps) · (1 + w), in float32 in transformers.
 */
import type { WeightStore } from '../../formats/weights.js';
import type { Tensor } from '../../util/tensor.js';
import type { DecoderConfig } from '../config.js';
import { ropeCosSin } from '../rope.js';
import {
  activate,
  add,
  checkIds,
  embed,
  headRmsNorm,
  linear,
  mul,
  positions,
  rmsNorm,
  ropeAttention,
  toTensor,
  type Mat,
  type ReferenceOutput,
} from '../referenceOps.js';
import { embeddingScale, hasQkNorm, headWeightName } from './config.js';

/** Gemma's RMSNorm gain 1 + w (transformers computes it in float32, as this float32 tensor holds it). */
export function onePlus(w: Tensor): Tensor {
  return { dtype: 'float32', shape: w.shape, data: Float32Array.from(w.data, (v) => 1 + v) };
}

/** cap·tanh(x/cap) elementwise. */
export function softcapped(x: Mat, cap: number | undefined): Mat {
  if (cap === undefined) return x;
  return { rows: x.rows, cols: x.cols, data: x.data.map((v) => cap * Math.tanh(v / cap)) };
}

export function referenceForward(cfg: DecoderConfig, weights: WeightStore, ids: number[]): ReferenceOutput {
  checkIds(cfg, ids);
  const w = (name: string) => weights.get(name);
  const bias = (name: string) => (cfg.qkvBias ? w(name) : undefined);
  const { numHeads: H, numKvHeads: kvH, headDim: hd, normEps: eps } = cfg;
  const norm = (x: Mat, name: string) => rmsNorm(x, onePlus(w(name)), eps);
  const globalRope = ropeCosSin(cfg, positions(ids));
  const localRope = cfg.localRope ? ropeCosSin({ ...cfg, rope: cfg.localRope }, positions(ids)) : globalRope;

  const scale = embeddingScale(cfg, weights);
  const e = embed(w('model.embed_tokens.weight'), ids);
  let x: Mat = { rows: e.rows, cols: e.cols, data: e.data.map((v) => v * scale) };
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;

    // attention, between its two norms
    const h = norm(x, p + 'input_layernorm.weight');
    let q = linear(h, w(p + 'self_attn.q_proj.weight'), bias(p + 'self_attn.q_proj.bias'));
    let k = linear(h, w(p + 'self_attn.k_proj.weight'), bias(p + 'self_attn.k_proj.bias'));
    const v = linear(h, w(p + 'self_attn.v_proj.weight'), bias(p + 'self_attn.v_proj.bias'));
    if (hasQkNorm(cfg)) {
      q = headRmsNorm(q, H, hd, onePlus(w(p + 'self_attn.q_norm.weight')), eps);
      k = headRmsNorm(k, kvH, hd, onePlus(w(p + 'self_attn.k_norm.weight')), eps);
    }
    const cs = cfg.localRope?.layers.includes(i) ? localRope : globalRope;
    const att = ropeAttention(cfg, i, q, k, v, cs); // scores · query_pre_attn_scalar^−½, soft-capped (Gemma 2)
    const o = linear(att, w(p + 'self_attn.o_proj.weight'), bias(p + 'self_attn.o_proj.bias'));
    x = add(x, norm(o, p + 'post_attention_layernorm.weight'));

    // GeGLU MLP, between its two norms
    const h2 = norm(x, p + 'pre_feedforward_layernorm.weight');
    const gate = linear(h2, w(p + 'mlp.gate_proj.weight'));
    const up = linear(h2, w(p + 'mlp.up_proj.weight'));
    const down = linear(mul(activate(cfg.activation, gate), up), w(p + 'mlp.down_proj.weight'));
    x = add(x, norm(down, p + 'post_feedforward_layernorm.weight'));
  }

  const hidden = norm(x, 'model.norm.weight');
  const logits = softcapped(linear(hidden, w(headWeightName(cfg))), cfg.finalLogitSoftcap);
  return { logits: toTensor(logits), hidden: toTensor(hidden) };
}
