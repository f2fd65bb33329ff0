/**
 * Continuous batching for the server: requests join and leave a running batch between decode steps.
 *
 * Every row owns a slot of preallocated KV buffers [maxRows, kvH, cap, hd]; active rows are kept
 * compacted in slots 0..n-1 so a step runs on zero-copy views of the first n rows (the batch axis is
 * outermost). A joining request is prefilled on its own, then its keys/values are copied into the next free
 * slot; a leaving row is replaced by the last active row (one row's cache copied). Each row carries its own
 * `steer_scale` row, so requests with different steer values decode together — the steer sits after the KV
 * cache, so it never invalidates it.
 *
 * The buffers' length `cap` follows the longest active row (doubling, up to `capacity`; back to the minimum
 * when the batch empties): attention reads the whole buffer length (masked past each row's end), so a step
 * costs in proportion to it, not to the tokens in it.
 */
import ort from 'onnxruntime-node';
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import { f32, i64, KvCache, OrtDecoder } from './ortDecoder.js';

export interface RowHandle {
  /** Current slot (changes when rows leave); -1 once removed. */
  slot: number;
  /** Tokens in this row's cache. */
  length: number;
}

export interface ContinuousBatchOptions {
  /** Rows decoded together at most. */
  maxRows: number;
  /** Tokens of context per row at most (prompt + generated); ≤ the model's positions. */
  capacity: number;
  /** Packed steer directions shared by all rows (src/steer/pack.ts); omitted = no steer (K = 1 zeros). */
  steer?: { p1: Tensor; p2t: Tensor };
}

const MIN_CAP = 64;

export class ContinuousBatch {
  private readonly cache: KvCache;
  private readonly rows: RowHandle[] = [];
  private readonly K: number;
  private readonly scale: Float32Array; // [maxRows, K]
  private readonly p1: ort.Tensor;
  private readonly p2t: ort.Tensor;

  constructor(
    private readonly dec: OrtDecoder,
    readonly opts: ContinuousBatchOptions,
  ) {
    const d = dec.hiddenSize;
    if (opts.capacity > dec.cfg.maxPositions) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `batch capacity ${opts.capacity} exceeds the model's ${dec.cfg.maxPositions} positions`,
      );
    }
    this.cache = new KvCache(dec.cfg, opts.maxRows, Math.min(MIN_CAP, opts.capacity));
    this.K = opts.steer ? opts.steer.p1.shape[1] : 1;
    this.p1 = opts.steer ? f32(opts.steer.p1) : new ort.Tensor('float32', new Float32Array(d), [d, 1]);
    this.p2t = opts.steer ? f32(opts.steer.p2t) : new ort.Tensor('float32', new Float32Array(d), [1, d]);
    this.scale = new Float32Array(opts.maxRows * this.K);
  }

  get size(): number {
    return this.rows.length;
  }

  get free(): number {
    return this.opts.maxRows - this.rows.length;
  }

  /**
   * Prefill prompts (together, right-padded) and give each a slot. Returns handles and each prompt's
   * next-token logits [V]. `scales[i]` is prompt i's steer_scale row (length K), zeros when absent.
   */
  async add(
    prompts: number[][],
    scales: (Float32Array | undefined)[] = [],
  ): Promise<{ rows: RowHandle[]; logits: Float32Array[] }> {
    if (prompts.length > this.free)
      throw new Error(`internal: ${prompts.length} rows added to a batch with ${this.free} free slots`);
    this.dec.checkRows(prompts);
    for (const [i, p] of prompts.entries()) {
      if (p.length >= this.opts.capacity) {
        throw new LmSteerError(
          'LIMIT',
          `prompt ${i} has ${p.length} tokens; this server keeps at most ${this.opts.capacity} per request`,
          'shorten the prompt',
        );
      }
    }
    const B = prompts.length;
    const T = Math.max(...prompts.map((p) => p.length));
    this.ensureCap(T + 1);
    const scaleData = new Float32Array(B * this.K);
    scales.forEach((s, i) => s && scaleData.set(s, i * this.K));
    const feeds = this.dec.prefillFeeds(
      prompts,
      prompts.map((p) => [p.length - 1]),
      {
        p1: { dtype: 'float32', shape: [...this.p1.dims], data: this.p1.data as Float32Array },
        p2t: { dtype: 'float32', shape: [...this.p2t.dims], data: this.p2t.data as Float32Array },
        scale: { dtype: 'float32', shape: [B, this.K], data: scaleData },
      },
    );
    // Prefilled on their own (an empty past), then their new keys/values go straight into free slots.
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    new KvCache(this.dec.cfg, B, 1).bind(feeds, fetches);
    const out = await this.dec.session.run(feeds, fetches);
    const V = this.dec.vocabSize;
    const logits = out.logits.data as Float32Array;
    const handles = prompts.map((p, i) => {
      const handle: RowHandle = { slot: this.rows.length, length: p.length };
      this.rows.push(handle);
      this.scale.set(scaleData.subarray(i * this.K, (i + 1) * this.K), handle.slot * this.K);
      return handle;
    });
    this.cache.write(
      out,
      handles.map((h) => h.slot),
      handles.map(() => 0),
      prompts.map((p) => p.length),
    );
    return { rows: handles, logits: prompts.map((_, i) => logits.slice(i * V, (i + 1) * V)) };
  }

  /** One token for every active row (keyed by handle); returns each row's next-token logits [V]. */
  async step(tokens: Map<RowHandle, number>): Promise<Map<RowHandle, Float32Array>> {
    const n = this.rows.length;
    if (n === 0) return new Map();
    if (tokens.size !== n) throw new Error(`internal: step() got ${tokens.size} tokens for ${n} rows`);
    const ids = new Array<number>(n);
    const lengths = new Array<number>(n);
    for (const r of this.rows) {
      const t = tokens.get(r);
      if (t === undefined) throw new Error('internal: step() is missing a row');
      if (r.length + 1 > this.opts.capacity)
        throw new LmSteerError(
          'LIMIT',
          `a request reached this server's context limit of ${this.opts.capacity} tokens`,
        );
      ids[r.slot] = t;
      lengths[r.slot] = r.length;
    }
    this.ensureCap(Math.max(...lengths) + 1);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: i64(ids, [n, 1]),
      position_ids: i64(lengths, [n, 1]),
      past_lengths: i64(lengths, [n]),
      logits_index: i64(new Array(n).fill(0), [n, 1]),
      steer_p1: this.p1,
      steer_p2t: this.p2t,
      steer_scale: new ort.Tensor('float32', this.scale.subarray(0, n * this.K), [n, this.K]),
    };
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    this.cache.bind(feeds, fetches, n);
    const out = await this.dec.session.run(feeds, fetches);
    this.cache.write(
      out,
      lengths.map((_, slot) => slot),
      lengths,
      lengths.map(() => 1),
    );
    const V = this.dec.vocabSize;
    const logits = out.logits.data as Float32Array;
    const result = new Map<RowHandle, Float32Array>();
    for (const r of this.rows) {
      r.length += 1;
      result.set(r, logits.slice(r.slot * V, (r.slot + 1) * V));
    }
    return result;
  }

  /** Free a row's slot (the last active row moves into it). */
  remove(row: RowHandle): void {
    const i = row.slot;
    if (i < 0 || this.rows[i] !== row) return;
    const last = this.rows.pop()!;
    if (last !== row) {
      this.cache.moveRow(last.slot, i, last.length);
      this.scale.copyWithin(i * this.K, last.slot * this.K, (last.slot + 1) * this.K);
      last.slot = i;
      this.rows[i] = last;
    }
    row.slot = -1;
    if (this.rows.length === 0 && this.cache.capacity > MIN_CAP)
      this.cache.resize(Math.min(MIN_CAP, this.opts.capacity), 0);
  }

  /** Grow the buffers (doubling, at most `capacity`) so every row fits `need` tokens. */
  private ensureCap(need: number): void {
    if (need <= this.cache.capacity) return;
    this.cache.resize(Math.min(this.opts.capacity, Math.max(need, this.cache.capacity * 2)));
  }
}
