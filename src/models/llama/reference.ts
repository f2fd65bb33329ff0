/**
 * The Llama-family forward (llama, mistral, qwen2) in plain TypeScript, float64, following transformers'
 * LlamaForCausalLM for one sequence with full causal attention:
 *   x = embed(ids)
 *   per layer:  x += o_proj(attn(rope(q), rope(k), v))   with q, k, v from rmsnorm(x)
 *               x += down(silu(gate(h)) · up(h))          with h = rmsnorm(x)
 *   hidden = rmsnorm(x);  logits = hidden · Eᵀ
 */
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import { ropeCosSin } from '../rope.js';
import {
  activate,
  add,
  checkIds,
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
  const bias = (name: string, present: boolean) => (present ? w(name) : undefined);
  const eps = cfg.normEps;
  const cs = ropeCosSin(cfg, positions(ids));

  let x = embed(w('model.embed_tokens.weight'), ids);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;

    // attention
    const h = rmsNorm(x, w(p + 'input_layernorm.weight'), eps);
    const q = linear(h, w(p + 'self_attn.q_proj.weight'), bias(p + 'self_attn.q_proj.bias', cfg.qkvBias));
    const k = linear(h, w(p + 'self_attn.k_proj.weight'), bias(p + 'self_attn.k_proj.bias', cfg.qkvBias));
    const v = linear(h, w(p + 'self_attn.v_proj.weight'), bias(p + 'self_attn.v_proj.bias', cfg.qkvBias));
    const att = ropeAttention(cfg, i, q, k, v, cs);
    x = add(x, linear(att, w(p + 'self_attn.o_proj.weight'), bias(p + 'self_attn.o_proj.bias', cfg.outBias)));

    // gated MLP
    const h2 = rmsNorm(x, w(p + 'post_attention_layernorm.weight'), eps);
    const gate = linear(h2, w(p + 'mlp.gate_proj.weight'), bias(p + 'mlp.gate_proj.bias', cfg.mlpBias));
    const up = linear(h2, w(p + 'mlp.up_proj.weight'), bias(p + 'mlp.up_proj.bias', cfg.mlpBias));
    x = add(
      x,
      linear(
        mul(activate(cfg.activation, gate), up),
        w(p + 'mlp.down_proj.weight'),
        bias(p + 'mlp.down_proj.bias', cfg.mlpBias),
      ),
    );
  }

  const hidden = rmsNorm(x, w('model.norm.weight'), eps);
  const logits = linear(hidden, weights.get(headWeightName(cfg)));
  return { logits: toTensor(logits), hidden: toTensor(hidden) };
}
