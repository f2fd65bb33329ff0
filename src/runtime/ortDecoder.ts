/**
 * The Decoder over an ORT session of a decoder graph (docs/ARCHITECTURE.md contract). Rows are right-padded;
 * each row's KV cache lives in buffers [B, kvH, capacity, hd] fed as `past.*` (zero-copy); each run returns
 * only the new positions' keys/values (`new.*`), which are written into the buffers at each row's length.
 */
import ort from 'onnxruntime-node';
import type { DecoderConfig } from '../models/config.js';
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import type { Decoder, DecoderBatch, SteerInputs, StepOutput } from './decoder.js';

type Feeds = Record<string, ort.Tensor>;

export const i64 = (values: ArrayLike<number>, dims: number[]) =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from(Array.from(values), (v) => BigInt(v)),
    dims,
  );
export const f32 = (t: Tensor) => new ort.Tensor('float32', t.data as Float32Array, t.shape);

/** Zero steer: K = 1 column of zeros, so the graph adds exactly 0 (docs/ARCHITECTURE.md). */
export function zeroSteer(d: number, batch: number): SteerInputs {
  return {
    p1: { dtype: 'float32', shape: [d, 1], data: new Float32Array(d) },
    p2t: { dtype: 'float32', shape: [1, d], data: new Float32Array(d) },
    scale: { dtype: 'float32', shape: [batch, 1], data: new Float32Array(batch) },
  };
}

export interface ForwardResult {
  /** [B, T, V]: logits at every position of each row (rows shorter than T repeat their last position). */
  logits: Tensor;
  /** [B, T, d]: final hidden states (valid up to each row's length). */
  hidden: Tensor;
  lengths: number[];
}

/**
 * The per-row KV buffers of one batch, laid out as the graph reads them: keys and values [B, kvH, cap, hd],
 * so a position's key or value for one head is one contiguous run of hd floats. The batch axis is outermost,
 * so the first n rows are one contiguous block (the continuous batch feeds views of them).
 */
export class KvCache {
  key: ort.Tensor[] = [];
  value: ort.Tensor[] = [];
  private readonly kvH: number;
  private readonly hd: number;
  constructor(
    cfg: DecoderConfig,
    readonly batch: number,
    public capacity: number,
  ) {
    this.kvH = cfg.numKvHeads;
    this.hd = cfg.headDim;
    this.capacity = Math.max(1, capacity); // a 0-length axis would give zero-size MatMuls; position 0 is masked
    for (let i = 0; i < cfg.numLayers; i++) {
      this.key.push(this.alloc(this.capacity));
      this.value.push(this.alloc(this.capacity));
    }
  }

  private alloc(cap: number, rows = this.batch): ort.Tensor {
    const { kvH, hd } = this;
    // fill(0) touches every page now: left to the decode loop, the first write into each fresh page faults
    // mid-step, measured at ~40 µs a fault beside ORT's threads (6–23 ms a step at 25 rows × 252 positions).
    return new ort.Tensor('float32', new Float32Array(rows * kvH * cap * hd).fill(0), [rows, kvH, cap, hd]);
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
        for (let bh = 0; bh < this.batch * kvH; bh++)
          dst.set(src.subarray(bh * old * hd, bh * old * hd + keep * hd), bh * cap * hd);
      }
      return n;
    };
    this.key = this.key.map(move);
    this.value = this.value.map(move);
    this.capacity = cap;
  }

  /** The first `rows` rows as `past.*` feeds (zero-copy views), and `new.*` among the fetches. */
  bind(feeds: Feeds, fetches: Record<string, ort.Tensor | null>, rows = this.batch, fetchNew = true): void {
    const n = rows * this.kvH * this.capacity * this.hd;
    const view = (t: ort.Tensor) =>
      rows === this.batch
        ? t
        : new ort.Tensor('float32', (t.data as Float32Array).subarray(0, n), [rows, ...t.dims.slice(1)]);
    for (let i = 0; i < this.key.length; i++) {
      feeds[`past.${i}.key`] = view(this.key[i]);
      feeds[`past.${i}.value`] = view(this.value[i]);
      if (fetchNew) fetches[`new.${i}.key`] = fetches[`new.${i}.value`] = null;
    }
  }

  /**
   * Write a run's new keys/values (`new.*` [B', kvH, T, hd]) into the buffers: entry r copies the first
   * `count[r]` positions of output row `src[r]` (default r) to slot `slot[r]` from position `start[r]`.
   */
  write(
    out: ort.InferenceSession.OnnxValueMapType,
    slot: number[],
    start: number[],
    count: number[],
    src: number[] = slot.map((_, r) => r),
  ): void {
    const { kvH, hd } = this;
    const cap = this.capacity;
    for (let r = 0; r < slot.length; r++) {
      if (start[r] + count[r] > cap) throw new Error(`internal: KV write past capacity ${cap}`);
    }
    for (let i = 0; i < this.key.length; i++) {
      for (const [from, dst] of [
        [out[`new.${i}.key`] as ort.Tensor, this.key[i]],
        [out[`new.${i}.value`] as ort.Tensor, this.value[i]],
      ] as const) {
        const T = from.dims[2];
        const s = from.data as Float32Array;
        const d = dst.data as Float32Array;
        for (let r = 0; r < slot.length; r++) {
          for (let h = 0; h < kvH; h++) {
            const so = (src[r] * kvH + h) * T * hd;
            d.set(s.subarray(so, so + count[r] * hd), ((slot[r] * kvH + h) * cap + start[r]) * hd);
          }
        }
      }
    }
  }

  /** Copy the first `len` positions of row `from` into row `to` (a leaving row's slot). */
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
}

export class OrtDecoder implements Decoder {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  constructor(
    readonly session: ort.InferenceSession,
    readonly cfg: DecoderConfig,
  ) {
    this.vocabSize = cfg.vocabSize;
    this.hiddenSize = cfg.hiddenSize;
  }

  checkRows(rows: number[][]): void {
    if (rows.length === 0) throw new LmSteerError('BAD_ARGUMENT', 'no prompts were given');
    rows.forEach((r, i) => {
      if (r.length === 0)
        throw new LmSteerError('BAD_ARGUMENT', `prompt ${i} has no tokens`, 'give a non-empty prompt');
      if (r.length > this.cfg.maxPositions) {
        throw new LmSteerError(
          'LIMIT',
          `prompt ${i} has ${r.length} tokens, more than the model's ${this.cfg.maxPositions} positions`,
          'shorten the prompt',
        );
      }
      for (const id of r) {
        if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
          throw new LmSteerError(
            'BAD_ARGUMENT',
            `token id ${id} in prompt ${i} is outside the vocabulary (0..${this.vocabSize - 1})`,
          );
        }
      }
    });
  }

  /** Feeds for a first call over right-padded rows; `logitsIndex` gives each row's positions to score. */
  prefillFeeds(rows: number[][], logitsIndex: number[][], steer: SteerInputs | undefined): Feeds {
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.length));
    const ids = new Array<number>(B * T).fill(0);
    const pos = new Array<number>(B * T);
    rows.forEach((r, b) => {
      for (let t = 0; t < T; t++) {
        if (t < r.length) ids[b * T + t] = r[t];
        pos[b * T + t] = Math.min(t, this.cfg.maxPositions - 1);
      }
    });
    const s = steer ?? zeroSteer(this.hiddenSize, B);
    return {
      input_ids: i64(ids, [B, T]),
      position_ids: i64(pos, [B, T]),
      past_lengths: i64(new Array(B).fill(0), [B]),
      logits_index: i64(logitsIndex.flat(), [B, logitsIndex[0].length]),
      ...steerFeedsOf(s),
    };
  }

  /**
   * One full forward pass over rows of different lengths (no cache kept): logits at every position and the
   * final hidden states. Used by `inspect`, perplexity and hidden-state extraction.
   */
  async forward(rows: number[][], opts: { steer?: SteerInputs; hiddenOnly?: boolean } = {}): Promise<ForwardResult> {
    this.checkRows(rows);
    const T = Math.max(...rows.map((r) => r.length));
    // hiddenOnly (hidden-state extraction): logits at each row's last position only, as B·T·V logits
    // would dwarf the hidden states for a 50k vocabulary; `logits` is then [B, 1, V].
    const index = opts.hiddenOnly
      ? rows.map((r) => [r.length - 1])
      : rows.map((r) => Array.from({ length: T }, (_, t) => Math.min(t, r.length - 1)));
    const feeds = this.prefillFeeds(rows, index, opts.steer);
    const fetches: Record<string, ort.Tensor | null> = { logits: null, hidden: null };
    new KvCache(this.cfg, rows.length, 1).bind(feeds, fetches, rows.length, false); // no cache kept
    const out = await this.session.run(feeds, fetches);
    return { logits: toTensor(out.logits), hidden: toTensor(out.hidden), lengths: rows.map((r) => r.length) };
  }

  async start(
    prompts: number[][],
    steer?: SteerInputs,
    opts: { maxNewTokens?: number } = {},
  ): Promise<{ batch: DecoderBatch; out: StepOutput }> {
    this.checkRows(prompts);
    const T = Math.max(...prompts.map((r) => r.length));
    const cache = new KvCache(
      this.cfg,
      prompts.length,
      Math.min(this.cfg.maxPositions, T + (opts.maxNewTokens ?? 128)),
    );
    const shared = sharedPrompts(prompts);
    if (shared)
      return this.startShared(
        prompts,
        shared,
        cache,
        steerFeedsOf(steer ?? zeroSteer(this.hiddenSize, prompts.length)),
      );
    const feeds = this.prefillFeeds(
      prompts,
      prompts.map((r) => [r.length - 1]),
      steer,
    );
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    cache.bind(feeds, fetches);
    const out = await this.session.run(feeds, fetches);
    cache.write(
      out,
      prompts.map((_, b) => b),
      prompts.map(() => 0),
      prompts.map((r) => r.length),
    );
    const steerFeeds = { steer_p1: feeds.steer_p1, steer_p2t: feeds.steer_p2t, steer_scale: feeds.steer_scale };
    const batch = new OrtBatch(
      this,
      cache,
      steerFeeds,
      prompts.map((r) => r.length),
    );
    return { batch, out: { logits: lastLogits(out.logits) } };
  }

  /**
   * Prompts repeated across rows (n samples of one prompt, as the paper's evaluation asks for 25) are
   * prefilled once: each distinct prompt but its last token runs once, its keys/values are copied to every
   * row that shares it, and the last tokens go through one ordinary step of all rows — which also applies
   * each row's own steer values (the cache does not depend on the steer: it sits at the head).
   */
  private async startShared(
    prompts: number[][],
    shared: { unique: number[][]; of: number[] },
    cache: KvCache,
    steerFeeds: Feeds,
  ): Promise<{ batch: DecoderBatch; out: StepOutput }> {
    const prefixOf = shared.unique.map((p) => p.slice(0, -1));
    const toRun = prefixOf.map((p, u) => ({ p, u })).filter((x) => x.p.length > 0);
    if (toRun.length > 0) {
      const rows = toRun.map((x) => x.p);
      const feeds = this.prefillFeeds(
        rows,
        rows.map((r) => [r.length - 1]),
        undefined,
      );
      const fetches: Record<string, ort.Tensor | null> = {}; // only the keys/values: ORT then skips the head
      cache.bind(feeds, fetches, rows.length);
      const out = await this.session.run(feeds, fetches);
      const outRow = new Map(toRun.map((x, i) => [x.u, i]));
      const slots = prompts.map((_, b) => b).filter((b) => outRow.has(shared.of[b]));
      cache.write(
        out,
        slots,
        slots.map(() => 0),
        slots.map((b) => prompts[b].length - 1),
        slots.map((b) => outRow.get(shared.of[b])!),
      );
    }
    const batch = new OrtBatch(
      this,
      cache,
      steerFeeds,
      prompts.map((r) => r.length - 1),
    );
    const out = await batch.step(prompts.map((r) => r[r.length - 1]));
    return { batch, out };
  }
}

/** Distinct prompts and each row's index among them, when some prompt repeats (else undefined). */
function sharedPrompts(prompts: number[][]): { unique: number[][]; of: number[] } | undefined {
  const index = new Map<string, number>();
  const unique: number[][] = [];
  const of = prompts.map((p) => {
    const key = p.join(',');
    let u = index.get(key);
    if (u === undefined) {
      u = unique.length;
      index.set(key, u);
      unique.push(p);
    }
    return u;
  });
  return unique.length < prompts.length ? { unique, of } : undefined;
}

function steerFeedsOf(s: SteerInputs): Feeds {
  return { steer_p1: f32(s.p1), steer_p2t: f32(s.p2t), steer_scale: f32(s.scale) };
}

class OrtBatch implements DecoderBatch {
  readonly batchSize: number;
  private disposed = false;

  constructor(
    private readonly dec: OrtDecoder,
    private readonly cache: KvCache,
    private readonly steerFeeds: Feeds,
    private lengths: number[],
  ) {
    this.batchSize = lengths.length;
  }

  async step(nextTokens: number[]): Promise<StepOutput> {
    if (this.disposed) throw new Error('internal: step() on a disposed batch');
    if (nextTokens.length !== this.batchSize)
      throw new Error(`internal: step() got ${nextTokens.length} tokens for ${this.batchSize} rows`);
    const maxPos = this.dec.cfg.maxPositions;
    const longest = Math.max(...this.lengths) + 1;
    if (longest > maxPos) {
      throw new LmSteerError(
        'LIMIT',
        `generation reached the model's ${maxPos} positions`,
        'ask for fewer new tokens or a shorter prompt',
      );
    }
    if (longest > this.cache.capacity) this.cache.resize(Math.min(maxPos, Math.max(longest, this.cache.capacity * 2)));
    const B = this.batchSize;
    const feeds: Feeds = {
      ...this.steerFeeds,
      input_ids: i64(nextTokens, [B, 1]),
      position_ids: i64(this.lengths, [B, 1]),
      past_lengths: i64(this.lengths, [B]),
      logits_index: i64(new Array(B).fill(0), [B, 1]),
    };
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    this.cache.bind(feeds, fetches);
    const out = await this.dec.session.run(feeds, fetches);
    this.cache.write(
      out,
      this.lengths.map((_, b) => b),
      this.lengths,
      this.lengths.map(() => 1),
    );
    this.lengths = this.lengths.map((n) => n + 1);
    return { logits: lastLogits(out.logits) };
  }

  dispose(): void {
    this.disposed = true;
    this.cache.key = [];
    this.cache.value = [];
  }
}

function toTensor(t: ort.OnnxValue): Tensor {
  const x = t as ort.Tensor;
  return { dtype: 'float32', shape: [...x.dims], data: x.data as Float32Array };
}

/** logits [B, 1, V] → [B, V] (same buffer). */
function lastLogits(t: ort.OnnxValue): Tensor {
  const x = t as ort.Tensor;
  return { dtype: 'float32', shape: [x.dims[0], x.dims[2]], data: x.data as Float32Array };
}
