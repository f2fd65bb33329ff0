/**
 * The Decoder over an existing ONNX export (optimum / transformers.js layout) rewritten by
 * src/formats/onnxExport.ts. Unlike lmsteer's own graphs (right-padded rows, GQA writing into preallocated
 * buffers), an export concatenates its KV cache itself, so rows are left-padded, as transformers does:
 *   - `attention_mask` [B, P+S] marks real tokens (1) and left padding (0) over past and new positions;
 *   - `position_ids` count each row's real tokens (transformers: cumsum(mask) − 1);
 *   - `present.*` of one call is the `past_key_values.*` of the next; the first call gets an empty past
 *     [B, kvH, 0, hd] and `use_cache_branch` false (merged decoders), later calls true.
 * An export without a `position_ids` input numbers positions itself (past length + t), which left padding would
 * shift, so its rows run in groups of equal prompt length.
 */
import ort from 'onnxruntime-node';
import type { OnnxExport, OnnxExportIO } from '../formats/onnxExport.js';
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import type { DecoderBatch, ModelDecoder, SteerInputs, StepOutput } from './decoder.js';
import { f32, i64, zeroSteer, type ForwardResult } from './ortDecoder.js';
import { sessionOptions } from './session.js';

type Feeds = Record<string, ort.Tensor>;

export class OnnxExportDecoder implements ModelDecoder {
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
    if (rows.length === 0) throw new LmSteerError('BAD_ARGUMENT', 'no prompts were given');
    rows.forEach((r, i) => {
      if (r.length === 0)
        throw new LmSteerError('BAD_ARGUMENT', `prompt ${i} has no tokens`, 'give a non-empty prompt');
      if (r.length > this.maxPositions) {
        throw new LmSteerError(
          'LIMIT',
          `prompt ${i} has ${r.length} tokens, more than the model's ${this.maxPositions} positions`,
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

  /** Rows that can share one left-padded call: all of them, or (no position_ids input) those of equal length. */
  groups(rows: number[][]): number[][] {
    if (this.io.hasPositionIds) return [rows.map((_, i) => i)];
    const byLen = new Map<number, number[]>();
    rows.forEach((r, i) => byLen.set(r.length, [...(byLen.get(r.length) ?? []), i]));
    return [...byLen.values()];
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

  /** One call over `rows` (left-padded) from an empty past. */
  async runPrefill(
    rows: number[][],
    steer: SteerInputs,
    fetchHidden: boolean,
  ): Promise<{ out: ort.InferenceSession.OnnxValueMapType; mask: number[] }> {
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.length));
    const ids = new Array<number>(B * T).fill(0);
    const mask = new Array<number>(B * T).fill(0);
    const pos = new Array<number>(B * T).fill(0);
    rows.forEach((r, b) => {
      const pad = T - r.length;
      r.forEach((id, t) => {
        ids[b * T + pad + t] = id;
        mask[b * T + pad + t] = 1;
        pos[b * T + pad + t] = t;
      });
    });
    const { numLayers, numKvHeads: kvH, headDim: hd } = this.io;
    const past: ort.Tensor[] = [];
    for (let i = 0; i < 2 * numLayers; i++) past.push(new ort.Tensor('float32', new Float32Array(0), [B, kvH, 0, hd]));
    const feeds = this.feeds(i64(ids, [B, T]), i64(mask, [B, T]), i64(pos, [B, T]), past, false, steer);
    const out = await this.session.run(feeds, this.fetchNames(fetchHidden));
    return { out, mask };
  }

  feeds(
    ids: ort.Tensor,
    mask: ort.Tensor,
    pos: ort.Tensor,
    past: ort.Tensor[],
    useCache: boolean,
    steer: SteerInputs,
  ): Feeds {
    const feeds: Feeds = {
      input_ids: ids,
      attention_mask: mask,
      steer_p1: f32(steer.p1),
      steer_p2t: f32(steer.p2t),
      steer_scale: f32(steer.scale),
    };
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
    const names = ['logits'];
    if (hidden) names.push('hidden');
    for (let i = 0; i < this.io.numLayers; i++) names.push(`present.${i}.key`, `present.${i}.value`);
    return names;
  }

  /**
   * One full forward pass (no cache kept): logits at every position and the final hidden states, in
   * OrtDecoder.forward's layout (row b's token t at index t; rows shorter than T repeat their last position).
   */
  async forward(rows: number[][], opts: { steer?: SteerInputs; hiddenOnly?: boolean } = {}): Promise<ForwardResult> {
    this.checkRows(rows);
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.length));
    const { vocabSize: V, hiddenSize: d } = this;
    const steer = opts.steer ?? zeroSteer(d, B);
    this.checkSteer(steer, B);
    const nLogits = opts.hiddenOnly ? 1 : T;
    const logits = new Float32Array(B * nLogits * V);
    const hidden = new Float32Array(B * T * d);
    for (const group of this.groups(rows)) {
      const sub = group.map((b) => rows[b]!);
      const Tg = Math.max(...sub.map((r) => r.length));
      const { out } = await this.runPrefill(sub, rowsOf(steer, group), true);
      const lg = out.logits!.data as Float32Array;
      const hd = out.hidden!.data as Float32Array;
      checkSize('logits', lg, sub.length * Tg * V);
      checkSize('hidden', hd, sub.length * Tg * d);
      group.forEach((b, g) => {
        const len = rows[b]!.length;
        const pad = Tg - len;
        for (let t = 0; t < nLogits; t++) {
          const src = pad + (opts.hiddenOnly ? len - 1 : Math.min(t, len - 1));
          logits.set(lg.subarray((g * Tg + src) * V, (g * Tg + src + 1) * V), (b * nLogits + t) * V);
        }
        for (let t = 0; t < len; t++)
          hidden.set(hd.subarray((g * Tg + pad + t) * d, (g * Tg + pad + t + 1) * d), (b * T + t) * d);
      });
    }
    return {
      logits: { dtype: 'float32', shape: [B, nLogits, V], data: logits },
      hidden: { dtype: 'float32', shape: [B, T, d], data: hidden },
      lengths: rows.map((r) => r.length),
    };
  }

  async start(prompts: number[][], steer?: SteerInputs): Promise<{ batch: DecoderBatch; out: StepOutput }> {
    this.checkRows(prompts);
    const B = prompts.length;
    const s = steer ?? zeroSteer(this.hiddenSize, B);
    this.checkSteer(s, B);
    const V = this.vocabSize;
    const parts: { rows: number[]; batch: ExportBatch }[] = [];
    const logits = new Float32Array(B * V);
    for (const group of this.groups(prompts)) {
      const sub = group.map((b) => prompts[b]!);
      const gs = rowsOf(s, group);
      const { out, mask } = await this.runPrefill(sub, gs, false);
      const T = Math.max(...sub.map((r) => r.length));
      const lg = out.logits!.data as Float32Array;
      checkSize('logits', lg, sub.length * T * V);
      group.forEach((b, g) => logits.set(lg.subarray((g * T + T - 1) * V, (g * T + T) * V), b * V));
      parts.push({
        rows: group,
        batch: new ExportBatch(
          this,
          gs,
          presents(this.io, out),
          mask,
          T,
          sub.map((r) => r.length),
        ),
      });
    }
    return { batch: new GroupedBatch(parts, B, V), out: { logits: { dtype: 'float32', shape: [B, V], data: logits } } };
  }
}

/** One left-padded batch: the KV cache is whatever the last call returned as present.* */
class ExportBatch {
  private disposed = false;
  private readonly steerFeeds: SteerInputs;

  constructor(
    private readonly dec: OnnxExportDecoder,
    steer: SteerInputs,
    private past: ort.Tensor[],
    private mask: number[], // [B, L] row-major
    private L: number, // positions in the cache so far
    private lengths: number[], // real tokens per row
  ) {
    this.steerFeeds = steer;
  }

  async step(nextTokens: number[]): Promise<Float32Array> {
    if (this.disposed) throw new Error('internal: step() on a disposed batch');
    const B = this.lengths.length;
    const longest = Math.max(...this.lengths) + 1;
    if (longest > this.dec.maxPositions) {
      throw new LmSteerError(
        'LIMIT',
        `generation reached the model's ${this.dec.maxPositions} positions`,
        'ask for fewer new tokens or a shorter prompt',
      );
    }
    const L = this.L + 1;
    const mask = new Array<number>(B * L);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < this.L; t++) mask[b * L + t] = this.mask[b * this.L + t]!;
      mask[b * L + this.L] = 1;
    }
    const feeds = this.dec.feeds(
      i64(nextTokens, [B, 1]),
      i64(mask, [B, L]),
      i64(this.lengths, [B, 1]),
      this.past,
      true,
      this.steerFeeds,
    );
    const out = await this.dec.session.run(feeds, this.dec.fetchNames(false));
    const lg = out.logits!.data as Float32Array;
    checkSize('logits', lg, B * this.dec.vocabSize);
    this.past = presents(this.dec.io, out);
    this.mask = mask;
    this.L = L;
    this.lengths = this.lengths.map((n) => n + 1);
    return lg;
  }

  dispose(): void {
    this.disposed = true;
    this.past = [];
  }
}

/** The DecoderBatch over one or more ExportBatches (groups of rows), merging their logits in row order. */
class GroupedBatch implements DecoderBatch {
  constructor(
    private readonly parts: { rows: number[]; batch: ExportBatch }[],
    readonly batchSize: number,
    private readonly V: number,
  ) {}

  async step(nextTokens: number[]): Promise<StepOutput> {
    if (nextTokens.length !== this.batchSize)
      throw new Error(`internal: step() got ${nextTokens.length} tokens for ${this.batchSize} rows`);
    const V = this.V;
    const logits = new Float32Array(this.batchSize * V);
    for (const { rows, batch } of this.parts) {
      const lg = await batch.step(rows.map((b) => nextTokens[b]!));
      rows.forEach((b, g) => logits.set(lg.subarray(g * V, (g + 1) * V), b * V));
    }
    return { logits: { dtype: 'float32', shape: [this.batchSize, V], data: logits } };
  }

  dispose(): void {
    for (const p of this.parts) p.batch.dispose();
  }
}

function presents(io: OnnxExportIO, out: ort.InferenceSession.OnnxValueMapType): ort.Tensor[] {
  const past: ort.Tensor[] = [];
  for (let i = 0; i < io.numLayers; i++)
    past.push(out[`present.${i}.key`] as ort.Tensor, out[`present.${i}.value`] as ort.Tensor);
  return past;
}

/** The steer of a subset of rows (steer_scale rows picked; directions shared). */
function rowsOf(steer: SteerInputs, rows: number[]): SteerInputs {
  const K = steer.scale.shape[1]!;
  if (rows.length === steer.scale.shape[0] && rows.every((b, i) => b === i)) return steer;
  const data = new Float32Array(rows.length * K);
  rows.forEach((b, i) => data.set(steer.scale.data.subarray(b * K, (b + 1) * K) as Float32Array, i * K));
  const scale: Tensor = { dtype: 'float32', shape: [rows.length, K], data };
  return { p1: steer.p1, p2t: steer.p2t, scale };
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
