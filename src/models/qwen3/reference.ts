/**
 * The Qwen3 forward in plain TypeScript, float64, following transformers' Qwen3ForCausalLM for one sequence:
 *   x = embed(ids)
 *   per layer:  x += o_proj(attn(rope(q_norm(q)), rope(k_norm(k)), v))   with q, k, v from rmsnorm(x)
 *               x += down(silu(gate(h)) · up(h))                         with h = rmsnorm(x)
 *   hidden = rmsnorm(x);  logits = hidden · Eᵀ
 * q_norm and k_norm are RMSNorms over each head's head_dim channels, one gain shared by the heads.
 */
import type { WeightStore } from '../../formats/weights.js';
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
  type ReferenceOutput,
} from '../referenceOps.js';
import { headWeightName } from './config.js';

export function referenceForward(cfg: DecoderConfig, weights: WeightStore, ids: number[]): ReferenceOutput {
  checkIds(cfg, ids);
  const w = (name: string) => weights.get(name);
  const bias = (name: string) => (cfg.qkvBias ? w(name) : undefined);
  const { numHeads: H, numKvHeads: kvH, headDim: hd, normEps: eps } = cfg;
  const cs = ropeCosSin(cfg, positions(ids));

  let x = embed(w('model.embed_tokens.weight'), ids);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;

    // attention with per-head q/k norms before RoPE
    const h = rmsNorm(x, w(p + 'input_layernorm.weight'), eps);
    const q = linear(h, w(p + 'self_attn.q_proj.weight'), bias(p + 'self_attn.q_proj.bias'));
    const k = linear(h, w(p + 'self_attn.k_proj.weight'), bias(p + 'self_attn.k_proj.bias'));
    const v = linear(h, w(p + 'self_attn.v_proj.weight'), bias(p + 'self_attn.v_proj.bias'));
    const qn = headRmsNorm(q, H, hd, w(p + 'self_attn.q_norm.weight'), eps);
    const kn = headRmsNorm(k, kvH, hd, w(p + 'self_attn.k_norm.weight'), eps);
    const att = ropeAttention(cfg, i, qn, kn, v, cs);
    x = add(x, linear(att, w(p + 'self_attn.o_proj.weight'), bias(p + 'self_attn.o_proj.bias')));

    // SwiGLU MLP
    const h2 = rmsNorm(x, w(p + 'post_attention_layernorm.weight'), eps);
    const gate = linear(h2, w(p + 'mlp.gate_proj.weight'));
    const up = linear(h2, w(p + 'mlp.up_proj.weight'));
    x = add(x, linear(mul(activate(cfg.activation, gate), up), w(p + 'mlp.down_proj.weight')));
  }

  const hidden = rmsNorm(x, w('model.norm.weight'), eps);
  const logits = linear(hidden, w(headWeightName(cfg)));
  return { logits: toTensor(logits), hidden: toTensor(hidden) };
}
