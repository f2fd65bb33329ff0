/**
 * GPT-J forward in plain TypeScript, float64, following transformers' GPTJForCausalLM for one sequence:
 *   per layer:  h = ln_1(x);   x = x + out_proj(attn(rot(q_proj(h)), rot(k_proj(h)), v_proj(h))) + fc_out(act(fc_in(h)))
 *   hidden = ln_f(x);  logits = hidden · lm_headᵀ + lm_head.bias
 * with GPT-J's own rotation (apply_rotary_pos_emb): on the first rotary_dim channels of each head, pairs
 * (2i, 2i+1) turn by angle position·θ_i, sin/cos repeat-interleaved:  x·cos + rotate_every_two(x)·sin.
 */
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import { ropeCosSin, type CosSin } from '../rope.js';
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
import { HEAD_BIAS, headWeightName } from './config.js';

/** rotate_every_two: out[2i] = x[2i]·cos_i − x[2i+1]·sin_i, out[2i+1] = x[2i+1]·cos_i + x[2i]·sin_i. */
function rotateEveryTwo(x: Mat, n: number, hd: number, rotaryDim: number, cs: CosSin): Mat {
  const out: Mat = { rows: x.rows, cols: x.cols, data: x.data.slice() };
  const half = rotaryDim / 2;
  for (let t = 0; t < x.rows; t++) {
    for (let h = 0; h < n; h++) {
      const base = t * x.cols + h * hd;
      for (let i = 0; i < half; i++) {
        const c = cs.cos[t * half + i];
        const s = cs.sin[t * half + i];
        const a = x.data[base + 2 * i];
        const b = x.data[base + 2 * i + 1];
        out.data[base + 2 * i] = a * c - b * s;
        out.data[base + 2 * i + 1] = b * c + a * s;
      }
    }
  }
  return out;
}

export function referenceForward(cfg: DecoderConfig, weights: WeightStore, ids: number[]): ReferenceOutput {
  checkIds(cfg, ids);
  const w = (name: string) => weights.get(name); // canonical names: `transformer.` prefixed (config.ts)
  const { numHeads: H, headDim: hd } = cfg;
  const rotaryDim = cfg.rope!.rotaryDim;
  const cs = ropeCosSin(cfg, positions(ids));
  const rot = (m: Mat) => rotateEveryTwo(m, H, hd, rotaryDim, cs);

  let x = embed(w('transformer.wte.weight'), ids);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `transformer.h.${i}`;
    const h = layerNorm(x, w(`${p}.ln_1.weight`), w(`${p}.ln_1.bias`), cfg.normEps);
    const q = rot(linear(h, w(`${p}.attn.q_proj.weight`)));
    const k = rot(linear(h, w(`${p}.attn.k_proj.weight`)));
    const att = linear(
      causalAttention(q, k, linear(h, w(`${p}.attn.v_proj.weight`)), H, H, hd),
      w(`${p}.attn.out_proj.weight`),
    );
    const fc = linear(h, w(`${p}.mlp.fc_in.weight`), w(`${p}.mlp.fc_in.bias`));
    const mlp = linear(activate(cfg.activation, fc), w(`${p}.mlp.fc_out.weight`), w(`${p}.mlp.fc_out.bias`));
    x = add(x, att, mlp);
  }

  const hidden = layerNorm(x, w('transformer.ln_f.weight'), w('transformer.ln_f.bias'), cfg.normEps);
  const logits = linear(hidden, w(headWeightName(cfg)), w(HEAD_BIAS));
  return { logits: toTensor(logits), hidden: toTensor(hidden) };
}
