/**
 * An on-disk cache of final hidden states (the LM head's input) and token ids per text. The LM is frozen during
 * steer training, so each text's hidden states are computed once and reused across epochs and across runs.
 *
 * Layout: `<root>/<key>/` with key = hash(model fingerprint, max length, storage dtype, pad id), holding
 * `meta.json` (what the key stands for) and append-only shard files `shard-<time>-<pid>.bin`. Each process
 * appends to its own new shard, so concurrent runs never interleave writes. A shard is a sequence of records:
 *   "LMHC" | u32 LE header length | header JSON {k: sha256(text), n, d, dt: "f16"|"f32", crc, rows?} | payload
 * with payload = ids as int32 [n] then hidden [rows, d] in dt (rows = n when absent), crc = crc32(payload).
 *
 * Pad rows (a cache opened with `padId`, for the reference's loss with pad positions): rows n..rows−1 are the
 * hidden states of pad tokens (id padId) at positions n.. under the attention mask, i.e. attending to the
 * text's real tokens only (src/train/maskedForward.ts). They depend on the text and the position alone, not on
 * the batch, so they are cached per text; a request for more pad rows than stored recomputes the entry.
 *
 * The index (text hash →
 * record) is rebuilt by scanning headers at open; later records win. A truncated tail (a killed run) ends the
 * scan of that shard, and a crc mismatch at read time drops the entry; both texts are simply recomputed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { writeJsonAtomic } from '../formats/atomicWrite.js';
import { f16ToF32, f32ToF16 } from '../formats/halfFloat.js';
import { readBytesAt, readExactly } from '../formats/readAt.js';
import { LmSteerError } from '../util/errors.js';
import { tensor, type Tensor } from '../util/tensor.js';

/** The LM, injected: final hidden states [n_i, d] and token ids [n_i] of each text. */
/**
 * The LM, injected: final hidden states [rows_i, d] and token ids [n_i] of each text. Without `padTo`,
 * rows_i = n_i; with it, rows_i = max(n_i, padTo[i]) and rows past n_i are pad states (see above).
 */
export type ExtractFn = (texts: string[], padTo?: readonly number[]) => Promise<{ hidden: Tensor; ids: number[] }[]>;

export interface HiddenEntry {
  hidden: Tensor; // [rows, d] float32: rows ≥ n (rows past n are pad states), rows ≤ maxLength
  ids: number[]; // [n] the text's real tokens
}

export interface HiddenCacheOptions {
  /** Cache root; without one the cache lives in memory only (this run). */
  dir?: string;
  /** Identifies the model (weights + tokenizer); a different model never reads these entries. */
  modelFingerprint: string;
  /** Tokens kept per text (the reference's `--max_length`, truncation from the right). */
  maxLength: number;
  /** Store hidden states as fp16 (half the disk; values rounded to nearest even). */
  fp16?: boolean;
  /** Entries may hold pad rows of this pad token id (a separate cache folder per pad id). */
  padId?: number;
  /** Texts per extract call for cache misses; default 8. */
  extractBatchSize?: number;
}

export interface HiddenCacheStats {
  hits: number;
  misses: number;
  /** Entries found damaged (crc mismatch, unreadable) and recomputed. */
  corrupt: number;
}

const MAGIC = Buffer.from('LMHC', 'ascii');
const MAX_HEADER = 4096;

interface Loc {
  shard: string;
  offset: number; // payload start
  n: number;
  rows: number;
  d: number;
  dt: 'f16' | 'f32';
  crc: number;
}

export class HiddenCache {
  readonly stats: HiddenCacheStats = { hits: 0, misses: 0, corrupt: 0 };
  private readonly index = new Map<string, Loc>();
  private readonly memory = new Map<string, Uint8Array>(); // in-memory mode: key → payload
  private readonly readFds = new Map<string, number>();
  private writeShard?: { path: string; fd: number; size: number };
  private hiddenSize?: number;

  private constructor(
    readonly opts: HiddenCacheOptions,
    /** The folder of this (model, max length, dtype), or undefined in memory mode. */
    readonly folder: string | undefined,
  ) {}

  static open(opts: HiddenCacheOptions): HiddenCache {
    if (!(Number.isInteger(opts.maxLength) && opts.maxLength > 0)) {
      throw new LmSteerError('BAD_ARGUMENT', `max length ${opts.maxLength} is not a positive integer`, 'use e.g. 256');
    }
    if (!opts.dir) return new HiddenCache(opts, undefined);
    const dt = opts.fp16 ? 'f16' : 'f32';
    const pad = opts.padId === undefined ? '' : `\u0000pad=${opts.padId}`;
    const key = createHash('sha256')
      .update(`${opts.modelFingerprint}\u0000${opts.maxLength}\u0000${dt}${pad}`)
      .digest('hex')
      .slice(0, 24);
    const folder = join(opts.dir, `hidden-${key}`);
    mkdirSync(folder, { recursive: true });
    const metaPath = join(folder, 'meta.json');
    if (!existsSync(metaPath))
      writeJsonAtomic(metaPath, {
        modelFingerprint: opts.modelFingerprint,
        maxLength: opts.maxLength,
        dtype: dt,
        ...(opts.padId === undefined ? {} : { padId: opts.padId }),
        format: 'lmsteer-hidden-cache-v1',
      });
    const cache = new HiddenCache(opts, folder);
    for (const f of readdirSync(folder)
      .filter((x) => /^shard-.*\.bin$/.test(x))
      .sort())
      cache.scanShard(join(folder, f));
    return cache;
  }

  /** Number of texts with an entry. */
  get size(): number {
    return this.index.size;
  }

  /** Whether `text` has an entry (with at least `rows` hidden rows, pad rows included, when given). */
  has(text: string, rows?: number): boolean {
    const loc = this.index.get(textKey(text));
    return loc !== undefined && loc.rows >= Math.min(rows ?? 0, this.opts.maxLength);
  }

  /**
   * Hidden states of every text, from the cache or (for misses, in batches) from `extract`, stored on the way.
   * `rows[i]` (a cache opened with padId only): text i needs at least that many rows, pad rows included; an
   * entry with fewer is a miss.
   */
  async get(texts: readonly string[], extract: ExtractFn, rows?: readonly number[]): Promise<HiddenEntry[]> {
    if (rows && this.opts.padId === undefined) throw new Error('internal: pad rows asked of a cache without padId');
    const want = new Map<string, number>();
    texts.forEach((t, i) => want.set(t, Math.max(want.get(t) ?? 0, Math.min(rows?.[i] ?? 0, this.opts.maxLength))));
    const enough = (e: HiddenEntry, t: string) => e.hidden.shape[0]! >= Math.max(e.ids.length, want.get(t)!);
    const out: (HiddenEntry | undefined)[] = texts.map((t) => {
      const e = this.read(textKey(t));
      if (e && enough(e, t)) {
        this.stats.hits++;
        return e;
      }
      return undefined;
    });
    const missing = [...new Set(texts.filter((_, i) => out[i] === undefined))];
    const batch = this.opts.extractBatchSize ?? 8;
    const fresh = new Map<string, HiddenEntry>();
    for (let s = 0; s < missing.length; s += batch) {
      const chunk = missing.slice(s, s + batch);
      const results = await extract(chunk, rows ? chunk.map((t) => want.get(t)!) : undefined);
      if (results.length !== chunk.length)
        throw new Error(`internal: extract returned ${results.length} results for ${chunk.length} texts`);
      chunk.forEach((t, i) => {
        const entry = this.truncate(results[i]!, t);
        this.write(textKey(t), entry);
        this.stats.misses++;
        // What later reads will see (fp16 rounding included), so a run does not depend on hit or miss.
        fresh.set(t, this.read(textKey(t)) ?? entry);
      });
    }
    return texts.map((t, i) => out[i] ?? fresh.get(t)!);
  }

  close(): void {
    for (const fd of this.readFds.values()) closeSync(fd);
    this.readFds.clear();
    if (this.writeShard) closeSync(this.writeShard.fd);
    this.writeShard = undefined;
  }

  private truncate(r: { hidden: Tensor; ids: number[] }, text: string): HiddenEntry {
    const n = r.ids.length;
    const [rows, d] = r.hidden.shape;
    const padRows = this.opts.padId !== undefined;
    if (r.hidden.shape.length !== 2 || rows === undefined || rows < n || (!padRows && rows !== n) || d === undefined) {
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `hidden states of "${text.slice(0, 40)}" have shape [${r.hidden.shape}] for ${n} tokens`,
        'the extractor must return hidden [n_tokens (+ pad rows), hidden_size]',
      );
    }
    if (this.hiddenSize !== undefined && d !== this.hiddenSize) {
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `hidden size ${d} differs from ${this.hiddenSize} seen before in this cache`,
        'one cache folder holds one model; check the model fingerprint',
      );
    }
    this.hiddenSize = d;
    const keep = Math.min(rows, this.opts.maxLength);
    return { hidden: tensor([keep, d], r.hidden.data.slice(0, keep * d)), ids: r.ids.slice(0, Math.min(n, keep)) };
  }

  private write(key: string, e: HiddenEntry): void {
    const [rows, d] = e.hidden.shape as [number, number];
    const n = e.ids.length;
    const dt = this.opts.fp16 ? 'f16' : 'f32';
    const ids = Int32Array.from(e.ids);
    const h = dt === 'f16' ? f32ToF16(e.hidden.data) : e.hidden.data;
    const payload = new Uint8Array(ids.byteLength + h.byteLength);
    payload.set(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength), 0);
    payload.set(new Uint8Array(h.buffer, h.byteOffset, h.byteLength), ids.byteLength);
    const crc = crc32(payload);
    if (!this.folder) {
      this.memory.set(key, payload);
      this.index.set(key, { shard: '', offset: 0, n, rows, d, dt, crc });
      return;
    }
    const header = Buffer.from(JSON.stringify({ k: key, n, d, dt, crc, ...(rows !== n ? { rows } : {}) }), 'utf8');
    const pre = Buffer.alloc(8);
    MAGIC.copy(pre, 0);
    pre.writeUInt32LE(header.length, 4);
    if (!this.writeShard) {
      // A fresh file per writer ('wx': never append after another run's possibly torn tail, even when two
      // caches open in the same millisecond of the same process).
      const path = join(this.folder, `shard-${Date.now()}-${process.pid}-${randomBytes(4).toString('hex')}.bin`);
      this.writeShard = { path, fd: openSync(path, 'wx'), size: 0 };
    }
    const w = this.writeShard;
    const record = Buffer.concat([pre, header, payload]);
    let done = 0;
    while (done < record.length) done += writeSync(w.fd, record, done, record.length - done);
    this.index.set(key, { shard: w.path, offset: w.size + 8 + header.length, n, rows, d, dt, crc });
    w.size += record.length;
  }

  /** The entry for `key`, or undefined when absent or damaged (then forgotten, so it is recomputed). */
  private read(key: string): HiddenEntry | undefined {
    const loc = this.index.get(key);
    if (!loc) return undefined;
    let payload: Uint8Array | undefined;
    const bytes = loc.n * 4 + loc.rows * loc.d * (loc.dt === 'f16' ? 2 : 4);
    try {
      payload = this.folder ? readBytesAt(this.fd(loc.shard), loc.offset, bytes, loc.shard) : this.memory.get(key);
    } catch {
      payload = undefined;
    }
    if (!payload || payload.length !== bytes || crc32(payload) !== loc.crc) {
      this.stats.corrupt++;
      this.index.delete(key);
      return undefined;
    }
    const ids = Array.from(new Int32Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + loc.n * 4)));
    const hb = payload.buffer.slice(payload.byteOffset + loc.n * 4, payload.byteOffset + bytes);
    const hidden = loc.dt === 'f16' ? f16ToF32(new Uint16Array(hb)) : new Float32Array(hb);
    return { hidden: tensor([loc.rows, loc.d], hidden), ids };
  }

  private fd(shard: string): number {
    let fd = this.readFds.get(shard);
    if (fd === undefined) {
      fd = openSync(shard, 'r');
      this.readFds.set(shard, fd);
    }
    return fd;
  }

  /** Index every complete record of a shard; stop at the first damaged or truncated one. */
  private scanShard(path: string): void {
    const fd = this.fd(path);
    const size = fstatSync(fd).size;
    const pre = new Uint8Array(8);
    let pos = 0;
    while (pos + 8 <= size) {
      readExactly(fd, pre, pos, path);
      const len = Buffer.from(pre.buffer, 4, 4).readUInt32LE(0);
      if (!Buffer.from(pre.buffer, 0, 4).equals(MAGIC) || len > MAX_HEADER || pos + 8 + len > size) break;
      let h: { k?: unknown; n?: unknown; d?: unknown; dt?: unknown; crc?: unknown; rows?: unknown };
      try {
        h = JSON.parse(Buffer.from(readBytesAt(fd, pos + 8, len, path)).toString('utf8'));
      } catch {
        break;
      }
      const { k, n, d, dt, crc } = h;
      const rows = h.rows ?? n;
      if (
        typeof k !== 'string' ||
        typeof n !== 'number' ||
        typeof rows !== 'number' ||
        rows < n ||
        typeof d !== 'number' ||
        (dt !== 'f16' && dt !== 'f32') ||
        typeof crc !== 'number'
      )
        break;
      const payloadStart = pos + 8 + len;
      const end = payloadStart + n * 4 + rows * d * (dt === 'f16' ? 2 : 4);
      if (end > size) break; // a record cut short by a killed run
      this.index.set(k, { shard: path, offset: payloadStart, n, rows, d, dt, crc });
      this.hiddenSize ??= d;
      pos = end;
    }
  }
}

export function textKey(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
