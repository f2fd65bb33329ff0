/**
 * The Decoder over an existing ONNX export (optimum / transformers.js layout) rewritten by
 * src/formats/onnxExport.ts. Its IO differs from lmsteer's own graphs: `attention_mask` [B, P+S] marks the
 * positions a row may attend to over past and new tokens, `position_ids` (when the export takes them) number
 * the new tokens, and the export returns the whole concatenated cache as `present.*`; merged decoders take
 * `use_cache_branch` (false on a call without past). Calls from an empty past are right-padded: a pad sits after
 * every real token of its row, so causality already keeps it out of every real query, and the positions of real
 * tokens are 0..len-1 whether or not the export numbers them itself.
 */
import ort from 'onnxruntime-node';
import type { OnnxExport, OnnxExportIO } from '../formats/onnxExport.js';
import { CONTRACT, f32, i64, steerFeeds, zeroSteerFeeds, type Feeds, type SteerFeeds } from '../graph/contract.js';
import { LmSteerError } from '../util/errors.js';
import type { Decoder, ForwardOptions, ForwardResult, KvSlots, SteerDirections, SteerInputs } from './decoder.js';
import { SlotPool, type NewKv } from './kvCache.js';
import { checkKeyLengths, checkRows } from './ortDecoder.js';
import { sessionOptions } from './session.js';

export class OnnxExportDecoder implements Decoder {
  readonly vocabSize: number;
  readonly hiddenSize: number;

  constructor(
    readonly session: ort.InferenceSession,
    readonly io: OnnxExportIO,
    /** The model's context (config.json max_position_embeddings). */
    readonly maxPositions: number,
  ) {
    this.vocabSize = io.vocabSize;
    this.hiddenSize = io.hiddenSize;
  }

  /** Open an ORT session over a rewritten export; its external data resolves in the export's own folder. */
  static async open(exp: OnnxExport, opts: { maxPositions: number; threads?: number }): Promise<OnnxExportDecoder> {
    const so: ort.InferenceSession.SessionOptions = {
      ...sessionOptions(opts.threads),
      extra: { session: { model_external_initializers_file_folder_path: exp.externalDataDir } },
    };
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(exp.bytes, so);
    } catch (e) {
      throw new LmSteerError(
        'BAD_FILE',
        `ONNX Runtime cannot load ${exp.modelPath}: ${(e as Error).message}`,
        'check the export opens in onnxruntime (and that its .onnx_data file is beside it)',
        { cause: e },
      );
    }
    return new OnnxExportDecoder(session, exp.io, opts.maxPositions);
  }

  release(): Promise<void> {
    return this.session.release();
  }

  checkRows(rows: number[][]): void {
    checkRows(rows, this.maxPositions, this.vocabSize);
  }

  checkSteer(steer: SteerInputs, B: number): void {
    const d = this.hiddenSize;
    const K = steer.p1.shape[1];
    const ok =
      steer.p1.shape.length === 2 &&
      steer.p1.shape[0] === d &&
      steer.p2t.shape.join() === `${K},${d}` &&
      steer.scale.shape.join() === `${B},${K}`;
    if (!ok) {
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `steer inputs have shapes p1 [${steer.p1.shape}], p2t [${steer.p2t.shape}], scale [${steer.scale.shape}]; this model needs [${d}, K], [K, ${d}], [${B}, K]`,
        'pack the steers for this model (hidden size and batch)',
      );
    }
  }

  /** The export's inputs for one call. */
  feeds(
    ids: ort.Tensor,
    mask: ort.Tensor,
    pos: ort.Tensor,
    past: ort.Tensor[],
    useCache: boolean,
    steer: Feeds,
  ): Feeds {
    const feeds: Feeds = { input_ids: ids, attention_mask: mask, ...steer };
    if (this.io.hasPositionIds) feeds.position_ids = pos;
    if (this.io.hasUseCacheBranch)
      feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(useCache ? 1 : 0), [1]);
    for (let i = 0; i < this.io.numLayers; i++) {
      feeds[`past_key_values.${i}.key`] = past[2 * i]!;
      feeds[`past_key_values.${i}.value`] = past[2 * i + 1]!;
    }
    return feeds;
  }

  fetchNames(hidden: boolean): string[] {
    const names: string[] = [CONTRACT.logits];
    if (hidden) names.push(CONTRACT.hidden);
    for (let i = 0; i < this.io.numLayers; i++) names.push(`present.${i}.key`, `present.${i}.value`);
    return names;
  }

  /** One right-padded call over `rows` from an empty past: [B, T, ·] outputs, T the longest row. */
  async runFromEmpty(
    rows: number[][],
    steer: Feeds,
    hidden: boolean,
    keyLengths?: readonly number[],
  ): Promise<ort.InferenceSession.OnnxValueMapType> {
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.length));
    const ids = new Array<number>(B * T).fill(0);
    const mask = new Array<number>(B * T).fill(0);
    const pos = new Array<number>(B * T);
    rows.forEach((r, b) => {
      for (let t = 0; t < T; t++) {
        if (t < r.length) ((ids[b * T + t] = r[t]!), (mask[b * T + t] = t < (keyLengths?.[b] ?? r.length) ? 1 : 0));
        pos[b * T + t] = t;
      }
    });
    const { numLayers, numKvHeads: kvH, headDim: hd } = this.io;
    const past: ort.Tensor[] = [];
    for (let i = 0; i < 2 * numLayers; i++) past.push(new ort.Tensor('float32', new Float32Array(0), [B, kvH, 0, hd]));
    const feeds = this.feeds(i64(ids, [B, T]), i64(mask, [B, T]), i64(pos, [B, T]), past, false, steer);
    return this.session.run(feeds, this.fetchNames(hidden));
  }

  /**
   * One full forward pass (no cache kept): logits at every position and the final hidden states, in
   * OrtDecoder.forward's layout (row b's token t at index t; rows shorter than T repeat their last position).
   */
  async forward(rows: number[][], opts: ForwardOptions = {}): Promise<ForwardResult> {
    this.checkRows(rows);
    if (opts.keyLengths) checkKeyLengths(rows, opts.keyLengths);
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.length));
    const { vocabSize: V, hiddenSize: d } = this;
    if (opts.steer) this.checkSteer(opts.steer, B);
    const steer = opts.steer
      ? steerFeeds({ p1: f32(opts.steer.p1), p2t: f32(opts.steer.p2t) }, opts.steer.scale.data as Float32Array, B)
      : steerFeeds(zeroSteerFeeds(d), new Float32Array(B), B);
    const out = await this.runFromEmpty(rows, steer, true, opts.keyLengths);
    const lg = out[CONTRACT.logits]!.data as Float32Array;
    const hd = out[CONTRACT.hidden]!.data as Float32Array;
    checkSize('logits', lg, B * T * V);
    checkSize('hidden', hd, B * T * d);
    const nLogits = opts.hiddenOnly ? 1 : T;
    const logits = new Float32Array(B * nLogits * V);
    rows.forEach((r, b) => {
      for (let t = 0; t < nLogits; t++) {
        const src = b * T + (opts.hiddenOnly ? r.length - 1 : Math.min(t, r.length - 1));
        logits.set(lg.subarray(src * V, (src + 1) * V), (b * nLogits + t) * V);
      }
    });
    const hidden = hd.slice(); // rows are right-padded as OrtDecoder's are: the same [B, T, d] layout
    return {
      logits: { dtype: 'float32', shape: [B, nLogits, V], data: logits },
      hidden: { dtype: 'float32', shape: [B, T, d], data: hidden },
      lengths: rows.map((r) => r.length),
    };
  }

  openSlots(opts: { rows: number; steer?: SteerDirections }): KvSlots {
    const dirs = opts.steer ? { p1: f32(opts.steer.p1), p2t: f32(opts.steer.p2t) } : zeroSteerFeeds(this.hiddenSize);
    return new ExportSlots(this, opts.rows, dirs);
  }
}

/**
 * Slots over an export. The export concatenates past and new keys/values itself (`present.*` [n, kvH, P+T, hd]);
 * the slots keep their own buffers, as lmsteer's graphs do, and copy each call's new positions into them:
 *   - prefill: right-padded prompts from an empty past (pads masked, after every real token, so no real
 *     query sees them); each prompt's present positions go to its slots;
 *   - extend with `position_ids`: the slots' buffers are fed in place as the past [n, kvH, cap, hd], with
 *     `attention_mask` marking each row's valid positions (1 below its length, 0 from there to cap) and the
 *     new token (1) at index cap, which is where present.* holds its key/value;
 *   - extend without `position_ids` (the export numbers positions past length + t itself): rows run in
 *     groups of equal length with a dense past copied out of the buffers, so the export's numbering is right.
 */
class ExportSlots extends SlotPool {
  constructor(
    private readonly dec: OnnxExportDecoder,
    rows: number,
    private readonly dirs: SteerFeeds,
  ) {
    super(dec.io, rows, dirs.p1.dims[1]!, dec.maxPositions);
  }

  private present(out: ort.InferenceSession.OnnxValueMapType): NewKv {
    return (l, kind) => out[`present.${l}.${kind}`] as ort.Tensor;
  }

  async prefill(prompts: number[][], dest: number[][], logits: boolean): Promise<Float32Array[]> {
    this.dec.checkRows(prompts);
    this.reserve(Math.max(...prompts.map((p) => p.length)));
    const B = prompts.length;
    const T = Math.max(...prompts.map((r) => r.length));
    const scale = steerFeeds(this.dirs, this.scalesOf(dest.map((d) => d[0]!)), B);
    const out = await this.dec.runFromEmpty(prompts, scale, false);
    this.storePrompts(this.present(out), prompts, dest);
    if (!logits) return [];
    const V = this.dec.vocabSize;
    const lg = out.logits!.data as Float32Array;
    checkSize('logits', lg, B * T * V);
    return prompts.map((r, b) => lg.slice((b * T + r.length - 1) * V, (b * T + r.length) * V));
  }

  async extend(first: number, tokens: number[], lengths: number[]): Promise<Float32Array> {
    const n = tokens.length;
    this.reserve(Math.max(...lengths) + 1);
    const V = this.dec.vocabSize;
    const logits = new Float32Array(n * V);
    const groups = this.dec.io.hasPositionIds ? [tokens.map((_, r) => r)] : groupBy(lengths);
    for (const rows of groups) {
      const g = rows.length;
      const inPlace = this.dec.io.hasPositionIds;
      // The past each row sees: the whole buffer (masked past its length), or exactly its length, copied.
      const P = inPlace ? this.capacity : lengths[rows[0]!]!;
      const mask = new Array<number>(g * (P + 1)).fill(0);
      rows.forEach((r, i) => {
        for (let p = 0; p < (inPlace ? lengths[r]! : P); p++) mask[i * (P + 1) + p] = 1;
        mask[i * (P + 1) + P] = 1;
      });
      const past: ort.Tensor[] = [];
      for (let l = 0; l < this.dec.io.numLayers; l++) {
        for (const kind of ['key', 'value'] as const) {
          past.push(
            inPlace
              ? this.cache.view(l, kind, first, n)
              : this.cache.dense(
                  l,
                  kind,
                  rows.map((r) => first + r),
                  P,
                ),
          );
        }
      }
      const scale = inPlace ? this.scaleRows(first, n) : this.scalesOf(rows.map((r) => first + r));
      const feeds = this.dec.feeds(
        i64(
          rows.map((r) => tokens[r]!),
          [g, 1],
        ),
        i64(mask, [g, P + 1]),
        i64(
          rows.map((r) => lengths[r]!),
          [g, 1],
        ),
        past,
        true,
        steerFeeds(this.dirs, scale, g),
      );
      const out = await this.dec.session.run(feeds, this.dec.fetchNames(false));
      const lg = out.logits!.data as Float32Array;
      checkSize('logits', lg, g * V);
      this.cache.write(
        this.present(out),
        rows.map((r) => first + r),
        rows.map((r) => lengths[r]!),
        rows.map(() => 1),
        rows.map((_, i) => i),
        P,
      );
      rows.forEach((r, i) => logits.set(lg.subarray(i * V, (i + 1) * V), r * V));
    }
    return logits;
  }
}

/** Row indices grouped by equal value of `keys`. */
function groupBy(keys: number[]): number[][] {
  const by = new Map<number, number[]>();
  keys.forEach((k, i) => by.set(k, [...(by.get(k) ?? []), i]));
  return [...by.values()];
}

function checkSize(name: string, data: Float32Array, expected: number): void {
  if (data.length !== expected) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `the export's "${name}" output has ${data.length} values, expected ${expected}`,
      'the export does not follow the optimum decoder layout ([batch, seq, …] outputs)',
    );
  }
}
