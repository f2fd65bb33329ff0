/**
 * The Phi-3 forward in plain TypeScript, float64, following transformers' Phi3ForCausalLM for one sequence:
 *   x = embed(ids)
 *   per layer:  q | k | v = qkv_proj(rmsnorm(x));  x += o_proj(attn(rope(q), rope(k), v))
 *               gate | up = gate_up_proj(rmsnorm(x));  x += down(up · silu(gate))
 *   hidden = rmsnorm(x);  logits = hidden · Eᵀ
 * RoPE turns the first rotary_dim channels of each head (partial_rotary_factor); LongRoPE takes its short or
 * long factors from the sequence length, as transformers does for one whole sequence.
 */
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import { ropeCosSin } from '../rope.js';
import {
  activate,
  add,
  checkIds,
  cols,
  embed,
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
  const { numHeads: H, numKvHeads: kvH, headDim: hd, normEps: eps, intermediateSize: I } = cfg;
  const cs = ropeCosSin(cfg, positions(ids));

  let x = embed(w('model.embed_tokens.weight'), ids);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;

    // attention from the fused projection: columns [q | k | v]
    const qkv = linear(rmsNorm(x, w(p + 'input_layernorm.weight'), eps), w(p + 'self_attn.qkv_proj.weight'));
    const q = cols(qkv, 0, H * hd);
    const k = cols(qkv, H * hd, kvH * hd);
    const v = cols(qkv, (H + kvH) * hd, kvH * hd);
    const att = ropeAttention(cfg, i, q, k, v, cs);
    x = add(x, linear(att, w(p + 'self_attn.o_proj.weight')));

    // MLP from the fused projection: columns [gate | up], up · act(gate)
    const gu = linear(rmsNorm(x, w(p + 'post_attention_layernorm.weight'), eps), w(p + 'mlp.gate_up_proj.weight'));
    const act = mul(cols(gu, I, I), activate(cfg.activation, cols(gu, 0, I)));
    x = add(x, linear(act, w(p + 'mlp.down_proj.weight')));
  }

  const hidden = rmsNorm(x, w('model.norm.weight'), eps);
  const logits = linear(hidden, w(headWeightName(cfg)));
  return { logits: toTensor(logits), hidden: toTensor(hidden) };
}
