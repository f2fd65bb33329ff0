/**
 * safetensors (https://github.com/huggingface/safetensors): u64 LE header length N, N bytes of JSON
 *   { name: { dtype, shape, data_offsets: [begin, end] }, …, "__metadata__": { str: str } }
 * then the raw little-endian tensor bytes; offsets are relative to the start of that data section.
 * Reading is lazy (only the header at open; each tensor with a positioned read on `get`) so multi-GB files
 * cost no memory until used. fp16/bf16/f64 are converted to float32 on `get`; integer tensors via `getRaw`.
 */
import { closeSync, readdirSync, existsSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, isAbsolute, join, normalize, sep } from 'node:path';
import { LmSteerError } from '../util/errors.js';
import { firstNonFinite, numel, type Tensor } from '../util/tensor.js';
import type { WeightStore } from './weights.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './halfFloat.js';
import { readBytesAt } from './readAt.js';
import { openRegularFile } from './safeRead.js';
import { writeFileAtomic } from './atomicWrite.js';
import { readJsonFile } from './hfConfig.js';
import { fileIdentity } from './fileIdentity.js';

/** Bytes per element of every byte-sized dtype the safetensors spec defines. */
const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  F8_E8M0: 1,
} as const;
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;
// Valid in newer safetensors but packed below one byte per element: recognized, not readable.
const SUB_BYTE_DTYPES = new Set(['F4', 'F6_E2M3', 'F6_E3M2']);
const FLOAT_DTYPES = new Set<SafetensorsDtype>(['F32', 'F16', 'BF16', 'F64']);

/** The reference implementation refuses headers over 100 MB; anything larger is corruption, not a model. */
const MAX_HEADER_BYTES = 100_000_000;

export type RawArray =
  | Float64Array
  | Float32Array
  | Uint16Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** A tensor exactly as stored: F16/BF16 as their Uint16 bit patterns, BOOL and F8 as bytes. */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: RawArray;
}

/** Weights backed by safetensors file(s) that stay open until `close()`. */
export interface SafetensorsStore extends WeightStore {
  dtypeOf(name: string): SafetensorsDtype;
  /** The tensor in its stored dtype (integer tensors, or fp16 bits without widening). */
  getRaw(name: string): RawTensor;
  /** Rows [start, start + count) of a float matrix as float32: one positioned read of just those bytes. */
  readRows(name: string, start: number, count: number): Tensor<'float32'>;
  /** Path, size, mtime and header hash of every file (src/formats/fileIdentity.ts): the graph cache key. */
  identity(): string;
  close(): void;
}

export interface SafetensorsFile extends SafetensorsStore {
  readonly metadata: Record<string, string>;
}

interface Entry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: Map<string, Entry>;
  metadata: Record<string, string>;
}

function bad(
  message: string,
  hint = 'the file is corrupt or not safetensors; download or export it again',
): LmSteerError {
  return new LmSteerError('BAD_FILE', message, hint);
}

function checkLittleEndian(): void {
  if (endianness() !== 'LE') {
    throw new LmSteerError(
      'UNSUPPORTED',
      'safetensors reading needs a little-endian machine',
      'run lmsteer on x86-64 or ARM64',
    );
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Validate a parsed header. `dataStart` is the file offset of the data section, `dataLength` its size.
 * Exported for tests and for other readers of the same layout.
 */
export function parseSafetensorsHeader(
  path: string,
  json: unknown,
  dataStart: number,
  dataLength: number,
): SafetensorsHeader {
  if (!isPlainObject(json)) throw bad(`${path}: safetensors header is not a JSON object`);
  let metadata: Record<string, string> = {};
  const entries = new Map<string, Entry>();
  for (const [name, info] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(info) || !Object.values(info).every((v) => typeof v === 'string')) {
        throw bad(`${path}: "__metadata__" must map strings to strings`);
      }
      metadata = info as Record<string, string>;
      continue;
    }
    const at = `${path}: tensor "${name}"`;
    if (!isPlainObject(info)) throw bad(`${at} has no {dtype, shape, data_offsets} entry`);
    const { dtype, shape, data_offsets: offsets } = info;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      if (typeof dtype === 'string' && SUB_BYTE_DTYPES.has(dtype)) {
        throw new LmSteerError(
          'UNSUPPORTED',
          `${at} has dtype ${dtype}, which lmsteer cannot read`,
          'convert the checkpoint to F32, F16 or BF16',
        );
      }
      throw bad(
        `${at} has unknown dtype ${JSON.stringify(dtype)}`,
        `known dtypes: ${Object.keys(DTYPE_BYTES).join(', ')}`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw bad(`${at} has shape ${JSON.stringify(shape)}; expected a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
      throw bad(`${at} has data_offsets ${JSON.stringify(offsets)}; expected [begin, end] with 0 ≤ begin ≤ end`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLength) {
      throw bad(
        `${at} has data_offsets [${begin}, ${end}] beyond the data section (${dataLength} bytes)`,
        'the file is truncated; download or export it again',
      );
    }
    const size = DTYPE_BYTES[dtype as SafetensorsDtype];
    const expected = numel(shape as number[]) * size;
    if (end - begin !== expected) {
      throw bad(
        `${at} (${dtype} [${shape.join(', ')}]) needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    entries.set(name, {
      dtype: dtype as SafetensorsDtype,
      shape: shape as number[],
      begin: dataStart + begin,
      end: dataStart + end,
    });
  }
  // Two tensors sharing bytes means a corrupt header (the reference writer never aliases).
  const sorted = [...entries].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1];
    const [name, cur] = sorted[i];
    if (cur.begin < prev.end) {
      throw bad(
        `${path}: tensors "${prevName}" and "${name}" overlap (bytes ${prev.begin - dataStart}..${prev.end - dataStart} and ${cur.begin - dataStart}..${cur.end - dataStart} of the data section)`,
      );
    }
  }
  return { entries, metadata };
}

class SafetensorsReader implements SafetensorsFile {
  private fd: number | undefined;
  constructor(
    fd: number,
    readonly source: string,
    private readonly entries: Map<string, Entry>,
    readonly metadata: Record<string, string>,
    private readonly requireFinite: boolean,
    private readonly ident = '',
  ) {
    this.fd = fd;
  }

  identity(): string {
    return this.ident;
  }

  readRows(name: string, start: number, count: number): Tensor<'float32'> {
    const e = this.entry(name);
    if (e.shape.length !== 2 || !FLOAT_DTYPES.has(e.dtype) || start < 0 || count < 0 || start + count > e.shape[0]) {
      throw new Error(`internal: readRows(${name}, ${start}, ${count}) on ${e.dtype} [${e.shape}]`);
    }
    if (this.fd === undefined) throw new Error(`${this.source} was closed before reading "${name}"`);
    const rowBytes = e.shape[1] * DTYPE_BYTES[e.dtype];
    const bytes = readBytesAt(this.fd, e.begin + start * rowBytes, count * rowBytes, this.source);
    const raw = view(e.dtype, bytes);
    let data: Float32Array;
    if (e.dtype === 'F32') data = raw as Float32Array;
    else if (e.dtype === 'F16') data = f16ToF32(raw as Uint16Array);
    else if (e.dtype === 'BF16') data = bf16ToF32(raw as Uint16Array);
    else data = Float32Array.from(raw as Float64Array);
    return { dtype: 'float32', shape: [count, e.shape[1]], data };
  }

  names(): string[] {
    return [...this.entries.keys()];
  }
  has(name: string): boolean {
    return this.entries.has(name);
  }
  shape(name: string): number[] {
    return [...this.entry(name).shape];
  }
  dtypeOf(name: string): SafetensorsDtype {
    return this.entry(name).dtype;
  }

  get(name: string): Tensor<'float32'> {
    const e = this.entry(name);
    if (!FLOAT_DTYPES.has(e.dtype)) {
      throw new LmSteerError(
        'UNSUPPORTED',
        `tensor "${name}" in ${this.source} is ${e.dtype}, not a float tensor`,
        'read integer tensors with getRaw()',
      );
    }
    const raw = this.getRaw(name);
    let data: Float32Array;
    if (e.dtype === 'F32') data = raw.data as Float32Array;
    else if (e.dtype === 'F16') data = f16ToF32(raw.data as Uint16Array);
    else if (e.dtype === 'BF16') data = bf16ToF32(raw.data as Uint16Array);
    else data = Float32Array.from(raw.data as Float64Array);
    // Model weights are checked here, once, while the bytes are at hand: a NaN weight otherwise surfaces
    // only at sampling, as "logit of token 0 is NaN" with no file or tensor named.
    const bad = this.requireFinite ? firstNonFinite(data) : -1;
    if (bad >= 0) {
      throw new LmSteerError(
        'BAD_FILE',
        `tensor "${name}" in ${this.source} holds ${data[bad]} at flat index ${bad}`,
        'the checkpoint is damaged (or was saved after training diverged); download or export it again',
      );
    }
    return { dtype: 'float32', shape: raw.shape, data };
  }

  getRaw(name: string): RawTensor {
    const e = this.entry(name);
    if (this.fd === undefined) throw new Error(`${this.source} was closed before reading "${name}"`);
    const bytes = readBytesAt(this.fd, e.begin, e.end - e.begin, this.source);
    return { dtype: e.dtype, shape: [...e.shape], data: view(e.dtype, bytes) };
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) {
      throw new LmSteerError(
        'NOT_FOUND',
        `tensor "${name}" is missing from ${this.source}`,
        'the checkpoint does not match its config.json, or is incomplete',
      );
    }
    return e;
  }
}

/** A typed view of freshly read (so aligned) bytes in the tensor's stored dtype. */
function view(dtype: SafetensorsDtype, b: Uint8Array): RawArray {
  const { buffer, byteOffset: o } = b;
  const n = b.length / DTYPE_BYTES[dtype];
  switch (dtype) {
    case 'F64':
      return new Float64Array(buffer, o, n);
    case 'F32':
      return new Float32Array(buffer, o, n);
    case 'F16':
    case 'BF16':
    case 'U16':
      return new Uint16Array(buffer, o, n);
    case 'I64':
      return new BigInt64Array(buffer, o, n);
    case 'U64':
      return new BigUint64Array(buffer, o, n);
    case 'I32':
      return new Int32Array(buffer, o, n);
    case 'U32':
      return new Uint32Array(buffer, o, n);
    case 'I16':
      return new Int16Array(buffer, o, n);
    case 'I8':
      return new Int8Array(buffer, o, n);
    default:
      return b; // U8, BOOL, F8_*
  }
}

/**
 * Open one .safetensors file: reads and validates its header; tensors are read on `get`. With `requireFinite`
 * (model weights), `get` refuses a tensor holding NaN or ±Inf, naming it.
 */
export function openSafetensors(path: string, opts: { requireFinite?: boolean } = {}): SafetensorsFile {
  checkLittleEndian();
  const { fd, size } = openRegularFile(path, 'safetensors file');
  try {
    if (size < 8) throw bad(`${path} is ${size} bytes, shorter than the 8-byte safetensors header length`);
    const lenBig = Buffer.from(readBytesAt(fd, 0, 8, path)).readBigUInt64LE(0);
    if (lenBig > BigInt(MAX_HEADER_BYTES))
      throw bad(`${path}: header length ${lenBig} is absurd (limit ${MAX_HEADER_BYTES} bytes)`);
    const headerLen = Number(lenBig);
    if (8 + headerLen > size)
      throw bad(
        `${path}: header length ${headerLen} runs past the end of the ${size}-byte file`,
        'the file is truncated or not safetensors',
      );
    let text: string;
    let json: unknown;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(readBytesAt(fd, 8, headerLen, path));
      json = JSON.parse(text);
    } catch (err) {
      if (err instanceof LmSteerError) throw err;
      throw bad(`${path}: safetensors header is not valid UTF-8 JSON`);
    }
    // JSON.parse keeps the last of two equal keys: a second tensor of the same name would silently win.
    const dup = duplicateTopLevelKey(text);
    if (dup !== undefined) throw bad(`${path}: tensor "${dup}" is listed twice in the header`);
    const { entries, metadata } = parseSafetensorsHeader(path, json, 8 + headerLen, size - 8 - headerLen);
    const ident = fileIdentity(path, fd, readBytesAt(fd, 0, 8 + headerLen, path));
    return new SafetensorsReader(fd, path, entries, metadata, opts.requireFinite ?? false, ident);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * The first key that occurs twice at the top level of a JSON object text (already known to parse), or
 * undefined. One linear scan: strings are skipped whole, depth is tracked by brackets.
 */
export function duplicateTopLevelKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      if (depth === 1) {
        let k = j + 1;
        while (k < text.length && /\s/.test(text[k]!)) k++;
        if (text[k] === ':') {
          const key = JSON.parse(text.slice(i, j + 1)) as string;
          if (seen.has(key)) return key;
          seen.add(key);
        }
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return undefined;
}

/** Many shard files seen as one store, tensor name → the shard holding it. */
class ShardedStore implements SafetensorsStore {
  constructor(
    readonly source: string,
    private readonly shards: SafetensorsFile[],
    private readonly where: Map<string, SafetensorsFile>,
  ) {}
  names(): string[] {
    return [...this.where.keys()];
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  shape(name: string): number[] {
    return this.shard(name).shape(name);
  }
  dtypeOf(name: string): SafetensorsDtype {
    return this.shard(name).dtypeOf(name);
  }
  get(name: string): Tensor<'float32'> {
    return this.shard(name).get(name);
  }
  getRaw(name: string): RawTensor {
    return this.shard(name).getRaw(name);
  }
  readRows(name: string, start: number, count: number): Tensor<'float32'> {
    return this.shard(name).readRows(name, start, count);
  }
  identity(): string {
    return this.shards.map((s) => s.identity()).join('\n');
  }
  close(): void {
    for (const s of this.shards) s.close();
  }
  private shard(name: string): SafetensorsFile {
    const s = this.where.get(name);
    if (!s) {
      throw new LmSteerError(
        'NOT_FOUND',
        `tensor "${name}" is missing from ${this.source}`,
        'the checkpoint does not match its config.json, or is incomplete',
      );
    }
    return s;
  }
}

const INDEX_NAME = 'model.safetensors.index.json';
/** Model weights must be finite (see SafetensorsReader.get). */
const FINITE = { requireFinite: true };

/**
 * The weights of a model folder: model.safetensors; else the shards listed by model.safetensors.index.json
 * (transformers' order of preference); else a lone *.safetensors.index.json or a lone *.safetensors file.
 */
export function openSafetensorsModel(dir: string): SafetensorsStore {
  if (existsSync(join(dir, 'model.safetensors'))) return openSafetensors(join(dir, 'model.safetensors'), FINITE);
  if (existsSync(join(dir, INDEX_NAME))) return openSharded(dir, INDEX_NAME);
  const files = listFiles(dir);
  const indexes = files.filter((f) => f.endsWith('.safetensors.index.json'));
  if (indexes.length === 1) return openSharded(dir, indexes[0]);
  const singles = files.filter((f) => f.endsWith('.safetensors'));
  if (singles.length === 1 && indexes.length === 0) return openSafetensors(join(dir, singles[0]), FINITE);
  if (singles.length > 1 || indexes.length > 1) {
    throw new LmSteerError(
      'NOT_FOUND',
      `${dir} has ${[...indexes, ...singles].join(', ')} but no model.safetensors or ${INDEX_NAME} saying which to use`,
      `keep one .safetensors file, or add the ${INDEX_NAME} that lists the shards`,
    );
  }
  const torchBins = files.filter((f) => f.endsWith('.bin') || f.endsWith('.pt') || f.endsWith('.pth'));
  if (torchBins.length > 0) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${dir} holds PyTorch weights (${torchBins.join(', ')}) but no .safetensors file`,
      "convert them: python -c \"from transformers import AutoModelForCausalLM as M; M.from_pretrained('DIR').save_pretrained('OUT', safe_serialization=True)\"",
    );
  }
  throw new LmSteerError(
    'NOT_FOUND',
    `${dir} has no model.safetensors`,
    `a model folder needs model.safetensors (or ${INDEX_NAME} and its shards) beside config.json`,
  );
}

function listFiles(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => statSync(join(dir, f)).isFile())
      .sort();
  } catch (err) {
    throw new LmSteerError(
      'NOT_FOUND',
      `cannot list model folder ${dir}: ${(err as Error).message}`,
      'check the path',
      { cause: err },
    );
  }
}

function openSharded(dir: string, indexName: string): SafetensorsStore {
  const indexPath = join(dir, indexName);
  const index = readJsonFile(indexPath, 'safetensors index');
  const weightMap = isPlainObject(index) ? index.weight_map : undefined;
  if (!isPlainObject(weightMap) || Object.keys(weightMap).length === 0) {
    throw bad(`${indexPath} has no "weight_map" object listing tensor → shard file`, 'download the index file again');
  }
  const shardNames = new Set<string>();
  for (const [name, file] of Object.entries(weightMap)) {
    // Shard names come from a downloaded file: keep them inside the model folder.
    if (typeof file !== 'string' || file === '' || isAbsolute(file) || normalize(file).split(sep).includes('..')) {
      throw bad(
        `${indexPath}: weight_map["${name}"] = ${JSON.stringify(file)} is not a file name inside ${dir}`,
        'download the index file again',
      );
    }
    shardNames.add(file);
  }
  const shards: SafetensorsFile[] = [];
  const byFile = new Map<string, SafetensorsFile>();
  try {
    for (const file of [...shardNames].sort()) {
      const p = join(dir, file);
      if (!existsSync(p)) {
        throw new LmSteerError(
          'NOT_FOUND',
          `shard ${file} listed in ${indexPath} is missing`,
          `download all ${shardNames.size} shard files into ${dir}`,
        );
      }
      const shard = openSafetensors(p, FINITE);
      shards.push(shard);
      byFile.set(file, shard);
    }
    const where = new Map<string, SafetensorsFile>();
    for (const shard of shards) {
      for (const name of shard.names()) {
        const other = where.get(name);
        if (other)
          throw bad(
            `tensor "${name}" is in two shards: ${basename(other.source)} and ${basename(shard.source)} (${dir})`,
          );
        where.set(name, shard);
      }
    }
    for (const [name, file] of Object.entries(weightMap)) {
      if (where.get(name) !== byFile.get(file as string)) {
        throw bad(
          `${indexPath} says tensor "${name}" is in ${file}, but it is not there`,
          'the shards and the index disagree; download them again',
        );
      }
    }
    return new ShardedStore(indexPath, shards, where);
  } catch (err) {
    for (const s of shards) s.close();
    throw err;
  }
}

export interface WriteSafetensorsOptions {
  metadata?: Record<string, string>;
  /** Stored dtype (default F32); F16/BF16 round to nearest even. */
  dtype?: 'F32' | 'F16' | 'BF16';
}

/** Write float32 tensors (in the given order) to `path` atomically. */
export function writeSafetensors(
  path: string,
  tensors: Record<string, Tensor<'float32'>>,
  opts: WriteSafetensorsOptions = {},
): void {
  checkLittleEndian();
  const dtype = opts.dtype ?? 'F32';
  const header: Record<string, unknown> = {};
  if (opts.metadata) {
    for (const [k, v] of Object.entries(opts.metadata)) {
      if (typeof v !== 'string')
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `safetensors metadata "${k}" must be a string, got ${typeof v}`,
          'convert metadata values with String() or JSON.stringify()',
        );
    }
    header.__metadata__ = opts.metadata;
  }
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '' || name === '__metadata__')
      throw new LmSteerError('BAD_ARGUMENT', `cannot write a tensor named "${name}" to ${path}`, 'rename the tensor');
    if (numel(t.shape) !== t.data.length) {
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `tensor "${name}" has ${t.data.length} values but shape [${t.shape}]`,
        'fix the tensor before saving',
      );
    }
    const stored = dtype === 'F32' ? t.data : dtype === 'F16' ? f32ToF16(t.data) : f32ToBf16(t.data);
    const bytes = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    blobs.push(bytes);
    offset += bytes.length;
  }
  // The spec pads the header with spaces so the data section starts 8-byte aligned.
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  writeFileAtomic(path, [len, headerBytes, ...blobs]);
}

/** Every tensor of a (small) safetensors file as float32, with its metadata. */
export function readAllSafetensors(path: string): {
  tensors: Record<string, Tensor<'float32'>>;
  metadata: Record<string, string>;
} {
  const file = openSafetensors(path);
  try {
    const tensors: Record<string, Tensor<'float32'>> = {};
    for (const name of file.names()) tensors[name] = file.get(name);
    return { tensors, metadata: { ...file.metadata } };
  } finally {
    file.close();
  }
}
