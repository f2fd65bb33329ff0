/**
 * Graph pieces every decoder shares: the inputs of the graph contract (docs/ARCHITECTURE.md), the attention
 * mask, RoPE, attention over a KV cache, and the steered LM head. Each architecture file composes these.
 */
import { GraphBuilder, MS_DOMAIN } from '../graph/builder.js';
import type { DecoderConfig } from './config.js';
import type { Tensor } from '../util/tensor.js';
import { ropeCosSin } from './rope.js';

export interface ContractInputs {
  inputIds: string; // int64 [B, T]
  positionIds: string; // int64 [B, T]
  seqlensK: string; // int32 [B]: each row's total length after this call, minus 1
  totalSeq: string; // int32 scalar: the longest row's total length
  logitsIndex: string; // int64 [B, n]
  past: { key: string; value: string }[];
}

export function declareInputs(g: GraphBuilder, cfg: DecoderConfig): ContractInputs {
  const past = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const shape = ['batch', cfg.numKvHeads, 'capacity', cfg.headDim];
    past.push({ key: g.input(`past.${i}.key`, 'float32', shape), value: g.input(`past.${i}.value`, 'float32', shape) });
  }
  return {
    inputIds: g.input('input_ids', 'int64', ['batch', 'seq']),
    positionIds: g.input('position_ids', 'int64', ['batch', 'seq']),
    seqlensK: g.input('seqlens_k', 'int32', ['batch']),
    totalSeq: g.input('total_sequence_length', 'int32', []),
    logitsIndex: g.input('logits_index', 'int64', ['batch', 'n_logits']),
    past,
  };
}

/**
 * cos, sin tables [B, T, 1, rot/2] for the given positions, gathered from [maxPositions, rot/2] tables that
 * rope.ts computes in float64 (scaling and yarn's attention factor included).
 */
export function ropeTables(g: GraphBuilder, cfg: DecoderConfig, positionIds: string): { cos: string; sin: string } {
  const table = ropeCosSin(cfg, Array.from({ length: cfg.maxPositions }, (_, p) => p));
  const cosT = g.weight('rope.cos', { dtype: 'float32', shape: table.shape, data: Float32Array.from(table.cos) });
  const sinT = g.weight('rope.sin', { dtype: 'float32', shape: table.shape, data: Float32Array.from(table.sin) });
  const axes = g.constI64([2]);
  return {
    cos: g.op('Unsqueeze', [g.op('Gather', [cosT, positionIds], { axis: 0 }), axes]),
    sin: g.op('Unsqueeze', [g.op('Gather', [sinT, positionIds], { axis: 0 }), axes]),
  };
}

/**
 * HF rotate_half RoPE on x [B, T, N*hd] over the first `rotaryDim` channels of each head (partial rotary keeps
 * the rest): with x1, x2 the two halves of the rotated part, out = [x1·cos − x2·sin, x2·cos + x1·sin, x_pass].
 */
export function applyRope(g: GraphBuilder, x: string, n: number, cos: string, sin: string, rotaryDim: number, headDim: number): string {
  const half = rotaryDim / 2;
  const heads = g.op('Reshape', [x, g.constI64([0, 0, n, headDim])]); // [B,T,N,hd]
  const parts = rotaryDim < headDim ? [half, half, headDim - rotaryDim] : [half, half];
  const [x1, x2, pass] = g.opN('Split', [heads, g.constI64(parts)], { axis: -1 }, { outputs: parts.length });
  const r1 = g.op('Sub', [g.op('Mul', [x1, cos]), g.op('Mul', [x2, sin])]);
  const r2 = g.op('Add', [g.op('Mul', [x2, cos]), g.op('Mul', [x1, sin])]);
  const rotated = g.op('Concat', pass ? [r1, r2, pass] : [r1, r2], { axis: -1 });
  return g.op('Reshape', [rotated, g.constI64([0, 0, n * headDim])]);
}

/**
 * Causal attention over the KV cache with ORT's fused GroupQueryAttention: q [B,T,H*hd], k, v [B,T,kvH*hd]
 * (RoPE already applied) → [B,T,H*hd]. Query head h uses KV head h // (H/kvH), as transformers' repeat_kv.
 * The runtime binds `present.{i}.*` to the same buffers as `past.{i}.*`, so GQA writes each row's new keys at
 * that row's own length (seqlens_k) in place: no cache copy per step, and rows of different lengths need no
 * padding mask (prompts are right-padded; a row never attends past its length).
 */
export function cachedAttention(g: GraphBuilder, cfg: DecoderConfig, layer: number, inp: ContractInputs, q: string, k: string, v: string): string {
  const shape = ['batch', cfg.numKvHeads, 'capacity', cfg.headDim];
  const attrs: Record<string, number> = { num_heads: cfg.numHeads, kv_num_heads: cfg.numKvHeads, scale: 1 / Math.sqrt(cfg.headDim) };
  if (cfg.slidingWindow) attrs.local_window_size = cfg.slidingWindow;
  const [out] = g.opN(
    'GroupQueryAttention',
    [q, k, v, inp.past[layer].key, inp.past[layer].value, inp.seqlensK, inp.totalSeq],
    attrs,
    { domain: MS_DOMAIN, outputs: [g.fresh('attn'), `present.${layer}.key`, `present.${layer}.value`] },
  );
  g.output(`present.${layer}.key`, `present.${layer}.key`, 'float32', shape);
  g.output(`present.${layer}.value`, `present.${layer}.value`, 'float32', shape);
  return out;
}

/** Transpose a [rows, cols] weight to [cols, rows] (HF Linear stores [out, in]; MatMul wants [in, out]). */
export function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return { dtype: 'float32', shape: [c, r], data: out };
}

/** Concatenate [in, out_i] matrices along the output axis (fused QKV / gate-up projections). */
export function concatCols(ts: Tensor[]): Tensor {
  const rows = ts[0].shape[0];
  const cols = ts.reduce((n, t) => n + t.shape[1], 0);
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    let off = i * cols;
    for (const t of ts) {
      const c = t.shape[1];
      out.set(t.data.subarray(i * c, (i + 1) * c), off);
      off += c;
    }
  }
  return { dtype: 'float32', shape: [rows, cols], data: out };
}

export function concat1d(ts: Tensor[]): Tensor {
  const n = ts.reduce((s, t) => s + t.data.length, 0);
  const out = new Float32Array(n);
  let off = 0;
  for (const t of ts) {
    out.set(t.data, off);
    off += t.data.length;
  }
  return { dtype: 'float32', shape: [n], data: out };
}

/** x·W (+ b) with W already [in, out]. */
export function linear(g: GraphBuilder, x: string, w: string, b?: string): string {
  const y = g.op('MatMul', [x, w]);
  return b ? g.op('Add', [y, b]) : y;
}

/**
 * The end of every decoder: emits `hidden` (final normed state, unsteered), then at each row's
 * `logits_index` positions applies the packed steer h' = h + ((h·P1)⊙scale)·P2ᵀ (docs/ARCHITECTURE.md) and
 * the LM head logits = h'·Eᵀ. `headWeight` is Eᵀ [d, V]: MatMul over [in, out] reads it ~3× faster than Gemm
 * with transB at batch 1 (measured: 4.6 vs 15.6 ms for GPT-2's head, bench in docs/PERFORMANCE.md).
 */
export function steeredHead(g: GraphBuilder, cfg: DecoderConfig, inp: ContractInputs, hidden: string, headWeight: string): void {
  const d = cfg.hiddenSize;
  g.output(hidden, 'hidden', 'float32', ['batch', 'seq', d]);
  const p1 = g.input('steer_p1', 'float32', [d, 'steer_k']);
  const p2t = g.input('steer_p2t', 'float32', ['steer_k', d]);
  const scale = g.input('steer_scale', 'float32', ['batch', 'steer_k']);
  // Row b's positions index the flattened [B*T, d] hidden at b*T + pos.
  const shape = g.op('Shape', ['hidden']);
  const B = g.op('Gather', [shape, g.constI64([0])], { axis: 0 }); // [1]
  const T = g.op('Gather', [shape, g.constI64([1])], { axis: 0 }); // [1]
  const rowStart = g.op('Mul', [g.op('Range', [g.constI64([0], []), g.op('Squeeze', [B]), g.constI64([1], [])]), T]); // [B]
  const flatIdx = g.op('Add', [inp.logitsIndex, g.op('Unsqueeze', [rowStart, g.constI64([1])])]); // [B, n]
  const flatHidden = g.op('Reshape', ['hidden', g.constI64([-1, d])]);
  const h = g.op('Gather', [flatHidden, flatIdx], { axis: 0 }); // [B, n, d]
  const coeff = g.op('Mul', [g.op('MatMul', [h, p1]), g.op('Unsqueeze', [scale, g.constI64([1])])]); // [B,n,K]
  const steered = g.op('Add', [h, g.op('MatMul', [coeff, p2t])]);
  g.output(g.op('MatMul', [steered, headWeight]), 'logits', 'float32', ['batch', 'n_logits', cfg.vocabSize]);
}

/**
 * The input embedding lookup from the transposed table Eᵀ [d, V] (tied heads keep one copy of E, laid out
 * for the LM head): Gather along axis 1 gives [d, B, T] → [B, T, d].
 */
export function embedFromTransposed(g: GraphBuilder, embT: string, ids: string): string {
  return g.op('Transpose', [g.op('Gather', [embT, ids], { axis: 1 })], { perm: [1, 2, 0] });
}

export { MS_DOMAIN };
