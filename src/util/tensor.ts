/**
 * The tensor type passed across module boundaries: data with its shape, never a bare array whose shape lives
 * in someone's head. Row-major. Only the dtypes lmsteer stores in memory; fp16/bf16 files are widened on load.
 */
import { LmSteerError } from './errors.js';

export type DType = 'float32' | 'int32' | 'int64';
export type TypedArrayOf<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'int32'
    ? Int32Array
    : BigInt64Array;

export interface Tensor<D extends DType = 'float32'> {
  dtype: D;
  shape: number[];
  data: TypedArrayOf<D>;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function tensor(shape: number[], data?: Float32Array): Tensor<'float32'> {
  const n = numel(shape);
  const d = data ?? new Float32Array(n);
  if (d.length !== n) {
    throw new LmSteerError('SHAPE_MISMATCH', `tensor data has ${d.length} values but shape [${shape}] needs ${n}`);
  }
  return { dtype: 'float32', shape: [...shape], data: d };
}

export function shapeEq(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Throw SHAPE_MISMATCH naming `what` unless `t` has exactly `shape` (-1 matches any size). */
export function expectShape(what: string, t: { shape: number[] }, shape: number[]): void {
  const ok = t.shape.length === shape.length && shape.every((s, i) => s === -1 || s === t.shape[i]);
  if (!ok) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `${what} has shape [${t.shape}], expected [${shape.map((s) => (s === -1 ? '*' : s))}]`,
    );
  }
}

/**
 * The index of the first NaN or ±Inf in `a`, or -1. Reads the bit patterns (exponent all ones), a few times
 * faster than Number.isFinite per element, so checking every weight at load costs little next to reading it.
 */
export function firstNonFinite(a: Float32Array): number {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length); // a Float32Array is always 4-byte aligned
  for (let i = 0; i < bits.length; i++) if ((bits[i]! & 0x7f800000) === 0x7f800000) return i;
  return -1;
}
