/**
 * Per-row KV caches as the decoder graphs read them, and the slot pool both decoders build on: keys and values
 * [rows, kvH, cap, hd], so a position's key or value for one head is one contiguous run of hd floats (the
 * runtime appends with contiguous copies). The row axis is outermost, so rows first..first+n-1 are one
 * contiguous block, fed to ORT as a zero-copy view.
 */
import ort from 'onnxruntime-node';
import { LmSteerError } from '../util/errors.js';
import type { KvSlots } from './decoder.js';

export interface KvShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
}

/** Where to find a run's new keys/values: layer → [B', kvH, T, hd] tensors. */
export type NewKv = (layer: number, kind: 'key' | 'value') => ort.Tensor;

export class KvCache {
  key: ort.Tensor[] = [];
  value: ort.Tensor[] = [];
  private readonly kvH: number;
  private readonly hd: number;
  constructor(
    shape: KvShape,
    readonly rows: number,
    public capacity: number,
  ) {
    this.kvH = shape.numKvHeads;
    this.hd = shape.headDim;
    this.capacity = Math.max(1, capacity); // a 0-length axis would give zero-size MatMuls; position 0 is masked
    for (let i = 0; i < shape.numLayers; i++) {
      this.key.push(this.alloc(this.capacity));
      this.value.push(this.alloc(this.capacity));
    }
  }

  private alloc(cap: number): ort.Tensor {
    const { kvH, hd } = this;
    // fill(0) touches every page now: left to the decode loop, the first write into each fresh page faults
    // mid-step, measured at ~40 µs a fault beside ORT's threads (6–23 ms a step at 25 rows × 252 positions).
    return new ort.Tensor('float32', new Float32Array(this.rows * kvH * cap * hd).fill(0), [this.rows, kvH, cap, hd]);
  }

  /** Reallocate at another capacity, keeping the first `keep` positions of every row (all when growing). */
  resize(cap: number, keep = Math.min(cap, this.capacity)): void {
    const { kvH, hd } = this;
    const old = this.capacity;
    const move = (t: ort.Tensor) => {
      const n = this.alloc(cap);
      const src = t.data as Float32Array;
      const dst = n.data as Float32Array;
      if (keep > 0) {
        for (let bh = 0; bh < this.rows * kvH; bh++)
          dst.set(src.subarray(bh * old * hd, bh * old * hd + keep * hd), bh * cap * hd);
      }
      return n;
    };
    this.key = this.key.map(move);
    this.value = this.value.map(move);
    this.capacity = cap;
  }

  /** Rows first..first+n-1 of a layer's keys or values: a zero-copy view [n, kvH, cap, hd]. */
  view(layer: number, kind: 'key' | 'value', first: number, n: number): ort.Tensor {
    const t = (kind === 'key' ? this.key : this.value)[layer]!;
    if (first === 0 && n === this.rows) return t;
    const per = this.kvH * this.capacity * this.hd;
    return new ort.Tensor('float32', (t.data as Float32Array).subarray(first * per, (first + n) * per), [
      n,
      ...t.dims.slice(1),
    ]);
  }

  /**
   * Write a run's new keys/values (`from(layer, kind)` [B', kvH, T, hd]) into the buffers: entry r copies
   * `count[r]` positions of output row `src[r]`, starting at output position `srcStart` (default 0), to row
   * `dst[r]` from position `start[r]`.
   */
  write(from: NewKv, dst: number[], start: number[], count: number[], src: number[], srcStart = 0): void {
    const { kvH, hd } = this;
    const cap = this.capacity;
    for (let r = 0; r < dst.length; r++) {
      if (start[r]! + count[r]! > cap) throw new Error(`internal: KV write past capacity ${cap}`);
    }
    for (let i = 0; i < this.key.length; i++) {
      for (const kind of ['key', 'value'] as const) {
        const out = from(i, kind);
        const T = out.dims[2]!;
        const s = out.data as Float32Array;
        const d = (kind === 'key' ? this.key : this.value)[i]!.data as Float32Array;
        for (let r = 0; r < dst.length; r++) {
          for (let h = 0; h < kvH; h++) {
            const so = ((src[r]! * kvH + h) * T + srcStart) * hd;
            d.set(s.subarray(so, so + count[r]! * hd), ((dst[r]! * kvH + h) * cap + start[r]!) * hd);
          }
        }
      }
    }
  }

  /** Copy the first `len` positions of row `from` into row `to`. */
  moveRow(from: number, to: number, len: number): void {
    const { kvH, hd } = this;
    const cap = this.capacity;
    for (const t of [...this.key, ...this.value]) {
      const d = t.data as Float32Array;
      for (let h = 0; h < kvH; h++) {
        const src = (from * kvH + h) * cap * hd;
        d.copyWithin((to * kvH + h) * cap * hd, src, src + len * hd);
      }
    }
  }

  /** The first `len` positions of `rows`, copied out as [rows.length, kvH, len, hd] (exports that need a dense past). */
  dense(layer: number, kind: 'key' | 'value', rows: number[], len: number): ort.Tensor {
    const { kvH, hd } = this;
    const cap = this.capacity;
    const src = (kind === 'key' ? this.key : this.value)[layer]!.data as Float32Array;
    const out = new Float32Array(rows.length * kvH * len * hd);
    rows.forEach((row, i) => {
      for (let h = 0; h < kvH; h++) {
        const so = (row * kvH + h) * cap * hd;
        out.set(src.subarray(so, so + len * hd), (i * kvH + h) * len * hd);
      }
    });
    return new ort.Tensor('float32', out, [rows.length, kvH, len, hd]);
  }
}

/** Smallest buffer length a pool keeps (so short requests do not reallocate every few tokens). */
const MIN_CAPACITY = 64;

/**
 * What every decoder's KvSlots shares: the KV buffers, one steer-scale row per slot, and the buffer length,
 * which follows the longest row (doubling; back to the minimum when the pool empties): attention reads the
 * whole buffer length (masked past each row's end), so a step costs in proportion to it, not to the tokens
 * in it. Subclasses run the model (prefill, extend).
 */
export abstract class SlotPool implements KvSlots {
  readonly cache: KvCache;
  /** [rows, K]: slot i's steer_scale row. */
  readonly scales: Float32Array;

  constructor(
    shape: KvShape,
    readonly rows: number,
    readonly K: number,
    /** The model's positions: no row grows past them. */
    readonly maxPositions: number,
  ) {
    this.cache = new KvCache(shape, rows, Math.min(MIN_CAPACITY, maxPositions));
    this.scales = new Float32Array(rows * K);
  }

  get capacity(): number {
    return this.cache.capacity;
  }

  reserve(length: number): void {
    if (length > this.maxPositions) {
      throw new LmSteerError(
        'LIMIT',
        `a row reached ${length} tokens, beyond the model's ${this.maxPositions} positions`,
        'ask for fewer new tokens or a shorter prompt',
      );
    }
    if (length <= this.cache.capacity) return;
    this.cache.resize(Math.min(this.maxPositions, Math.max(length, this.cache.capacity * 2)));
  }

  shrink(): void {
    const min = Math.min(MIN_CAPACITY, this.maxPositions);
    if (this.cache.capacity > min) this.cache.resize(min, 0);
  }

  setScale(slot: number, scale: Float32Array | undefined): void {
    if (scale && scale.length !== this.K) throw new Error(`internal: a scale row of ${scale.length} for K = ${this.K}`);
    if (scale) this.scales.set(scale, slot * this.K);
    else this.scales.fill(0, slot * this.K, (slot + 1) * this.K);
  }

  /** Scale rows first..first+n-1 (a view). */
  protected scaleRows(first: number, n: number): Float32Array {
    return this.scales.subarray(first * this.K, (first + n) * this.K);
  }

  /** One scale row per prompt: each prompt's first destination slot. */
  protected scalesOf(slots: number[]): Float32Array {
    const out = new Float32Array(slots.length * this.K);
    slots.forEach((s, i) => out.set(this.scaleRows(s, 1), i * this.K));
    return out;
  }

  /**
   * A prefill's keys/values into the slots: prompt i's positions (row i of `from`) into every slot of dest[i],
   * from position 0. Both decoders run a shared prompt once and fan it out here.
   */
  protected storePrompts(from: NewKv, prompts: number[][], dest: number[][]): void {
    const dst: number[] = [];
    const src: number[] = [];
    dest.forEach((slots, i) => slots.forEach((s) => (dst.push(s), src.push(i))));
    this.cache.write(
      from,
      dst,
      dst.map(() => 0),
      src.map((i) => prompts[i]!.length),
      src,
    );
  }

  move(from: number, to: number, length: number): void {
    if (from === to) return;
    this.cache.moveRow(from, to, length);
    this.scales.copyWithin(to * this.K, from * this.K, (from + 1) * this.K);
  }

  dispose(): void {
    this.cache.key = [];
    this.cache.value = [];
  }

  abstract prefill(prompts: number[][], dest: number[][], logits: boolean): Promise<Float32Array[]>;
  abstract extend(first: number, tokens: number[], lengths: number[]): Promise<Float32Array>;
}
