/**
 * A small ONNX graph builder: values are names (strings), `op()` appends a node and returns its output
 * name(s), weights become initializers. `serialize()` gives the model bytes, with large weights either inline
 * or in one external-data file beside the model (ONNX's 2 GiB protobuf limit and ORT's mmap both want that).
 *
 * Weights are eager (`weight`, `initializer`: bytes held until serialize) or lazy (`lazyInitializers`: a
 * function that makes the bytes when serialize reaches them). Serializing to an external-data file produces,
 * writes and drops one lazy group at a time, so a graph of quantized weights is built holding about one weight.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { encodeModel, ONNX_DTYPE, type OnnxDType } from './onnxProto.js';
import type { Tensor } from '../util/tensor.js';

export type Dim = number | string;
export type AttrValue = number | string | number[] | string[] | { floats: number[] } | { float: number };

/** One or more initializers whose bytes one call makes (e.g. a quantized matrix, its scales, zero points). */
interface LazyGroup {
  produce: () => Uint8Array[];
  made?: Uint8Array[];
  /** Members not yet serialized: the bytes are dropped when this reaches 0. */
  pending: number;
}

interface Initializer {
  name: string;
  dtype: OnnxDType;
  dims: number[];
  bytes?: Uint8Array;
  lazy?: { group: LazyGroup; index: number };
}

interface NodeEntry {
  op_type: string;
  domain: string;
  name: string;
  input: string[];
  output: string[];
  attribute: object[];
}

/** A node as tests and tools inspect it (read-only). */
export interface NodeView {
  opType: string;
  domain: string;
  inputs: readonly string[];
  outputs: readonly string[];
}

const DTYPE_BYTES: Record<OnnxDType, number> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
  float16: 2,
  bfloat16: 2,
};

/** ONNX opsets the graphs target; com.microsoft is ORT's contrib domain (fused attention, norms, rotary). */
export const OPSET = 21;
export const MS_DOMAIN = 'com.microsoft';

export class GraphBuilder {
  private nodes: NodeEntry[] = [];
  private inits: Initializer[] = [];
  private inputs: object[] = [];
  private outputs: object[] = [];
  private counter = 0;
  private names = new Set<string>();

  constructor(readonly name: string) {}

  /** A fresh value name with a readable prefix (registered when a node or initializer takes it). */
  fresh(prefix: string): string {
    let n = `${prefix}_${this.counter++}`;
    while (this.names.has(n)) n = `${prefix}_${this.counter++}`;
    return n;
  }

  input(name: string, dtype: OnnxDType, shape: Dim[]): string {
    this.names.add(name);
    this.inputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  /** Mark `value` as a graph output named `name` (an Identity node renames when needed). */
  output(value: string, name: string, dtype: OnnxDType, shape: Dim[]): string {
    if (value !== name) this.op('Identity', [value], {}, { outputs: [name] });
    this.outputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  /** A float32 weight (initializer). */
  weight(name: string, t: Tensor<'float32'>): string {
    return this.initializer(
      name,
      'float32',
      t.shape,
      new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    );
  }

  initializer(name: string, dtype: OnnxDType, dims: number[], bytes: Uint8Array): string {
    if (this.names.has(name)) throw new Error(`internal: duplicate graph value name ${name}`);
    this.names.add(name);
    this.inits.push({ name, dtype, dims: [...dims], bytes });
    return name;
  }

  /**
   * Initializers made on demand: `produce` returns one byte array per part, in order, each exactly its dims'
   * size. Called once per serialize (or fingerprint); the bytes are dropped once written.
   */
  lazyInitializers(parts: { name: string; dtype: OnnxDType; dims: number[] }[], produce: () => Uint8Array[]): string[] {
    const group: LazyGroup = { produce, pending: 0 };
    return parts.map((p, index) => {
      if (this.names.has(p.name)) throw new Error(`internal: duplicate graph value name ${p.name}`);
      this.names.add(p.name);
      this.inits.push({ name: p.name, dtype: p.dtype, dims: [...p.dims], lazy: { group, index } });
      return p.name;
    });
  }

  lazyInitializer(name: string, dtype: OnnxDType, dims: number[], produce: () => Uint8Array): string {
    return this.lazyInitializers([{ name, dtype, dims }], () => [produce()])[0];
  }

  /** Every node, in order (read-only views, for tests that check which ops a build uses). */
  nodeViews(): NodeView[] {
    return this.nodes.map((n) => ({ opType: n.op_type, domain: n.domain, inputs: n.input, outputs: n.output }));
  }

  /** dtype and dims of an initializer; undefined when `name` is no initializer. */
  initializerInfo(name: string): { dtype: OnnxDType; dims: number[] } | undefined {
    const t = this.inits.find((i) => i.name === name);
    return t && { dtype: t.dtype, dims: [...t.dims] };
  }

  /** The bytes of initializer `t`, producing its lazy group on first use and dropping it after the last. */
  private bytesOf(t: Initializer): Uint8Array {
    if (t.bytes) return t.bytes;
    const { group, index } = t.lazy!;
    if (!group.made) {
      group.made = group.produce();
      group.pending = this.inits.filter((i) => i.lazy?.group === group).length;
    }
    const bytes = group.made[index];
    const want = t.dims.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (!bytes || bytes.byteLength !== want)
      throw new Error(`internal: lazy initializer ${t.name} made ${bytes?.byteLength} bytes, its dims need ${want}`);
    if (--group.pending === 0) group.made = undefined;
    return bytes;
  }

  constI64(values: number[], dims: number[] = [values.length]): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    return this.initializer(this.fresh('c_i64'), 'int64', dims, new Uint8Array(data.buffer));
  }

  constF32(values: number[], dims: number[] = [values.length]): string {
    const data = Float32Array.from(values);
    return this.initializer(this.fresh('c_f32'), 'float32', dims, new Uint8Array(data.buffer));
  }

  /**
   * Append a node. Returns its single output name, or all names when `opts.outputs` is a count > 1 or a list.
   * An empty string in `inputs` is an omitted optional input, as ONNX defines.
   */
  op(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; outputs?: number | string[]; name?: string } = {},
  ): string {
    const outs = this.opN(opType, inputs, attrs, opts);
    return outs[0];
  }

  opN(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; outputs?: number | string[]; name?: string } = {},
  ): string[] {
    const outs = Array.isArray(opts.outputs)
      ? opts.outputs
      : Array.from({ length: opts.outputs ?? 1 }, () => this.fresh(opType.toLowerCase()));
    for (const o of outs) this.names.add(o);
    this.nodes.push({
      op_type: opType,
      domain: opts.domain ?? '',
      name: opts.name ?? this.fresh(`n_${opType}`),
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /**
   * Serialize. Initializers larger than `inlineLimit` bytes go to `externalPath` (a file beside the model;
   * `externalName` is how the model refers to it) when one is given, each aligned to 4 KiB for mmap.
   * `onProgress` hears the initializer bytes made so far and their total (from the dims, nothing made): at 0, then
   * after each initializer, since making the weights (reading, converting, quantizing) is where a build's time goes.
   * Returns the model bytes.
   */
  serialize(
    opts: {
      externalPath?: string;
      externalName?: string;
      inlineLimit?: number;
      metadata?: Record<string, string>;
      onProgress?: (doneBytes: number, totalBytes: number) => void;
    } = {},
  ): Uint8Array {
    const limit = opts.inlineLimit ?? 1024;
    let fd: number | undefined;
    let offset = 0;
    const sizeOf = (t: Initializer) => t.dims.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    const total = this.inits.reduce((n, t) => n + sizeOf(t), 0);
    let done = 0;
    opts.onProgress?.(0, total);
    const initializer = this.inits.map((t) => {
      const base = { name: t.name, data_type: ONNX_DTYPE[t.dtype], dims: t.dims };
      const bytes = this.bytesOf(t);
      done += bytes.byteLength;
      opts.onProgress?.(done, total);
      if (!opts.externalPath || bytes.byteLength <= limit) return { ...base, raw_data: bytes };
      if (fd === undefined) fd = openSync(opts.externalPath, 'w');
      const pad = (4096 - (offset % 4096)) % 4096;
      if (pad) writeSync(fd, new Uint8Array(pad));
      offset += pad;
      writeAll(fd, bytes);
      const entry = {
        ...base,
        data_location: 1,
        external_data: [
          { key: 'location', value: opts.externalName ?? 'weights.bin' },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(bytes.byteLength) },
        ],
      };
      offset += bytes.byteLength;
      return entry;
    });
    if (fd !== undefined) closeSync(fd);
    return encodeModel({
      ir_version: 10,
      producer_name: 'lmsteer',
      opset_import: [
        { domain: '', version: OPSET },
        { domain: MS_DOMAIN, version: 1 },
      ],
      metadata_props: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: { name: this.name, node: this.nodes, initializer, input: this.inputs, output: this.outputs },
    });
  }

  /** A hash of the graph structure and all weights (lazy ones are produced for it, one group at a time). */
  fingerprint(): string {
    const h = createHash('sha256');
    h.update(JSON.stringify({ nodes: this.nodes, inputs: this.inputs, outputs: this.outputs }));
    for (const t of this.inits) {
      h.update(`${t.name}|${t.dtype}|${t.dims}|`);
      h.update(this.bytesOf(t));
    }
    return h.digest('hex');
  }
}

/** writeSync may write less than asked (and caps one call near 2 GiB): loop until all of `bytes` is out. */
function writeAll(fd: number, bytes: Uint8Array): void {
  const MAX = 1 << 30;
  for (let done = 0; done < bytes.byteLength;) {
    done += writeSync(fd, bytes, done, Math.min(MAX, bytes.byteLength - done));
  }
}

function valueInfo(name: string, dtype: OnnxDType, shape: Dim[]): object {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: ONNX_DTYPE[dtype],
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): object {
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: 2, i: v } : { name, type: 1, f: v };
  if (typeof v === 'string') return { name, type: 3, s: Buffer.from(v) };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string')
      return { name, type: 8, strings: (v as string[]).map((s) => Buffer.from(s)) };
    return { name, type: 7, ints: v as number[] };
  }
  if ('floats' in v) return { name, type: 6, floats: v.floats };
  return { name, type: 1, f: v.float };
}
