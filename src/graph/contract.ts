/**
 * The decoder graph contract (docs/ARCHITECTURE.md) in one place: the names of its inputs and outputs, which
 * the graph blocks declare (src/models/common.ts), the ONNX-export rewrite adds (src/formats/onnxExport.ts) and
 * the decoders feed (src/runtime/), and the ORT tensors those feeds are made of.
 */
import ort from 'onnxruntime-node';
import type { Tensor } from '../util/tensor.js';

export const CONTRACT = {
  /** int64 [batch, seq], right-padded. */
  inputIds: 'input_ids',
  /** int64 [batch, seq]: row b's token t sits at position past_b + t. */
  positionIds: 'position_ids',
  /** int64 [batch]: valid positions of each row's cache. */
  pastLengths: 'past_lengths',
  /** int64 [batch, n]: which positions of this call get logits, per row. */
  logitsIndex: 'logits_index',
  /**
   * int64 [batch]: this call's tokens at index ≥ key_lengths[b] are padding — masked as keys for every query,
   * as transformers' attention mask does (right-padded training rows); the row's length when nothing is padding.
   */
  keyLengths: 'key_lengths',
  /** float32 [d, K], [K, d], [batch, K]: the packed steer (src/steer/pack.ts). */
  steerP1: 'steer_p1',
  steerP2t: 'steer_p2t',
  steerScale: 'steer_scale',
  /** float32 [batch, n, vocab] at logits_index, of the steered hidden state. */
  logits: 'logits',
  /** float32 [batch, seq, d]: the final hidden state (input of the LM head), unsteered. */
  hidden: 'hidden',
} as const;

/** float32 [batch, kv_heads, capacity, head_dim]: the runtime's KV buffers, read in place. */
export const pastKey = (layer: number) => `past.${layer}.key`;
export const pastValue = (layer: number) => `past.${layer}.value`;
/** float32 [batch, kv_heads, seq, head_dim]: this call's keys (RoPE applied) and values. */
export const newKey = (layer: number) => `new.${layer}.key`;
export const newValue = (layer: number) => `new.${layer}.value`;

export type Feeds = Record<string, ort.Tensor>;

export const i64 = (values: ArrayLike<number>, dims: number[]) =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from(Array.from(values), (v) => BigInt(v)),
    dims,
  );

/** A float32 Tensor as an ORT tensor over the same memory (no copy). */
export const f32 = (t: Tensor) => new ort.Tensor('float32', t.data as Float32Array, t.shape);

/** The steer directions as ORT tensors: made once per loaded steer set, fed every call. */
export interface SteerFeeds {
  p1: ort.Tensor; // [d, K]
  p2t: ort.Tensor; // [K, d]
}

/** No steer: K = 1 column of zeros, so the graph adds exactly 0 (docs/ARCHITECTURE.md). */
export function zeroSteerFeeds(d: number): SteerFeeds {
  return {
    p1: new ort.Tensor('float32', new Float32Array(d), [d, 1]),
    p2t: new ort.Tensor('float32', new Float32Array(d), [1, d]),
  };
}

/** The three steer inputs of one call: shared directions and the rows' scales [batch, K] (no copy). */
export function steerFeeds(dirs: SteerFeeds, scale: Float32Array, batch: number): Feeds {
  const K = dirs.p1.dims[1]!;
  return {
    [CONTRACT.steerP1]: dirs.p1,
    [CONTRACT.steerP2t]: dirs.p2t,
    [CONTRACT.steerScale]: new ort.Tensor('float32', scale, [batch, K]),
  };
}
