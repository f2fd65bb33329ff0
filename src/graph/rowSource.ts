/**
 * A weight matrix read a band of rows at a time, so quantizing or writing a big weight never needs a float32 copy
 * of the whole of it (Qwen2.5-0.5B's embedding is 136M values: 545 MB as float32, 272 MB as the bf16 on disk).
 * Hugging Face Linear weights are [out, in]: one row per output feature, which is exactly the row order of
 * MatMulNBits' B [N, K] and of ggml's [out, in] tensors.
 */
import { bf16ToF32, f16ToF32 } from '../formats/halfFloat.js';
import type { WeightStore } from '../formats/weights.js';
import type { Tensor } from '../util/tensor.js';

export interface RowSource {
  rows: number;
  cols: number;
  /** Rows [start, start + count) as row-major float32 (a fresh array or a view; callers only read it). */
  read(start: number, count: number): Float32Array;
  /**
   * The whole transpose [cols, rows], when the source already holds it (GPT-2's Conv1D weights are stored that
   * way): transposeRows returns it as it is instead of transposing twice.
   */
  transposed?(): Float32Array;
}

/** Rows of a float32 [rows, cols] tensor already in memory (views, no copy). */
export function tensorRows(t: Tensor<'float32'>): RowSource {
  if (t.shape.length !== 2) throw new Error(`internal: tensorRows needs a 2-D tensor, got [${t.shape}]`);
  const [rows, cols] = t.shape;
  return { rows, cols, read: (start, count) => t.data.subarray(start * cols, (start + count) * cols) };
}

/** Rows of an fp16 or bf16 matrix given as its bit patterns: each band is widened on its own. */
export function halfRows(bits: Uint16Array, shape: [number, number], kind: 'bf16' | 'f16'): RowSource {
  const [rows, cols] = shape;
  const widen = kind === 'bf16' ? bf16ToF32 : f16ToF32;
  return { rows, cols, read: (start, count) => widen(bits.subarray(start * cols, (start + count) * cols)) };
}

/**
 * Rows of a 2-D weight of a store: positioned reads of just those rows where the store can (safetensors,
 * `readRows`), else the whole tensor once (then views of it).
 */
export function storeRows(store: WeightStore, name: string): RowSource {
  const shape = store.shape(name);
  if (shape.length !== 2) throw new Error(`internal: ${name} is [${shape}], not a matrix`);
  const [rows, cols] = shape;
  if (store.readRows) {
    const readRows = store.readRows.bind(store);
    return { rows, cols, read: (start, count) => readRows(name, start, count).data };
  }
  let whole: RowSource | undefined;
  return { rows, cols, read: (start, count) => (whole ??= tensorRows(store.get(name))).read(start, count) };
}

/** Sources with the same column count seen as one matrix, stacked along rows (fused QKV or gate/up weights). */
export function stackRows(parts: RowSource[]): RowSource {
  const cols = parts[0].cols;
  if (parts.some((p) => p.cols !== cols)) throw new Error(`internal: stacked rows differ in width`);
  const rows = parts.reduce((n, p) => n + p.rows, 0);
  return {
    rows,
    cols,
    read(start, count) {
      const out = new Float32Array(count * cols);
      let at = 0; // first row of the current part in the stacked matrix
      let filled = 0;
      for (const p of parts) {
        const lo = Math.max(start, at);
        const hi = Math.min(start + count, at + p.rows);
        if (lo < hi) {
          out.set(p.read(lo - at, hi - lo), filled * cols);
          filled += hi - lo;
        }
        at += p.rows;
      }
      return out;
    },
  };
}

/** Rows [start, start + count) of a source, as a source of its own (a head's rows of a fused weight). */
export function sliceRows(src: RowSource, start: number, count: number): RowSource {
  if (start < 0 || count < 0 || start + count > src.rows)
    throw new Error(`internal: rows ${start}..${start + count} of a ${src.rows}-row source`);
  return { rows: count, cols: src.cols, read: (s, n) => src.read(start + s, n) };
}

/**
 * Rows of `src` in another order: row i of the result is row order[i] of `src` (a weight-layout fix done while
 * loading, e.g. GPT-J's interleaved rotary pairs regrouped into halves). Reads one source row at a time.
 */
export function permutedRows(src: RowSource, order: readonly number[]): RowSource {
  if (order.length !== src.rows) throw new Error(`internal: a row order of ${order.length} for ${src.rows} rows`);
  const cols = src.cols;
  return {
    rows: src.rows,
    cols,
    read(start, count) {
      const out = new Float32Array(count * cols);
      for (let i = 0; i < count; i++) out.set(src.read(order[start + i]!, 1), i * cols);
      return out;
    },
  };
}

/**
 * Rows of the transpose of a [rows, cols] float32 tensor: GPT-2's Conv1D stores [in, out], MatMulNBits wants
 * [out, in]. Each band is transposed on its own (the source is already in memory).
 */
export function transposedRows(t: Tensor<'float32'>): RowSource {
  const [r, c] = t.shape;
  return {
    rows: c,
    cols: r,
    transposed: () => t.data,
    read(start, count) {
      const out = new Float32Array(count * r);
      for (let i = 0; i < r; i++) {
        const src = i * c + start;
        for (let j = 0; j < count; j++) out[j * r + i] = t.data[src + j];
      }
      return out;
    },
  };
}

/**
 * The float32 transpose [cols, rows] of a row source, filled band by band: what a float32 MatMul wants of an HF
 * Linear weight [out, in] (MatMul multiplies by [in, out]). Holds the result and one band.
 */
export function transposeRows(src: RowSource): Float32Array {
  if (src.transposed) return src.transposed();
  const { rows, cols } = src;
  const out = new Float32Array(rows * cols);
  const band = Math.max(1, Math.floor((1 << 20) / Math.max(1, cols)));
  for (let r0 = 0; r0 < rows; r0 += band) {
    const count = Math.min(band, rows - r0);
    const x = src.read(r0, count);
    for (let r = 0; r < count; r++) for (let c = 0; c < cols; c++) out[c * rows + r0 + r] = x[r * cols + c];
  }
  return out;
}
