/**
 * The building blocks of the plain-TypeScript reference forwards (<arch>/reference.ts):
 * float64 matrices and the few ops a decoder needs, with transformers' semantics. Slow and obvious on purpose:
 * these are the ground truth the ONNX graphs are tested against, so every op reads like its equation.
 */
import { LmSteerError } from '../util/errors.js';
import { mat, type Mat } from '../util/linalg.js';
import { tensor, type Tensor } from '../util/tensor.js';
import type { DecoderConfig } from './config.js';
import type { CosSin } from './rope.js';

/** Matrices here are util/linalg.ts' row-major float64 `Mat` [rows, cols]: one row per token. */
export { mat, type Mat };

export interface ReferenceOutput {
  /** [T, V] */
  logits: Tensor;
  /** [T, d]: the final hidden state, after the final norm (the input of the LM head). */
  hidden: Tensor;
}

export function toTensor(x: Mat): Tensor {
  return tensor([x.rows, x.cols], Float32Array.from(x.data));
}

/** The positions 0..T−1 of a sequence of T tokens (the reference forward runs one sequence from position 0). */
export function positions(ids: readonly number[]): number[] {
  return ids.map((_, t) => t);
}

/** ids must be token ids of this model; positions beyond a learned position table do not exist. */
export function checkIds(cfg: DecoderConfig, ids: readonly number[]): void {
  if (ids.length === 0)
    throw new LmSteerError('BAD_ARGUMENT', 'referenceForward: ids is empty', 'pass at least one token id');
  ids.forEach((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `referenceForward: token id ${id} at position ${t} is outside the vocabulary [0, ${cfg.vocabSize})`,
        "use ids from this model's tokenizer",
      );
    }
  });
  if (ids.length > cfg.maxPositions) {
    throw new LmSteerError(
      'LIMIT',
      `referenceForward: ${ids.length} tokens exceed the model's ${cfg.maxPositions} positions`,
      'pass a shorter sequence',
    );
  }
}

/** Rows `ids` of an embedding table [V, d]. */
export function embed(table: Tensor, ids: readonly number[]): Mat {
  const d = table.shape[1];
  const out = mat(ids.length, d);
  ids.forEach((id, t) => {
    for (let j = 0; j < d; j++) out.data[t * d + j] = table.data[id * d + j];
  });
  return out;
}

/**
 * y = x·Wᵀ + b for torch nn.Linear weights stored [out, in] (`layout` 'out_in'), or y = x·W + b for GPT-2's
 * Conv1D weights stored [in, out] ('in_out').
 */
export function linear(x: Mat, w: Tensor, b?: Tensor, layout: 'out_in' | 'in_out' = 'out_in'): Mat {
  const [nIn, nOut] = layout === 'out_in' ? [w.shape[1], w.shape[0]] : [w.shape[0], w.shape[1]];
  if (nIn !== x.cols) throw new Error(`linear: input has ${x.cols} columns, weight [${w.shape}] expects ${nIn}`);
  const out = mat(x.rows, nOut);
  const W = w.data;
  for (let t = 0; t < x.rows; t++) {
    for (let o = 0; o < nOut; o++) {
      let s = b ? b.data[o] : 0;
      for (let i = 0; i < nIn; i++) s += x.data[t * nIn + i] * (layout === 'out_in' ? W[o * nIn + i] : W[i * nOut + o]);
      out.data[t * nOut + o] = s;
    }
  }
  return out;
}

export function add(...xs: Mat[]): Mat {
  const out = mat(xs[0].rows, xs[0].cols);
  for (const x of xs) for (let i = 0; i < out.data.length; i++) out.data[i] += x.data[i];
  return out;
}

export function mul(a: Mat, b: Mat): Mat {
  const out = mat(a.rows, a.cols);
  for (let i = 0; i < out.data.length; i++) out.data[i] = a.data[i] * b.data[i];
  return out;
}

/** Columns [from, from + n) of x. */
export function cols(x: Mat, from: number, n: number): Mat {
  const out = mat(x.rows, n);
  for (let t = 0; t < x.rows; t++) for (let j = 0; j < n; j++) out.data[t * n + j] = x.data[t * x.cols + from + j];
  return out;
}

/** LayerNorm over each row: (x − mean)/sqrt(var + eps)·w + b, biased variance (torch). */
export function layerNorm(x: Mat, w: Tensor, b: Tensor, eps: number): Mat {
  const d = x.cols;
  const out = mat(x.rows, d);
  for (let t = 0; t < x.rows; t++) {
    const row = x.data.subarray(t * d, (t + 1) * d);
    let mean = 0;
    for (const v of row) mean += v;
    mean /= d;
    let variance = 0;
    for (const v of row) variance += (v - mean) ** 2;
    variance /= d;
    const r = 1 / Math.sqrt(variance + eps);
    for (let j = 0; j < d; j++) out.data[t * d + j] = (row[j] - mean) * r * w.data[j] + b.data[j];
  }
  return out;
}

/** RMSNorm (LlamaRMSNorm): x / sqrt(mean(x²) + eps) · w. */
export function rmsNorm(x: Mat, w: Tensor, eps: number): Mat {
  const d = x.cols;
  const out = mat(x.rows, d);
  for (let t = 0; t < x.rows; t++) {
    let ms = 0;
    for (let j = 0; j < d; j++) ms += x.data[t * d + j] ** 2;
    const r = 1 / Math.sqrt(ms / d + eps);
    for (let j = 0; j < d; j++) out.data[t * d + j] = x.data[t * d + j] * r * w.data[j];
  }
  return out;
}

/** RMSNorm over each of the `n` heads of x [T, n·hd] with one gain [hd] (Qwen3's and Gemma 3's q/k norms). */
export function headRmsNorm(x: Mat, n: number, hd: number, w: Tensor, eps: number): Mat {
  const out = mat(x.rows, x.cols);
  for (let t = 0; t < x.rows; t++) {
    for (let h = 0; h < n; h++) {
      const base = t * x.cols + h * hd;
      let ms = 0;
      for (let j = 0; j < hd; j++) ms += x.data[base + j] ** 2;
      const r = 1 / Math.sqrt(ms / hd + eps);
      for (let j = 0; j < hd; j++) out.data[base + j] = x.data[base + j] * r * w.data[j];
    }
  }
  return out;
}

/**
 * erf to double precision: erf(x) = 2/√π · e^(−x²) · Σ_n 2ⁿ x^(2n+1) / (1·3·…·(2n+1)). Every term is
 * positive, so nothing cancels; beyond |x| = 6, erf is ±1 in float64. (JavaScript has no Math.erf.)
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; term > sum * 1e-17; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
}

/** The MLP activations of transformers' ACT2FN that lmsteer supports. */
export function activate(kind: DecoderConfig['activation'], x: Mat): Mat {
  const f: (v: number) => number = {
    // gelu_new / gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    gelu_new: (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
    // exact GELU: x·Φ(x) = 0.5·x·(1 + erf(x/√2))
    gelu: (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
    silu: (v: number) => v / (1 + Math.exp(-v)),
    relu: (v: number) => Math.max(v, 0),
  }[kind];
  return { rows: x.rows, cols: x.cols, data: x.data.map(f) };
}

/** HF rotate_half RoPE on each of the `n` heads of x [T, n·hd], over the first rotaryDim channels of a head. */
export function applyRope(x: Mat, n: number, hd: number, rotaryDim: number, cs: CosSin): Mat {
  const out: Mat = { rows: x.rows, cols: x.cols, data: x.data.slice() };
  const half = rotaryDim / 2;
  for (let t = 0; t < x.rows; t++) {
    for (let h = 0; h < n; h++) {
      const base = t * x.cols + h * hd;
      for (let i = 0; i < half; i++) {
        const c = cs.cos[t * half + i];
        const s = cs.sin[t * half + i];
        const x1 = x.data[base + i];
        const x2 = x.data[base + half + i];
        out.data[base + i] = x1 * c - x2 * s;
        out.data[base + half + i] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/**
 * Causal multi-head attention, softmax(q·kᵀ/√hd)·v per head. q [T, H·hd]; k, v [T, kvH·hd]: with grouped-query
 * attention query head h reads kv head ⌊h / (H/kvH)⌋ (transformers' repeat_kv). Returns [T, H·hd].
 */
export function causalAttention(
  q: Mat,
  k: Mat,
  v: Mat,
  H: number,
  kvH: number,
  hd: number,
  window = Infinity,
  opts: { scale?: number; softcap?: number } = {},
): Mat {
  const T = q.rows;
  const group = H / kvH;
  const out = mat(T, H * hd);
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  const cap = opts.softcap;
  const scores = new Float64Array(T);
  for (let h = 0; h < H; h++) {
    const kh = Math.floor(h / group);
    for (let t = 0; t < T; t++) {
      let max = -Infinity;
      const lo = Math.max(0, t - window + 1); // a sliding window drops keys window or more positions back
      for (let s = lo; s <= t; s++) {
        let dot = 0;
        for (let j = 0; j < hd; j++) dot += q.data[t * q.cols + h * hd + j] * k.data[s * k.cols + kh * hd + j];
        scores[s] = cap === undefined ? dot * scale : cap * Math.tanh((dot * scale) / cap);
        max = Math.max(max, scores[s]);
      }
      let sum = 0;
      for (let s = lo; s <= t; s++) sum += scores[s] = Math.exp(scores[s] - max);
      for (let s = lo; s <= t; s++) {
        const p = scores[s] / sum;
        for (let j = 0; j < hd; j++) out.data[t * out.cols + h * hd + j] += p * v.data[s * v.cols + kh * hd + j];
      }
    }
  }
  return out;
}

/**
 * Causal attention of `layer` with RoPE (rotate_half, cfg.rope's rotaryDim) on q [T, H·hd] and k [T, kvH·hd] first,
 * in the layer's sliding window where it has one (cfg.slidingWindow) and with cfg.attention's scale and soft-cap.
 * `cs` from ropeCosSin. → [T, H·hd].
 */
export function ropeAttention(cfg: DecoderConfig, layer: number, q: Mat, k: Mat, v: Mat, cs: CosSin): Mat {
  const { numHeads: H, numKvHeads: kvH, headDim: hd } = cfg;
  const rotaryDim = cfg.rope!.rotaryDim;
  const window = cfg.slidingWindow?.layers.includes(layer) ? cfg.slidingWindow.size : Infinity;
  const qr = applyRope(q, H, hd, rotaryDim, cs);
  const kr = applyRope(k, kvH, hd, rotaryDim, cs);
  return causalAttention(qr, kr, v, H, kvH, hd, window, cfg.attention);
}
