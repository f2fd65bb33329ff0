/**
 * Reading PyTorch `.pt` files (torch.save's zip container, torch ≥ 1.6) into plain values and Tensors,
 * importing the reference LM-Steer checkpoints, and writing them back (saveReferenceCheckpoint) (github.com/Glaciohound/LM-Steer, experiments/training/train.py:
 * `torch.save([args, model.state_dict(), n_steps], ckpt_name)`, state = {projector1, projector2} : [S, d, r]).
 * Container: `<prefix>/data.pkl` (the pickle), `<prefix>/data/<key>` (raw storage bytes), `<prefix>/version`,
 * optionally `<prefix>/byteorder`. The pickle is decoded by ./pickle.ts, which executes nothing; only the
 * tensor-rebuilding functions below are interpreted.
 */
import { unzipSync, zipSync } from 'fflate';
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import { BASE_SLOT, DEFAULT_EPS, validateSteer, type BaseModelInfo, type Steer } from '../steer/steer.js';
import { bf16ToF32, f16ToF32 } from './halfFloat.js';
import { FILE_LIMITS, readRegularFile } from './safeRead.js';
import { PyGlobal, PyObject, setOwn, unpickle, type PyClassHandler } from './pickle.js';

/** Storage classes torch.save names in persistent ids, and how their elements are stored. */
const STORAGE_DTYPES: Record<string, { bytes: number; kind: 'f32' | 'f16' | 'bf16' | 'f64' | 'i64' | 'i32' }> = {
  FloatStorage: { bytes: 4, kind: 'f32' },
  HalfStorage: { bytes: 2, kind: 'f16' },
  BFloat16Storage: { bytes: 2, kind: 'bf16' },
  DoubleStorage: { bytes: 8, kind: 'f64' },
  LongStorage: { bytes: 8, kind: 'i64' },
  IntStorage: { bytes: 4, kind: 'i32' },
};

/** A storage named by a persistent id; its bytes are read from the zip when a tensor is rebuilt on it. */
interface StorageRef {
  storageClass: string;
  key: string;
  numel: number;
}

export type TorchTensor = Tensor<'float32'> | Tensor<'int64'> | Tensor<'int32'>;

/** Caps on what a .pt may make us allocate (reference steers are a few MB; these are far above). */
export const PT_LIMITS = {
  /** Zip entries listed in the central directory. */
  entries: 10_000,
  /** The pickle (data.pkl), inflated. */
  pickleBytes: 64 << 20,
  /** All storages the pickle references, inflated, together. */
  storageBytes: 256 << 20,
};

/**
 * Load a torch.save file into plain values: dicts → Map, lists/tuples → arrays, argparse.Namespace → plain
 * object, tensors (and nn.Parameters) → Tensor (fp16/bf16/fp64 widened or narrowed to float32), any other
 * object → an inert PyObject.
 */
export function loadTorchFile(path: string): unknown {
  return loadTorchBytes(readRegularFile(path, FILE_LIMITS.pt, '.pt file'), path);
}

interface ZipEntryInfo {
  name: string;
  originalSize: number;
}

/**
 * The zip's entries, and their inflation on demand. Only what the pickle references is ever inflated, and
 * only up to the sizes the pickle promises (fflate allocates the declared size, so that is checked first).
 */
function zipOf(bytes: Uint8Array, source: string) {
  const damaged = (e: unknown): never => {
    if (e instanceof LmSteerError) throw e;
    throw new LmSteerError(
      'BAD_FILE',
      `${source}: cannot read its zip container (${(e as Error).message})`,
      'the file is truncated or damaged; copy it again',
    );
  };
  const dir = new Map<string, ZipEntryInfo>();
  try {
    unzipSync(bytes, {
      filter: (f) => {
        if (dir.size >= PT_LIMITS.entries)
          throw new LmSteerError(
            'BAD_FILE',
            `${source}: the zip lists more than ${PT_LIMITS.entries} entries`,
            'a torch.save file has a few entries per tensor; this is not one',
          );
        dir.set(f.name, { name: f.name, originalSize: f.originalSize });
        return false;
      },
    });
  } catch (e) {
    damaged(e);
  }
  /** Inflate `wanted` (name → most bytes it may have) in one pass. */
  const inflate = (wanted: Map<string, number>): Record<string, Uint8Array> => {
    try {
      return unzipSync(bytes, {
        filter: (f) => {
          const max = wanted.get(f.name);
          if (max === undefined) return false;
          if (f.originalSize > max)
            throw new LmSteerError(
              'BAD_FILE',
              `${source}: zip entry ${f.name} inflates to ${f.originalSize} bytes, more than the ${max} it should hold`,
              'the file is damaged or crafted; use the original checkpoint',
            );
          return true;
        },
      });
    } catch (e) {
      return damaged(e);
    }
  };
  return { dir, inflate };
}

export function loadTorchBytes(bytes: Uint8Array, source = '.pt file'): unknown {
  if (bytes[0] === 0x80 && bytes[1] !== undefined && bytes[1] <= 5) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${source} is in PyTorch's legacy (pre-1.6) serialization format, not the zip container`,
      'load it once with torch >= 1.6 and torch.save it again: torch.save(torch.load(p), p)',
    );
  }
  if (!(bytes[0] === 0x50 && bytes[1] === 0x4b)) {
    throw new LmSteerError(
      'BAD_FILE',
      `${source} is not a PyTorch checkpoint (no zip signature)`,
      'pass a file written by torch.save',
    );
  }
  const zip = zipOf(bytes, source);
  const names = [...zip.dir.keys()];
  const pklName = names.find((n) => /^[^/]+\/data\.pkl$/.test(n)) ?? names.find((n) => n.endsWith('data.pkl'));
  if (!pklName) {
    throw new LmSteerError(
      'BAD_FILE',
      `${source}: the zip holds no data.pkl (entries: ${names.slice(0, 8).join(', ').slice(0, 300) || 'none'})`,
      'this zip was not written by torch.save',
    );
  }
  const prefix = pklName.slice(0, -'data.pkl'.length);
  const head = zip.inflate(
    new Map([
      [pklName, PT_LIMITS.pickleBytes],
      [`${prefix}byteorder`, 64],
    ]),
  );
  const pickle = head[pklName]!;
  const order = head[`${prefix}byteorder`];
  const bigEndian = order !== undefined && new TextDecoder().decode(order).trim() === 'big';

  const persistentLoad = (pid: unknown): StorageRef => {
    // ('storage', storage_type, key, location, numel): torch/serialization.py, persistent_id in _save
    if (!Array.isArray(pid) || pid[0] !== 'storage' || !(pid[1] instanceof PyGlobal)) {
      throw new LmSteerError('BAD_FILE', `${source}: unexpected persistent id ${describe(pid)}`);
    }
    const numel = pid[4];
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0)
      throw new LmSteerError('BAD_FILE', `${source}: storage ${describe(pid[2])} has element count ${describe(numel)}`);
    return { storageClass: pid[1].name, key: String(pid[2]), numel };
  };
  const dtypeOf = (storage: StorageRef) => {
    const dt = STORAGE_DTYPES[storage.storageClass];
    if (!dt)
      throw new LmSteerError(
        'UNSUPPORTED',
        `${source}: tensors of torch.${storage.storageClass} are not supported`,
        'only float, half, bfloat16, double, int and long tensors can be read',
      );
    return dt;
  };
  const classes = (rebuild: (s: unknown, o: unknown, size: unknown, stride: unknown) => unknown) =>
    ({
      // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      'torch._utils._rebuild_tensor_v2': { reduce: ([s, o, size, stride]) => rebuild(s, o, size, stride) },
      'torch._utils._rebuild_tensor': { reduce: ([s, o, size, stride]) => rebuild(s, o, size, stride) },
      // nn.Parameter(data, requires_grad, hooks[, state]): the reference's state_dict() returns Parameters
      'torch._utils._rebuild_parameter': { reduce: ([data]) => data },
      'torch._utils._rebuild_parameter_with_state': { reduce: ([data]) => data },
    }) satisfies Record<string, PyClassHandler>;
  const where = `${source} (${pklName})`;

  // Pass 1: which storages the tensors use, and how big they say they are; nothing is inflated yet.
  const used = new Map<string, number>();
  let total = 0;
  unpickle(pickle, {
    persistentLoad,
    source: where,
    classes: classes((storage) => {
      if (!isStorageRef(storage)) throw new LmSteerError('BAD_FILE', `${source}: malformed tensor record`);
      const name = `${prefix}data/${storage.key}`;
      const bytes = storage.numel * dtypeOf(storage).bytes;
      if (!zip.dir.has(name))
        throw new LmSteerError(
          'BAD_FILE',
          `${source}: storage data/${storage.key} is missing from the zip`,
          'the file is truncated or damaged',
        );
      if (!used.has(name)) total += bytes;
      used.set(name, Math.max(used.get(name) ?? 0, bytes));
      if (total > PT_LIMITS.storageBytes)
        throw new LmSteerError(
          'BAD_FILE',
          `${source}: its tensors need more than ${PT_LIMITS.storageBytes} bytes`,
          'LM-Steer checkpoints are a few MB; this is not one',
        );
      return null;
    }),
  });

  // Pass 2: inflate just those storages (each at most 64 KiB beyond what it must hold), then rebuild.
  const raw = zip.inflate(new Map([...used].map(([n, b]) => [n, b + 65536])));
  const decoded = new Map<string, Flat>();
  const rebuild = (storage: unknown, offset: unknown, size: unknown, stride: unknown): TorchTensor => {
    if (!isStorageRef(storage) || !Array.isArray(size) || !Array.isArray(stride)) {
      throw new LmSteerError('BAD_FILE', `${source}: malformed tensor record`);
    }
    const dt = dtypeOf(storage);
    const name = `${prefix}data/${storage.key}`;
    let flat = decoded.get(name);
    if (!flat) {
      const bytes = raw[name]!;
      if (bytes.length < storage.numel * dt.bytes) {
        throw new LmSteerError(
          'BAD_FILE',
          `${source}: storage data/${storage.key} has ${bytes.length} bytes, needs ${storage.numel * dt.bytes}`,
        );
      }
      flat = readStorage(bytes.subarray(0, storage.numel * dt.bytes), dt.kind, dt.bytes, bigEndian);
      decoded.set(name, flat);
    }
    return gather(flat, size, stride, offset, source, dt.kind);
  };
  return unpickle(pickle, { classes: classes(rebuild), persistentLoad, source: where });
}

function isStorageRef(x: unknown): x is StorageRef {
  return typeof x === 'object' && x !== null && 'storageClass' in x && 'key' in x;
}

type Flat = Float32Array | BigInt64Array | Int32Array;

function readStorage(raw: Uint8Array, kind: string, width: number, bigEndian: boolean): Flat {
  const copy = raw.slice(); // aligned, and safe to byte-swap
  if (bigEndian && width > 1) {
    for (let i = 0; i < copy.length; i += width) copy.subarray(i, i + width).reverse();
  }
  const buf = copy.buffer;
  switch (kind) {
    case 'f32':
      return new Float32Array(buf, 0, copy.length >> 2);
    case 'f64':
      return Float32Array.from(new Float64Array(buf, 0, copy.length >> 3));
    case 'f16':
      return f16ToF32(new Uint16Array(buf, 0, copy.length >> 1));
    case 'bf16':
      return bf16ToF32(new Uint16Array(buf, 0, copy.length >> 1));
    case 'i64':
      return new BigInt64Array(buf, 0, copy.length >> 3);
    case 'i32':
      return new Int32Array(buf, 0, copy.length >> 2);
  }
  throw new Error(`unhandled storage kind ${kind}`);
}

/** Copy the (possibly strided, offset) view into a contiguous row-major tensor. */
/**
 * Copy the (possibly strided, offset) view into a contiguous row-major tensor. Every number comes from the
 * file, so all are checked before anything is allocated: sizes and strides non-negative integers, the
 * element count at most the storage's (a view may not be bigger than its storage: stride-0 "expanded"
 * records would otherwise make a few bytes fill gigabytes), and every index it reads inside the storage.
 */
function gather(
  flat: Flat,
  size: unknown[],
  stride: unknown[],
  offset: unknown,
  source: string,
  kind: string,
): TorchTensor {
  const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (size.length !== stride.length || size.length > 16 || !size.every(isIndex) || !stride.every(isIndex)) {
    throw new LmSteerError(
      'BAD_FILE',
      `${source}: tensor size ${describe(size)} / stride ${describe(stride)} are malformed`,
    );
  }
  if (!isIndex(offset))
    throw new LmSteerError('BAD_FILE', `${source}: tensor storage offset ${describe(offset)} is not a valid index`);
  const sz = size as number[];
  const st = stride as number[];
  let n = 1;
  for (const s of sz) n = Math.min(n * s, Number.MAX_SAFE_INTEGER);
  if (n > flat.length) {
    throw new LmSteerError(
      'BAD_FILE',
      `${source}: tensor of size ${describe(size)} has more elements than its storage of ${flat.length}`,
      'the file is damaged or crafted; expanded (stride-0) tensors cannot be read: save them with .contiguous()',
    );
  }
  let maxIndex = offset;
  sz.forEach((s, i) => (maxIndex += s > 0 ? (s - 1) * st[i]! : 0));
  if (n > 0 && maxIndex >= flat.length) {
    throw new LmSteerError(
      'BAD_FILE',
      `${source}: tensor of size [${sz}] reads past its storage of ${flat.length} elements`,
    );
  }
  const contiguous = sz.every((_, i) => st[i] === sz.slice(i + 1).reduce((a, b) => a * b, 1) || sz[i] === 1);
  let data: Flat;
  if (contiguous) data = flat.slice(offset, offset + n);
  else {
    data = new (flat.constructor as { new (n: number): Flat })(n);
    const idx = new Array(sz.length).fill(0);
    for (let o = 0; o < n; o++) {
      let src = offset;
      for (let i = 0; i < sz.length; i++) src += idx[i] * st[i]!;
      data[o] = flat[src]!;
      for (let i = sz.length - 1; i >= 0; i--) {
        if (++idx[i] < sz[i]!) break;
        idx[i] = 0;
      }
    }
  }
  const dtype = kind === 'i64' ? 'int64' : kind === 'i32' ? 'int32' : 'float32';
  return { dtype, shape: [...sz], data } as TorchTensor;
}

function describe(x: unknown): string {
  try {
    return (
      JSON.stringify(x, (_, v) =>
        typeof v === 'bigint' ? v.toString() : v instanceof PyGlobal ? v.fullName : v,
      )?.slice(0, 120) ?? String(x)
    );
  } catch {
    return String(x);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The reference LM-Steer checkpoint

export interface ReferenceCheckpoint {
  /** The training flags (argparse.Namespace of lm_steer/arguments.py): epsilon, rank, num_steers, dummy_steer, … */
  args: Record<string, unknown>;
  projector1: Tensor<'float32'>; // [S, d, r]
  projector2: Tensor<'float32'>; // [S, d, r]
  steps: number;
  /** The file it came from. */
  path: string;
}

/** Read a reference checkpoint `[args, {projector1, projector2}, n_steps]` (a bare state dict is accepted too). */
export function importReferenceCheckpoint(path: string): ReferenceCheckpoint {
  const value = loadTorchFile(path);
  const hint =
    'expected a checkpoint saved by LM-Steer\'s experiments/training/train.py: [args, {"projector1", "projector2"}, n_steps]';
  let argsValue: unknown = {};
  let state: unknown;
  let steps: unknown = 0;
  if (Array.isArray(value) && value.length === 3) [argsValue, state, steps] = value;
  else if (value instanceof Map) state = value;
  else throw new LmSteerError('BAD_FILE', `${path}: holds ${kindOf(value)}, not an LM-Steer checkpoint`, hint);

  const args = toArgs(argsValue, path, hint);
  if (!(state instanceof Map))
    throw new LmSteerError('BAD_FILE', `${path}: the steer state is ${kindOf(state)}, expected a dict`, hint);
  if (!state.has('projector1') && (state.has('add_vec') || state.has('offset_vec'))) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${path}: holds an "${state.has('add_vec') ? 'add' : 'offset'}" adaptor, not LM-Steer's "multiply" steer`,
      'only checkpoints trained with --adaptor_class multiply (the default) can be imported',
    );
  }
  const p1 = state.get('projector1');
  const p2 = state.get('projector2');
  for (const [name, t] of [
    ['projector1', p1],
    ['projector2', p2],
  ] as const) {
    if (!isFloatTensor(t))
      throw new LmSteerError(
        'BAD_FILE',
        `${path}: "${name}" is ${t === undefined ? 'missing' : kindOf(t)}, expected a float tensor`,
        hint,
      );
    if (t.shape.length !== 3)
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `${path}: "${name}" has shape [${t.shape}], expected [slots, hidden, rank]`,
        hint,
      );
  }
  const t1 = p1 as Tensor<'float32'>;
  const t2 = p2 as Tensor<'float32'>;
  if (t1.shape.join() !== t2.shape.join()) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `${path}: projector1 is [${t1.shape}] but projector2 is [${t2.shape}]`,
      hint,
    );
  }
  const n = typeof steps === 'bigint' ? Number(steps) : steps;
  return { args, projector1: t1, projector2: t2, steps: typeof n === 'number' && Number.isFinite(n) ? n : 0, path };
}

function toArgs(v: unknown, path: string, hint: string): Record<string, unknown> {
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) setOwn(o, String(k), x);
    return o;
  }
  if (v instanceof PyObject && v.state instanceof Map) return toArgs(v.state, path, hint);
  if (v === null || v instanceof PyObject || typeof v !== 'object' || Array.isArray(v)) {
    throw new LmSteerError(
      'BAD_FILE',
      `${path}: the training args are ${kindOf(v)}, expected an argparse.Namespace`,
      hint,
    );
  }
  return v as Record<string, unknown>;
}

function isFloatTensor(x: unknown): x is Tensor<'float32'> {
  return (
    typeof x === 'object' &&
    x !== null &&
    (x as Tensor).dtype === 'float32' &&
    (x as Tensor).data instanceof Float32Array
  );
}

function kindOf(x: unknown): string {
  if (x === null || x === undefined) return 'None';
  if (x instanceof PyObject) return `a ${x.className} object`;
  if (x instanceof Map) return 'a dict';
  if (Array.isArray(x)) return `a sequence of ${x.length}`;
  return `a ${typeof x}`;
}

export interface ReferenceImportOptions {
  /** The steer's name (the `steer` in `steer.slot` value names). */
  name?: string;
  /** Names for the settable slots in slot order (default `slot0`, `slot1`, … by their index in the file). */
  slotNames?: string[];
}

/**
 * A reference checkpoint as a Steer for `baseModel`. Read from the reference's flags (lm_steer/arguments.py):
 * `epsilon` (default 1e-3), `dummy_steer` (index of the slot held at 1 in training and generation, or None),
 * `adaptor_class` (only "multiply" is LM-Steer), `adapted_component` (only "final_layer": the LM head).
 * Rank and slot count come from the tensors' shape, which is what the reference's forward actually uses.
 */
export function referenceCheckpointToSteer(
  ckpt: ReferenceCheckpoint,
  baseModel: BaseModelInfo,
  opts: ReferenceImportOptions = {},
): Steer {
  const { args, path } = ckpt;
  const [S, d, r] = ckpt.projector1.shape as [number, number, number];
  const trainedOn = typeof args.model_name === 'string' ? ` (trained on ${args.model_name})` : '';
  if (d !== baseModel.hiddenSize) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `${path}: the steer${trainedOn} has hidden size ${d}, but ${baseModel.id} has hidden size ${baseModel.hiddenSize}`,
      'import it for the model it was trained on',
    );
  }
  if (args.adaptor_class !== undefined && args.adaptor_class !== 'multiply') {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${path}: adaptor_class is "${String(args.adaptor_class)}", only LM-Steer's "multiply" is supported`,
    );
  }
  if (args.adapted_component !== undefined && args.adapted_component !== 'final_layer') {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${path}: adapted_component is "${String(args.adapted_component)}"; only "final_layer" (the output embeddings) is supported`,
    );
  }
  const eps = args.epsilon === undefined || args.epsilon === null ? DEFAULT_EPS : args.epsilon;
  if (typeof eps !== 'number' || !Number.isFinite(eps))
    throw new LmSteerError('BAD_FILE', `${path}: args.epsilon is ${String(eps)}, not a number`);
  const dummy = args.dummy_steer ?? null;
  if (dummy !== null && !(typeof dummy === 'number' && Number.isInteger(dummy) && dummy >= 0 && dummy < S)) {
    throw new LmSteerError('BAD_FILE', `${path}: args.dummy_steer is ${String(dummy)}, but the steer has ${S} slots`);
  }
  const settable = S - (dummy === null ? 0 : 1);
  // lmsteer's own names, when lmsteer wrote the file (referenceExport.ts); given names win.
  const storedNames = args.lmsteer_slot_names;
  const slotNames =
    opts.slotNames ??
    (Array.isArray(storedNames) &&
    storedNames.length === settable &&
    storedNames.every((n) => typeof n === 'string' && n !== '' && n !== BASE_SLOT) &&
    new Set(storedNames).size === settable
      ? (storedNames as string[])
      : undefined);
  const name = opts.name ?? (typeof args.lmsteer_name === 'string' ? args.lmsteer_name : undefined);
  if (opts.slotNames && opts.slotNames.length !== settable) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${opts.slotNames.length} slot names given, but ${path} has ${settable} settable slots`,
    );
  }
  let u = 0;
  const slots = Array.from({ length: S }, (_, i) =>
    i === dummy ? { name: BASE_SLOT, defaultValue: 1 } : { name: slotNames?.[u++] ?? `slot${i}`, defaultValue: 0 },
  );
  const num = (k: string) => (typeof args[k] === 'number' ? (args[k] as number) : undefined);
  const str = (k: string) => (typeof args[k] === 'string' ? (args[k] as string) : undefined);
  const steer: Steer = {
    config: {
      formatVersion: 1,
      ...(name ? { name } : {}),
      baseModel,
      eps,
      rank: r,
      slots,
      training: dropUndefined({
        dataset: str('dataset_name'),
        steps: ckpt.steps,
        lr: num('lr'),
        batchSize: num('batch_size'),
        regularization: num('regularization'),
        seed: num('seed'),
        trainingSlot: num('training_steer'),
      }),
      source: { kind: 'reference-pt', path, referenceArgs: jsonSafe(args) },
    },
    p1: ckpt.projector1,
    p2: ckpt.projector2,
  };
  validateSteer(steer, path);
  return steer;
}

function dropUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** The args as JSON (steer.json keeps them for provenance): numbers, strings, bools, null and lists of them. */
function jsonSafe(args: Record<string, unknown>): Record<string, unknown> {
  // Depth-bounded: a pickle can make a list that contains itself.
  const conv = (v: unknown, depth = 0): unknown =>
    v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))
      ? v
      : typeof v === 'bigint'
        ? v.toString()
        : Array.isArray(v)
          ? depth >= 4
            ? '<list>'
            : v.slice(0, 64).map((x) => conv(x, depth + 1))
          : v instanceof PyObject
            ? `<${v.className}>`
            : typeof v === 'object'
              ? '<object>'
              : String(v);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) if (!k.startsWith('lmsteer_')) setOwn(out, k, conv(v));
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Writing a reference checkpoint

/** A training argument as the reference's argparse.Namespace holds them. */
export type PyArg = number | string | boolean | null | PyArg[];

/**
 * A minimal pickle writer (protocol 2, torch.save's default) for exactly what a reference checkpoint holds:
 * None, bools, ints, floats, strings, lists, an argparse.Namespace, a dict and float tensors on storages.
 * No memo: every value is written once, which readers accept.
 */
class Pickler {
  private readonly out: number[] = [0x80, 2]; // PROTO 2
  private bytes(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.out.push(b[i]!);
    return this;
  }
  op(...codes: number[]): this {
    return this.bytes(codes);
  }
  global(module: string, name: string): this {
    return this.op(0x63).bytes(Buffer.from(`${module}\n${name}\n`, 'latin1')); // GLOBAL
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const n = Buffer.alloc(4);
    n.writeUInt32LE(b.length);
    return this.op(0x58).bytes(n).bytes(b); // BINUNICODE
  }
  int(v: number): this {
    if (v >= 0 && v < 256) return this.op(0x4b, v); // BININT1
    if (v >= 0 && v < 65536) return this.op(0x4d, v & 0xff, v >> 8); // BININT2
    if (v >= -(2 ** 31) && v < 2 ** 31) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v);
      return this.op(0x4a).bytes(b); // BININT
    }
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(v));
    return this.op(0x8a, 8).bytes(b); // LONG1
  }
  float(v: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    return this.op(0x47).bytes(b); // BINFLOAT
  }
  value(v: PyArg): this {
    if (v === null) return this.op(0x4e); // NONE
    if (typeof v === 'boolean') return this.op(v ? 0x88 : 0x89); // NEWTRUE / NEWFALSE
    if (typeof v === 'string') return this.str(v);
    if (typeof v === 'number') return Number.isSafeInteger(v) ? this.int(v) : this.float(v);
    this.op(0x5d, 0x28); // EMPTY_LIST MARK
    v.forEach((x) => this.value(x));
    return this.op(0x65); // APPENDS
  }
  tuple(xs: number[]): this {
    this.op(0x28);
    xs.forEach((x) => this.int(x));
    return this.op(0x74); // TUPLE
  }
  /** torch._utils._rebuild_tensor_v2(storage `key`, 0, shape, contiguous strides, False, OrderedDict()). */
  tensor(key: string, shape: number[]): this {
    const numel = shape.reduce((a, b) => a * b, 1);
    const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    this.global('torch._utils', '_rebuild_tensor_v2').op(0x28);
    this.op(0x28).str('storage').global('torch', 'FloatStorage').str(key).str('cpu').int(numel).op(0x74, 0x51); // BINPERSID
    this.int(0).tuple(shape).tuple(stride).op(0x89);
    this.global('collections', 'OrderedDict').op(0x29, 0x52); // EMPTY_TUPLE REDUCE
    return this.op(0x74, 0x52); // TUPLE REDUCE
  }
  done(): Uint8Array {
    return Uint8Array.from([...this.out, 0x2e]); // STOP
  }
}

/**
 * `torch.save([args, {"projector1": P1, "projector2": P2}, n_steps], path)` as the reference's train.py writes it:
 * args an argparse.Namespace, the tensors float32 [S, d, r] on storages data/0 and data/1, in torch's zip
 * layout (stored entries, data aligned to 64 bytes, `version` 3, `byteorder` little), readable by torch.load
 * (weights_only=False, or with argparse.Namespace allowed: torch ≥ 2.6 refuses unknown classes by default, as it
 * does for the reference's own checkpoints).
 */
export function referenceCheckpointBytes(
  args: Record<string, PyArg>,
  projector1: Tensor,
  projector2: Tensor,
  steps: number,
  archiveName = 'archive',
): Uint8Array {
  const p = new Pickler().op(0x5d, 0x28); // EMPTY_LIST MARK
  p.global('argparse', 'Namespace').op(0x29, 0x81, 0x7d, 0x28); // EMPTY_TUPLE NEWOBJ EMPTY_DICT MARK
  for (const [k, v] of Object.entries(args)) p.str(k).value(v);
  p.op(0x75, 0x62); // SETITEMS BUILD
  p.op(0x7d, 0x28).str('projector1').tensor('0', projector1.shape).str('projector2').tensor('1', projector2.shape);
  p.op(0x75); // SETITEMS
  p.int(steps).op(0x65); // APPENDS
  const le = (t: Tensor) => {
    const data = t.data as Float32Array;
    const out = new Uint8Array(data.length * 4);
    const view = new DataView(out.buffer);
    for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
    return out;
  };
  const files: [string, Uint8Array][] = [
    [`${archiveName}/data.pkl`, p.done()],
    [`${archiveName}/byteorder`, new TextEncoder().encode('little')],
    [`${archiveName}/data/0`, le(projector1)],
    [`${archiveName}/data/1`, le(projector2)],
    [`${archiveName}/version`, new TextEncoder().encode('3\n')],
  ];
  // torch pads each local header with an extra field ("FB") so that every record's data starts at a multiple
  // of 64 bytes (mmap-able); fflate lays out entries in order, 30 + name + extra bytes of header each.
  const zipInput: Record<string, [Uint8Array, { level: 0; mtime: Date; extra: Record<number, Uint8Array> }]> = {};
  let offset = 0;
  for (const [name, data] of files) {
    const head = 30 + Buffer.byteLength(name, 'utf8') + 4;
    const pad = (64 - ((offset + head) % 64)) % 64;
    zipInput[name] = [data, { level: 0, mtime: new Date(1980, 0, 1), extra: { 0x4246: new Uint8Array(pad) } }];
    offset += head + pad + data.length;
  }
  return zipSync(zipInput);
}
