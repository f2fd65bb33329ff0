/**
 * An independent float64 Llama forward over ONE right-padded batch row under transformers' attention mask
 * (what `model(input_ids, attention_mask)` computes for the reference's training batches): query t attends to
 * key s iff s ≤ t, s < n (the row's real length) and, in sliding-window layers, t − s < window. Position ids are
 * 0..T−1, pads included. Written per position with explicit loops, on purpose unlike the graph code.
 */
import type { WeightStore } from '../../src/formats/weights.js';
import type { DecoderConfig } from '../../src/models/config.js';
import { ropeCosSin } from '../../src/models/rope.js';
import { activate, applyRope, embed, linear, mat, mul, add, rmsNorm, type Mat } from '../../src/models/referenceOps.js';

function maskedAttention(q: Mat, k: Mat, v: Mat, cfg: DecoderConfig, n: number, window: number): Mat {
  const { numHeads: H, numKvHeads: kvH, headDim: hd } = cfg;
  const T = q.rows;
  const out = mat(T, H * hd);
  for (let h = 0; h < H; h++) {
    const kh = Math.floor(h / (H / kvH));
    for (let t = 0; t < T; t++) {
      const keys: number[] = [];
      for (let s = 0; s <= t; s++) if (s < n && t - s < window) keys.push(s);
      if (keys.length === 0) throw new Error(`query ${t} has no key (a fully masked row)`);
      const scores = keys.map((s) => {
        let dot = 0;
        for (let j = 0; j < hd; j++) dot += q.data[t * q.cols + h * hd + j]! * k.data[s * k.cols + kh * hd + j]!;
        return dot / Math.sqrt(hd);
      });
      const max = Math.max(...scores);
      const e = scores.map((x) => Math.exp(x - max));
      const z = e.reduce((a, b) => a + b, 0);
      keys.forEach((s, i) => {
        for (let j = 0; j < hd; j++)
          out.data[t * out.cols + h * hd + j]! += (e[i]! / z) * v.data[s * v.cols + kh * hd + j]!;
      });
    }
  }
  return out;
}

/** Final hidden states [T][d] (after the final norm) of `ids` whose first `n` tokens are real. */
export function maskedLlamaHidden(cfg: DecoderConfig, weights: WeightStore, ids: number[], n: number): Float64Array[] {
  const w = (name: string) => weights.get(name);
  const b = (name: string, present: boolean) => (present ? w(name) : undefined);
  const { numHeads: H, numKvHeads: kvH, headDim: hd, normEps: eps } = cfg;
  const cs = ropeCosSin(
    cfg,
    ids.map((_, t) => t),
  );
  let x = embed(w('model.embed_tokens.weight'), ids);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;
    const h = rmsNorm(x, w(p + 'input_layernorm.weight'), eps);
    const q = applyRope(
      linear(h, w(p + 'self_attn.q_proj.weight'), b(p + 'self_attn.q_proj.bias', cfg.qkvBias)),
      H,
      hd,
      cfg.rope!.rotaryDim,
      cs,
    );
    const k = applyRope(
      linear(h, w(p + 'self_attn.k_proj.weight'), b(p + 'self_attn.k_proj.bias', cfg.qkvBias)),
      kvH,
      hd,
      cfg.rope!.rotaryDim,
      cs,
    );
    const v = linear(h, w(p + 'self_attn.v_proj.weight'), b(p + 'self_attn.v_proj.bias', cfg.qkvBias));
    const window = cfg.slidingWindow?.layers.includes(i) ? cfg.slidingWindow.size : Infinity;
    x = add(
      x,
      linear(
        maskedAttention(q, k, v, cfg, n, window),
        w(p + 'self_attn.o_proj.weight'),
        b(p + 'self_attn.o_proj.bias', cfg.outBias),
      ),
    );
    const h2 = rmsNorm(x, w(p + 'post_attention_layernorm.weight'), eps);
    const gate = linear(h2, w(p + 'mlp.gate_proj.weight'), b(p + 'mlp.gate_proj.bias', cfg.mlpBias));
    const up = linear(h2, w(p + 'mlp.up_proj.weight'), b(p + 'mlp.up_proj.bias', cfg.mlpBias));
    x = add(
      x,
      linear(
        mul(activate(cfg.activation, gate), up),
        w(p + 'mlp.down_proj.weight'),
        b(p + 'mlp.down_proj.bias', cfg.mlpBias),
      ),
    );
  }
  const hidden = rmsNorm(x, w('model.norm.weight'), eps);
  return ids.map((_, t) => hidden.data.slice(t * cfg.hiddenSize, (t + 1) * cfg.hiddenSize));
}
