/**
 * GPT-Neo forward in plain TypeScript, float64, following transformers' GPTNeoForCausalLM for one sequence:
 *   x = wte(ids) + wpe(positions)
 *   per layer:  x += out_proj(attn(q_proj(h), k_proj(h), v_proj(h))) with h = ln_1(x);   x += c_proj(act(c_fc(ln_2(x))))
 *   hidden = ln_f(x);  logits = hidden · wteᵀ
 * Scores are q·kᵀ, unscaled; local layers see keys fewer than window_size positions back (their own included).
 */
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  activate,
  add,
  causalAttention,
  checkIds,
  embed,
  layerNorm,
  linear,
  positions,
  toTensor,
  type Mat,
  type ReferenceOutput,
} from '../referenceOps.js';
import { headWeightName } from './config.js';

export function referenceForward(cfg: DecoderConfig, weights: WeightStore, ids: number[]): ReferenceOutput {
  checkIds(cfg, ids);
  const w = (name: string) => weights.get(name); // canonical names: `transformer.` prefixed (config.ts)
  const lin = (x: Mat, p: string, bias = true) => linear(x, w(`${p}.weight`), bias ? w(`${p}.bias`) : undefined);
  const ln = (x: Mat, p: string) => layerNorm(x, w(`${p}.weight`), w(`${p}.bias`), cfg.normEps);
  const H = cfg.numHeads;
  const hd = cfg.headDim;

  let x = add(embed(w('transformer.wte.weight'), ids), embed(w('transformer.wpe.weight'), positions(ids)));
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `transformer.h.${i}`;
    const a = `${p}.attn.attention`;
    const h = ln(x, `${p}.ln_1`);
    const window = cfg.slidingWindow?.layers.includes(i) ? cfg.slidingWindow.size : Infinity;
    const att = causalAttention(
      lin(h, `${a}.q_proj`, false),
      lin(h, `${a}.k_proj`, false),
      lin(h, `${a}.v_proj`, false),
      H,
      H,
      hd,
      window,
      {
        scale: 1,
      },
    );
    x = add(x, lin(att, `${a}.out_proj`));
    x = add(x, lin(activate(cfg.activation, lin(ln(x, `${p}.ln_2`), `${p}.mlp.c_fc`)), `${p}.mlp.c_proj`));
  }

  const hidden = ln(x, 'transformer.ln_f');
  const logits = linear(hidden, w(headWeightName(cfg)));
  return { logits: toTensor(logits), hidden: toTensor(hidden) };
}
