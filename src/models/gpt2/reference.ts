/**
 * GPT-2 forward in plain TypeScript, float64, following transformers' GPT2LMHeadModel for one sequence
 * (pre-LayerNorm, learned positions, Conv1D weights stored [in, out]):
 *   x = wte(ids) + wpe(positions)
 *   per layer:  x += c_proj(attn(split(c_attn(ln_1(x)))));   x += mlp.c_proj(gelu_new(c_fc(ln_2(x))))
 *   hidden = ln_f(x);  logits = hidden · wteᵀ
 */
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  activate,
  add,
  causalAttention,
  checkIds,
  cols,
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
  const w = (name: string) => weights.get(name); // canonical names (registry.ts drops the `transformer.` prefix)
  const conv1d = (x: Mat, p: string) => linear(x, w(p + '.weight'), w(p + '.bias'), 'in_out');
  const ln = (x: Mat, p: string) => layerNorm(x, w(p + '.weight'), w(p + '.bias'), cfg.normEps);
  const { numHeads: H, headDim: hd, hiddenSize: d } = cfg;

  let x = add(embed(w('wte.weight'), ids), embed(w('wpe.weight'), positions(ids)));
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `h.${i}`;
    const qkv = conv1d(ln(x, `${p}.ln_1`), `${p}.attn.c_attn`); // [T, 3d]: q | k | v
    const att = causalAttention(cols(qkv, 0, d), cols(qkv, d, d), cols(qkv, 2 * d, d), H, H, hd);
    x = add(x, conv1d(att, `${p}.attn.c_proj`));
    x = add(x, conv1d(activate(cfg.activation, conv1d(ln(x, `${p}.ln_2`), `${p}.mlp.c_fc`)), `${p}.mlp.c_proj`));
  }

  const hidden = ln(x, 'ln_f');
  const logits = linear(hidden, w(headWeightName(cfg)));
  return { logits: toTensor(logits), hidden: toTensor(hidden) };
}
