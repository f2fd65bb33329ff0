/**
 * The Decoder over an ORT session of one of lmsteer's own decoder graphs (docs/ARCHITECTURE.md contract). Rows
 * are right-padded; each slot's KV cache lives in the pool's buffers [rows, kvH, capacity, hd], fed as `past.*`
 * views (zero-copy); each run returns only the new positions' keys/values (`new.*`), which are written into
 * the buffers at each row's length.
 */
import ort from 'onnxruntime-node';
import {
  CONTRACT,
  f32,
  i64,
  newKey,
  newValue,
  pastKey,
  pastValue,
  steerFeeds,
  zeroSteerFeeds,
  type Feeds,
  type SteerFeeds,
} from '../graph/contract.js';
import type { DecoderConfig } from '../models/config.js';
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import type { Decoder, ForwardOptions, ForwardResult, KvSlots, SteerDirections } from './decoder.js';
import { KvCache, SlotPool } from './kvCache.js';

type Fetches = Record<string, ort.Tensor | null>;

export class OrtDecoder implements Decoder {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly maxPositions: number;
  constructor(
    readonly session: ort.InferenceSession,
    readonly cfg: DecoderConfig,
  ) {
    this.vocabSize = cfg.vocabSize;
    this.hiddenSize = cfg.hiddenSize;
    this.maxPositions = cfg.maxPositions;
  }

  checkRows(rows: number[][]): void {
    checkRows(rows, this.maxPositions, this.vocabSize);
  }

  /** Feeds of a call from an empty past over right-padded rows; `logitsIndex` gives each row's positions to score. */
  prefillFeeds(rows: number[][], logitsIndex: number[][], steer: Feeds, keyLengths?: number[]): Feeds {
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.length));
    const ids = new Array<number>(B * T).fill(0);
    const pos = new Array<number>(B * T);
    rows.forEach((r, b) => {
      for (let t = 0; t < T; t++) {
        if (t < r.length) ids[b * T + t] = r[t]!;
        pos[b * T + t] = Math.min(t, this.maxPositions - 1);
      }
    });
    return {
      [CONTRACT.inputIds]: i64(ids, [B, T]),
      [CONTRACT.positionIds]: i64(pos, [B, T]),
      [CONTRACT.pastLengths]: i64(new Array(B).fill(0), [B]),
      [CONTRACT.logitsIndex]: i64(logitsIndex.flat(), [B, logitsIndex[0]!.length]),
      [CONTRACT.keyLengths]: i64(keyLengths ?? rows.map((r) => r.length), [B]),
      ...steer,
    };
  }

  /** An empty past (capacity 1, masked) for calls that keep no cache. */
  private bindEmptyPast(feeds: Feeds, fetches: Fetches, B: number, fetchNew: boolean): void {
    const empty = new KvCache(this.cfg, B, 1);
    for (let i = 0; i < this.cfg.numLayers; i++) {
      feeds[pastKey(i)] = empty.key[i]!;
      feeds[pastValue(i)] = empty.value[i]!;
      if (fetchNew) fetches[newKey(i)] = fetches[newValue(i)] = null;
    }
  }

  async forward(rows: number[][], opts: ForwardOptions = {}): Promise<ForwardResult> {
    this.checkRows(rows);
    if (opts.keyLengths) checkKeyLengths(rows, opts.keyLengths);
    const T = Math.max(...rows.map((r) => r.length));
    // hiddenOnly (hidden-state extraction): logits at each row's last position only, as B·T·V logits
    // would dwarf the hidden states for a 50k vocabulary; `logits` is then [B, 1, V].
    const index = opts.hiddenOnly
      ? rows.map((r) => [r.length - 1])
      : rows.map((r) => Array.from({ length: T }, (_, t) => Math.min(t, r.length - 1)));
    const s = opts.steer;
    const steer = s
      ? steerFeeds({ p1: f32(s.p1), p2t: f32(s.p2t) }, s.scale.data as Float32Array, rows.length)
      : steerFeeds(zeroSteerFeeds(this.hiddenSize), new Float32Array(rows.length), rows.length);
    const feeds = this.prefillFeeds(rows, index, steer, opts.keyLengths);
    const fetches: Fetches = { [CONTRACT.logits]: null, [CONTRACT.hidden]: null };
    this.bindEmptyPast(feeds, fetches, rows.length, false);
    const out = await this.session.run(feeds, fetches);
    return {
      logits: toTensor(out[CONTRACT.logits]!),
      hidden: toTensor(out[CONTRACT.hidden]!),
      lengths: rows.map((r) => r.length),
    };
  }

  openSlots(opts: { rows: number; steer?: SteerDirections }): KvSlots {
    return new OrtSlots(
      this,
      opts.rows,
      opts.steer ? { p1: f32(opts.steer.p1), p2t: f32(opts.steer.p2t) } : zeroSteerFeeds(this.hiddenSize),
    );
  }

  /** Internal to OrtSlots: a run from an empty past whose new keys/values land in slots. */
  async runPrefill(prompts: number[][], steer: Feeds, logits: boolean): Promise<ort.InferenceSession.OnnxValueMapType> {
    const feeds = this.prefillFeeds(
      prompts,
      prompts.map((r) => [r.length - 1]),
      steer,
    );
    // Without logits, only the keys/values are fetched: ORT then skips the LM head.
    const fetches: Fetches = logits ? { [CONTRACT.logits]: null } : {};
    this.bindEmptyPast(feeds, fetches, prompts.length, true);
    return this.session.run(feeds, fetches);
  }
}

class OrtSlots extends SlotPool {
  constructor(
    private readonly dec: OrtDecoder,
    rows: number,
    private readonly dirs: SteerFeeds,
  ) {
    super(dec.cfg, rows, dirs.p1.dims[1]!, dec.maxPositions);
  }

  async prefill(prompts: number[][], dest: number[][], logits: boolean): Promise<Float32Array[]> {
    this.dec.checkRows(prompts);
    this.reserve(Math.max(...prompts.map((p) => p.length)));
    const first = dest.map((d) => d[0]!);
    const out = await this.dec.runPrefill(prompts, steerFeeds(this.dirs, this.scalesOf(first), prompts.length), logits);
    this.storePrompts((l, kind) => out[kind === 'key' ? newKey(l) : newValue(l)] as ort.Tensor, prompts, dest);
    if (!logits) return [];
    const V = this.dec.vocabSize;
    const data = out[CONTRACT.logits]!.data as Float32Array;
    return prompts.map((_, i) => data.slice(i * V, (i + 1) * V));
  }

  async extend(first: number, tokens: number[], lengths: number[]): Promise<Float32Array> {
    const n = tokens.length;
    this.reserve(Math.max(...lengths) + 1);
    const feeds: Feeds = {
      [CONTRACT.inputIds]: i64(tokens, [n, 1]),
      [CONTRACT.positionIds]: i64(lengths, [n, 1]),
      [CONTRACT.pastLengths]: i64(lengths, [n]),
      [CONTRACT.logitsIndex]: i64(new Array(n).fill(0), [n, 1]),
      [CONTRACT.keyLengths]: i64(new Array(n).fill(1), [n]),
      ...steerFeeds(this.dirs, this.scaleRows(first, n), n),
    };
    const fetches: Fetches = { [CONTRACT.logits]: null };
    for (let i = 0; i < this.dec.cfg.numLayers; i++) {
      feeds[pastKey(i)] = this.cache.view(i, 'key', first, n);
      feeds[pastValue(i)] = this.cache.view(i, 'value', first, n);
      fetches[newKey(i)] = fetches[newValue(i)] = null;
    }
    const out = await this.dec.session.run(feeds, fetches);
    const rows = tokens.map((_, r) => r);
    this.cache.write(
      (l, kind) => out[kind === 'key' ? newKey(l) : newValue(l)] as ort.Tensor,
      rows.map((r) => first + r),
      lengths,
      rows.map(() => 1),
      rows,
    );
    return out[CONTRACT.logits]!.data as Float32Array;
  }
}

/** Prompts must be non-empty, fit the model's positions and hold only its token ids. */
export function checkRows(rows: number[][], maxPositions: number, vocabSize: number): void {
  if (rows.length === 0) throw new LmSteerError('BAD_ARGUMENT', 'no prompts were given');
  rows.forEach((r, i) => {
    if (r.length === 0) throw new LmSteerError('BAD_ARGUMENT', `prompt ${i} has no tokens`, 'give a non-empty prompt');
    if (r.length > maxPositions) {
      throw new LmSteerError(
        'LIMIT',
        `prompt ${i} has ${r.length} tokens, more than the model's ${maxPositions} positions`,
        'shorten the prompt',
      );
    }
    for (const id of r) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `token id ${id} in prompt ${i} is outside the vocabulary (0..${vocabSize - 1})`,
        );
      }
    }
  });
}

/** keyLengths (ForwardOptions) must give each row 1..its length real tokens. */
export function checkKeyLengths(rows: number[][], keyLengths: readonly number[]): void {
  if (keyLengths.length !== rows.length)
    throw new Error(`internal: ${keyLengths.length} key lengths for ${rows.length} rows`);
  keyLengths.forEach((n, b) => {
    if (!(Number.isInteger(n) && n >= 1 && n <= rows[b]!.length))
      throw new Error(`internal: key length ${n} for a row of ${rows[b]!.length}`);
  });
}

function toTensor(t: ort.OnnxValue): Tensor {
  const x = t as ort.Tensor;
  return { dtype: 'float32', shape: [...x.dims], data: x.data as Float32Array };
}
