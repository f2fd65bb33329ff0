/**
 * Existing ONNX decoder exports (Hugging Face optimum / transformers.js layout) → a steerable graph.
 *
 * An export takes `input_ids`, `attention_mask` [B, P+S], optionally `position_ids` and `use_cache_branch`
 * (merged decoders), and `past_key_values.{i}.key|value` [B, kvH, P, hd]; it returns `logits` and
 * `present.{i}.key|value`. We find the LM head (the node whose output is `logits`), expose its input h as a new
 * graph output `hidden`, and insert the packed steer of docs/ARCHITECTURE.md ("The steer in the graph") before it:
 *   h' = h + ((h · steer_p1) ⊙ steer_scale) · steer_p2t,   logits = head(h')
 * Everything else in the graph is left as exported. External data stays where it is: the rewritten model keeps
 * the relative locations and is opened from bytes with ORT's external-initializer folder set to the export's
 * folder (ORT ≥ 1.20 refuses absolute locations and symlinks that leave the model's folder).
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, relative, resolve } from 'node:path';
import { CONTRACT } from '../graph/contract.js';
import { decodeModel, encodeModel, ONNX_DTYPE } from '../graph/onnxProto.js';
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import { writeFileAtomic } from './atomicWrite.js';
import { readBytesAt } from './readAt.js';

/** Bump when the rewrite changes: it is part of the cache key. */
export const ONNX_EXPORT_REWRITE_VERSION = 1;

/** What lmsteer needs to know about an export's inputs and outputs to drive it. */
export interface OnnxExportIO {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  hasPositionIds: boolean;
  /** Merged decoders (decoder_model_merged.onnx): false on the first call (no past), true after. */
  hasUseCacheBranch: boolean;
  vocabSize: number;
  hiddenSize: number;
  /** The node whose output is the logits, as found (for messages). */
  headNode: string;
}

export interface OnnxExport {
  /** The .onnx file the export was read from. */
  modelPath: string;
  /** Where its external data (relative locations) resolves: the folder of `modelPath`. */
  externalDataDir: string;
  /** The rewritten ModelProto: steer inputs added, `hidden` output added. */
  bytes: Uint8Array;
  /** E [V, d], the LM head matrix (logits = h·Eᵀ). */
  head: Tensor;
  io: OnnxExportIO;
  /** Content key of the source (model bytes + external data files' size and mtime + rewrite version). */
  key: string;
}

/** Sizes an export whose past inputs have symbolic dims cannot tell (taken from config.json). */
export interface ExportFallback {
  numKvHeads?: number;
  headDim?: number;
}

const PAST = /^past_key_values\.(\d+)\.(key|value)$/;
const PRESENT = /^present\.(\d+)\.(key|value)$/;
const HEAD_HINT =
  'lmsteer steers exports whose `logits` come from a float32 MatMul or Gemm with the LM head weight (as optimum-cli ' +
  'export onnx --task text-generation-with-past writes them); export without quantizing the LM head, or use the ' +
  'Hugging Face folder (config.json + model.safetensors)';

/** Preference among the graphs of an export folder: the with-past decoders first. */
const PREFERRED = ['model.onnx', 'decoder_model_merged.onnx', 'decoder_with_past_model.onnx'];

/**
 * Choose the decoder graph of an export folder from its .onnx files (top level and onnx/): a preferred name,
 * else the only file; several other candidates (fp16, quantized variants) need the user to pick one.
 */
export function chooseOnnxFile(dir: string, onnxPaths: readonly string[]): string {
  for (const name of PREFERRED) {
    const hit = onnxPaths.find((p) => basename(p) === name);
    if (hit) return hit;
  }
  if (onnxPaths.length === 1) return onnxPaths[0]!;
  throw new LmSteerError(
    'BAD_ARGUMENT',
    `${dir} holds several ONNX graphs (${onnxPaths.map((p) => relative(dir, p)).join(', ')}) and none is named ${PREFERRED.join(', ')}`,
    'pass the path of the .onnx file to use as --model',
  );
}

// ---------------------------------------------------------------------------------------------------------
// Reading

/** Read and rewrite an export (no cache). */
export function readOnnxExport(modelPath: string, fallback: ExportFallback = {}): OnnxExport {
  const bytes = readModelBytes(modelPath);
  const proto = decodeOrThrow(modelPath, bytes);
  return rewrite(modelPath, bytes, sourceKey(modelPath, bytes, proto), fallback, proto);
}

/**
 * Read an export through the on-disk cache `cacheDir/onnx-exports/<key>/` (rewritten model.onnx, head.bin,
 * io.json), keyed by the source's content, so a second load skips decoding and re-encoding the graph.
 */
export function openOnnxExport(
  modelPath: string,
  opts: { cacheDir: string | false; fallback?: ExportFallback },
): OnnxExport {
  const bytes = readModelBytes(modelPath);
  const proto = decodeOrThrow(modelPath, bytes);
  const key = sourceKey(modelPath, bytes, proto);
  if (opts.cacheDir === false) return rewrite(modelPath, bytes, key, opts.fallback ?? {}, proto);
  const dir = join(opts.cacheDir, 'onnx-exports', key.slice(0, 32));
  const files = { model: join(dir, 'model.onnx'), head: join(dir, 'head.bin'), io: join(dir, 'io.json') };
  if (existsSync(files.model) && existsSync(files.head) && existsSync(files.io)) {
    try {
      const io = JSON.parse(readFileSync(files.io, 'utf8')) as OnnxExportIO & { key: string };
      const raw = readFileSync(files.head);
      if (io.key === key && raw.byteLength === io.vocabSize * io.hiddenSize * 4) {
        const head = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
        const { key: _k, ...rest } = io;
        return {
          modelPath,
          externalDataDir: dirname(modelPath),
          bytes: readFileSync(files.model),
          head: { dtype: 'float32', shape: [io.vocabSize, io.hiddenSize], data: head },
          io: rest,
          key,
        };
      }
    } catch {
      // a damaged cache entry is rebuilt below
    }
  }
  const out = rewrite(modelPath, bytes, key, opts.fallback ?? {}, proto);
  const h = out.head.data as Float32Array;
  // io.json last: an entry counts only once it is there (and names the same key).
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(files.model, out.bytes);
  writeFileAtomic(files.head, new Uint8Array(h.buffer, h.byteOffset, h.byteLength));
  writeFileAtomic(files.io, JSON.stringify({ ...out.io, key }));
  return out;
}

function readModelBytes(modelPath: string): Uint8Array {
  if (!existsSync(modelPath))
    throw new LmSteerError(
      'NOT_FOUND',
      `ONNX model ${modelPath} does not exist`,
      'pass an existing .onnx file or its folder',
    );
  return readFileSync(modelPath);
}

function decodeOrThrow(modelPath: string, bytes: Uint8Array): Proto {
  try {
    const m = decodeModel(bytes);
    if (!m.graph) throw new Error('no graph');
    return m;
  } catch (e) {
    throw new LmSteerError(
      'BAD_FILE',
      `${modelPath} is not a readable ONNX model (${(e as Error).message})`,
      'check that the file was fully downloaded',
      { cause: e },
    );
  }
}

/** sha256 of the model bytes, the rewrite version and each external data file's size and mtime. */
function sourceKey(modelPath: string, bytes: Uint8Array, proto: Proto): string {
  const h = createHash('sha256');
  h.update(`lmsteer-onnx-export-v${ONNX_EXPORT_REWRITE_VERSION}\u0000`);
  h.update(bytes);
  for (const loc of externalLocations(proto.graph)) {
    const p = join(dirname(modelPath), loc);
    const st = existsSync(p) ? statSync(p) : undefined;
    h.update(`\u0000${loc}\u0000${st ? `${st.size}:${st.mtimeMs}` : 'missing'}`);
  }
  return h.digest('hex');
}

function externalLocations(graph: Proto, out = new Set<string>()): Set<string> {
  for (const t of graph.initializer ?? []) {
    const loc = (t.external_data ?? []).find((e: Proto) => e.key === 'location');
    if (t.data_location === 1 && loc) out.add(loc.value);
  }
  for (const n of graph.node ?? [])
    for (const a of n.attribute ?? []) for (const g of subgraphs(a)) externalLocations(g, out);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The rewrite

// decodeModel gives plain objects of the ONNX schema (src/graph/onnxProto.ts); `any` keeps this walk short.
type Proto = Record<string, any>;

interface Scope {
  graph: Proto;
  parent?: Scope;
  /** Values produced in this graph: name → node. */
  producers: Map<string, Proto>;
}

function scopeOf(graph: Proto, parent?: Scope): Scope {
  const producers = new Map<string, Proto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) if (o) producers.set(o, n);
  return { graph, parent, producers };
}

function subgraphs(a: Proto): Proto[] {
  return [...(a.g ? [a.g] : []), ...(a.graphs ?? [])];
}

function rewrite(
  modelPath: string,
  bytes: Uint8Array,
  key: string,
  fallback: ExportFallback,
  decoded?: Proto,
): OnnxExport {
  const proto = decoded ?? decodeOrThrow(modelPath, bytes);
  const file = basename(modelPath);
  const graph = proto.graph;
  const ioBase = inspectIO(file, graph, fallback);
  const ctx: RewriteCtx = { file, dir: dirname(modelPath), names: allNames(graph), counter: 0 };

  const top = scopeOf(graph);
  if (!(graph.output ?? []).some((o: Proto) => o.name === CONTRACT.logits)) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${file} has no output named "logits" (outputs: ${(graph.output ?? []).map((o: Proto) => o.name).join(', ')})`,
      HEAD_HINT,
    );
  }
  for (const name of [CONTRACT.hidden, CONTRACT.steerP1, CONTRACT.steerP2t, CONTRACT.steerScale]) {
    if (ctx.names.has(name))
      throw new LmSteerError(
        'UNSUPPORTED',
        `${file} already has a value named "${name}", which lmsteer adds`,
        'rename it in the export',
      );
  }

  const steer = addSteerInputs(ctx, graph);
  const found = rewriteHead(ctx, top, CONTRACT.logits, steer);
  graph.output.push(valueInfo(CONTRACT.hidden, ONNX_DTYPE.float32, found.hiddenDims));
  if (found.hiddenValue !== CONTRACT.hidden)
    graph.node.push(node('Identity', [found.hiddenValue], [CONTRACT.hidden], ctx));

  const [V, d] = found.head.shape as [number, number];
  const io: OnnxExportIO = { ...ioBase, vocabSize: V, hiddenSize: d, headNode: found.headNode };
  steer.finish(d);
  return { modelPath, externalDataDir: dirname(modelPath), bytes: encodeModel(proto), head: found.head, io, key };
}

interface RewriteCtx {
  file: string;
  dir: string;
  names: Set<string>;
  counter: number;
}

function fresh(ctx: RewriteCtx, what: string): string {
  let n = `lmsteer/${what}_${ctx.counter++}`;
  while (ctx.names.has(n)) n = `lmsteer/${what}_${ctx.counter++}`;
  ctx.names.add(n);
  return n;
}

function node(op: string, input: string[], output: string[], ctx: RewriteCtx, attribute: Proto[] = []): Proto {
  return { op_type: op, domain: '', name: fresh(ctx, op), input, output, attribute };
}

function allNames(graph: Proto, out = new Set<string>()): Set<string> {
  for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.initializer ?? [])]) out.add(v.name);
  for (const n of graph.node ?? []) {
    if (n.name) out.add(n.name);
    for (const o of n.output ?? []) out.add(o);
    for (const a of n.attribute ?? []) for (const g of subgraphs(a)) allNames(g, out);
  }
  return out;
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): Proto {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

/** The graph inputs the export declares (initializers listed as inputs, as IR < 4 did, excluded). */
function realInputs(graph: Proto): Proto[] {
  const inits = new Set((graph.initializer ?? []).map((t: Proto) => t.name));
  return (graph.input ?? []).filter((i: Proto) => !inits.has(i.name));
}

function elemType(v: Proto): number | undefined {
  return v.type?.tensor_type?.elem_type;
}

function dimsOf(v: Proto): (number | string | undefined)[] {
  return (v.type?.tensor_type?.shape?.dim ?? []).map((d: Proto) => d.dim_value ?? d.dim_param);
}

const DTYPE_NAME: Record<number, string> = {
  1: 'float32',
  7: 'int64',
  6: 'int32',
  9: 'bool',
  10: 'float16',
  16: 'bfloat16',
};

function inspectIO(
  file: string,
  graph: Proto,
  fallback: ExportFallback,
): Omit<OnnxExportIO, 'vocabSize' | 'hiddenSize' | 'headNode'> {
  const inputs = realInputs(graph);
  const byName = new Map<string, Proto>(inputs.map((i) => [i.name, i]));
  const needType = (name: string, type: number, optional: boolean): boolean => {
    const v = byName.get(name);
    if (!v) {
      if (optional) return false;
      throw new LmSteerError(
        'UNSUPPORTED',
        `${file} has no input "${name}" (inputs: ${inputs.map((i) => i.name).join(', ')})`,
        'lmsteer runs decoder exports with input_ids, attention_mask and past_key_values.* inputs (optimum --task text-generation-with-past)',
      );
    }
    if (elemType(v) !== type) {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${file}: input "${name}" is ${DTYPE_NAME[elemType(v) ?? 0] ?? `type ${elemType(v)}`}, expected ${DTYPE_NAME[type]}`,
        'export with the default (int64 ids, float32) settings',
      );
    }
    return true;
  };
  needType('input_ids', ONNX_DTYPE.int64, false);
  needType('attention_mask', ONNX_DTYPE.int64, false);
  const hasPositionIds = needType('position_ids', ONNX_DTYPE.int64, true);
  const hasUseCacheBranch = needType('use_cache_branch', ONNX_DTYPE.bool, true);

  const layers = new Map<number, { key?: Proto; value?: Proto }>();
  for (const v of inputs) {
    const m = PAST.exec(v.name);
    if (m) {
      const e = layers.get(Number(m[1])) ?? {};
      e[m[2] as 'key' | 'value'] = v;
      layers.set(Number(m[1]), e);
      continue;
    }
    if (!['input_ids', 'attention_mask', 'position_ids', 'use_cache_branch'].includes(v.name)) {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${file} has an input "${v.name}" that lmsteer does not know how to feed`,
        'lmsteer feeds input_ids, attention_mask, position_ids, use_cache_branch and past_key_values.{i}.key/value',
      );
    }
  }
  const numLayers = layers.size;
  if (numLayers === 0) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${file} has no past_key_values.* inputs (an export without KV cache)`,
      'use the with-past export (optimum-cli export onnx --task text-generation-with-past, or decoder_model_merged.onnx)',
    );
  }
  const outputs = new Set<string>((graph.output ?? []).map((o: Proto) => o.name as string));
  for (let i = 0; i < numLayers; i++) {
    const e = layers.get(i);
    for (const kind of ['key', 'value'] as const) {
      if (!e?.[kind])
        throw new LmSteerError(
          'BAD_FILE',
          `${file} has past_key_values inputs for ${numLayers} layers but none named past_key_values.${i}.${kind}`,
          'the export is incomplete',
        );
      if (elemType(e[kind]) !== ONNX_DTYPE.float32) {
        throw new LmSteerError(
          'UNSUPPORTED',
          `${file}: past_key_values.${i}.${kind} is ${DTYPE_NAME[elemType(e[kind]) ?? 0] ?? 'not float32'}; lmsteer runs float32 exports`,
          'export in float32 (no --fp16 / --dtype fp16)',
        );
      }
      if (!outputs.has(`present.${i}.${kind}`))
        throw new LmSteerError(
          'UNSUPPORTED',
          `${file} has past_key_values.${i}.${kind} but no output present.${i}.${kind}`,
          'lmsteer expects optimum output names (present.{i}.key / .value)',
        );
    }
  }
  for (const o of outputs) {
    const m = PRESENT.exec(o);
    if (m && Number(m[1]) >= numLayers)
      throw new LmSteerError(
        'BAD_FILE',
        `${file} has output ${o} but no past_key_values.${m[1]}.${m[2]} input`,
        'the export is incomplete',
      );
  }
  const dims = dimsOf(layers.get(0)!.key!);
  const kvH = typeof dims[1] === 'number' ? dims[1] : fallback.numKvHeads;
  const hd = typeof dims[3] === 'number' ? dims[3] : fallback.headDim;
  if (dims.length !== 4 || kvH === undefined || hd === undefined) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${file}: past_key_values.0.key has shape [${dims.map((d) => d ?? '?')}], expected [batch, kv_heads, past, head_dim]`,
      'lmsteer runs exports with one key and one value tensor per layer in that layout',
    );
  }
  return { numLayers, numKvHeads: kvH, headDim: hd, hasPositionIds, hasUseCacheBranch };
}

// --- the LM head ---

interface HeadFound {
  head: Tensor;
  /** The value holding h (in the top graph), to expose as `hidden`. */
  hiddenValue: string;
  hiddenDims: (number | string)[];
  headNode: string;
}

/** Ops that only move the logits around: we look through them to find the head (Reshape undoes a Gemm's flattening). */
const PASS_THROUGH = new Set(['Identity', 'Reshape']);

function describe(n: Proto): string {
  return `node "${n.name || '(unnamed)'}" (${n.domain ? `${n.domain}.` : ''}${n.op_type})`;
}

function rewriteHead(ctx: RewriteCtx, scope: Scope, value: string, steer: SteerValues): HeadFound {
  let n = scope.producers.get(value);
  while (n && PASS_THROUGH.has(n.op_type) && !n.domain) n = scope.producers.get(n.input[0]);
  if (!n) throw new LmSteerError('UNSUPPORTED', `${ctx.file}: "${value}" is not computed by any node`, HEAD_HINT);

  if (n.op_type === 'If' && !n.domain) return rewriteIfHead(ctx, scope, n, value, steer);
  if ((n.op_type !== 'MatMul' && n.op_type !== 'Gemm') || n.domain) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${ctx.file}: the logits come from ${describe(n)}, not from a MatMul or Gemm with the LM head weight`,
      HEAD_HINT,
    );
  }
  const head = headMatrix(ctx, scope, n);
  const h = n.input[0] as string;
  n.input[0] = steer.apply(ctx, scope.graph, n, h);
  return {
    head,
    hiddenValue: h,
    hiddenDims: n.op_type === 'Gemm' ? ['batch_x_seq', head.shape[1]!] : ['batch', 'seq', head.shape[1]!],
    headNode: n.name || n.op_type,
  };
}

/**
 * A merged decoder computes the logits in both branches of an If on use_cache_branch: rewrite each branch and
 * add `hidden` as one more output of the If (both branches must use the same head matrix).
 */
function rewriteIfHead(ctx: RewriteCtx, scope: Scope, ifNode: Proto, value: string, steer: SteerValues): HeadFound {
  const index = (ifNode.output as string[]).indexOf(value);
  const results: HeadFound[] = [];
  for (const attr of ifNode.attribute ?? []) {
    if (!attr.g || (attr.name !== 'then_branch' && attr.name !== 'else_branch')) continue;
    const branch = attr.g as Proto;
    const found = rewriteHead(ctx, scopeOf(branch, scope), branch.output[index].name, steer);
    const out = fresh(ctx, `hidden_${attr.name}`);
    branch.node.push(node('Identity', [found.hiddenValue], [out], ctx));
    branch.output.push(valueInfo(out, ONNX_DTYPE.float32, found.hiddenDims));
    results.push(found);
  }
  if (results.length !== 2)
    throw new LmSteerError(
      'UNSUPPORTED',
      `${ctx.file}: ${describe(ifNode)} computes the logits but lacks then/else branches`,
      HEAD_HINT,
    );
  const [a, b] = results as [HeadFound, HeadFound];
  if (a.head.shape.join() !== b.head.shape.join() || !a.head.data.every((x, i) => x === b.head.data[i])) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${ctx.file}: the two branches of ${describe(ifNode)} use different LM head weights`,
      HEAD_HINT,
    );
  }
  const hidden = fresh(ctx, 'hidden_if');
  ifNode.output.push(hidden);
  return { ...a, hiddenValue: hidden };
}

/** E [V, d] from the head node's weight: MatMul(h, W[d,V]), MatMul(h, Transpose(E)), Gemm(h, E, transB=1) or Gemm(h, W). */
function headMatrix(ctx: RewriteCtx, scope: Scope, n: Proto): Tensor {
  const attr = (name: string) => (n.attribute ?? []).find((a: Proto) => a.name === name);
  let transposed: boolean; // whether the weight input is already E [V, d]
  let wName = n.input[1] as string;
  if (n.op_type === 'Gemm') {
    if ((attr('transA')?.i ?? 0) !== 0 || (attr('alpha')?.f ?? 1) !== 1) {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${ctx.file}: the LM head ${describe(n)} has transA or alpha ≠ 1`,
        HEAD_HINT,
      );
    }
    transposed = (attr('transB')?.i ?? 0) === 1;
  } else {
    transposed = false;
  }
  let t = findTensor(scope, wName);
  if (!t) {
    // MatMul(h, Transpose(E)): a tied embedding shared with the input side.
    const tr = lookupProducer(scope, wName);
    const perm = tr
      ? ((tr.attribute ?? []).find((a: Proto) => a.name === 'perm')?.ints as number[] | undefined)
      : undefined;
    if (tr && tr.op_type === 'Transpose' && !tr.domain && (!perm || (perm[0] === 1 && perm[1] === 0))) {
      wName = tr.input[0];
      t = findTensor(scope, wName);
      transposed = !transposed;
    }
  }
  if (!t) {
    const p = lookupProducer(scope, n.input[1]);
    throw new LmSteerError(
      'UNSUPPORTED',
      `${ctx.file}: the weight of the LM head ${describe(n)} is computed${p ? ` by ${describe(p)}` : ''}, not stored as an initializer`,
      HEAD_HINT,
    );
  }
  if (t.data_type !== ONNX_DTYPE.float32) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${ctx.file}: the LM head weight "${wName}" of ${describe(n)} is ${DTYPE_NAME[t.data_type] ?? `type ${t.data_type}`}; lmsteer runs float32 exports`,
      HEAD_HINT,
    );
  }
  const dims = (t.dims ?? []).map(Number);
  if (dims.length !== 2)
    throw new LmSteerError(
      'UNSUPPORTED',
      `${ctx.file}: the LM head weight "${wName}" has shape [${dims}], expected a matrix`,
      HEAD_HINT,
    );
  const data = tensorData(ctx, t, dims[0]! * dims[1]!);
  if (transposed) return { dtype: 'float32', shape: [dims[0]!, dims[1]!], data };
  const [d, V] = dims as [number, number];
  const E = new Float32Array(V * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < V; j++) E[j * d + i] = data[i * V + j]!;
  return { dtype: 'float32', shape: [V, d], data: E };
}

function lookupProducer(scope: Scope | undefined, name: string): Proto | undefined {
  for (let s = scope; s; s = s.parent) {
    const p = s.producers.get(name);
    if (p) return p;
  }
  return undefined;
}

/** An initializer, or the value of a Constant node, visible from `scope`. */
function findTensor(scope: Scope, name: string): Proto | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    const init = (s.graph.initializer ?? []).find((t: Proto) => t.name === name);
    if (init) return init;
    const p = s.producers.get(name);
    if (p)
      return p.op_type === 'Constant' && !p.domain
        ? (p.attribute ?? []).find((a: Proto) => a.name === 'value')?.t
        : undefined;
  }
  return undefined;
}

/** A float32 TensorProto's values: raw_data, float_data, or external data (read at offset/length). */
function tensorData(ctx: RewriteCtx, t: Proto, n: number): Float32Array {
  let raw: Uint8Array | undefined;
  if (t.data_location === 1) {
    const ext = new Map<string, string>((t.external_data ?? []).map((e: Proto) => [e.key, e.value]));
    const loc = ext.get('location');
    if (!loc || isAbsolute(loc) || normalize(loc).startsWith('..')) {
      throw new LmSteerError(
        'BAD_FILE',
        `${ctx.file}: initializer "${t.name}" has external data location ${JSON.stringify(loc)}`,
        'external data must be a file in the model folder',
      );
    }
    const path = resolve(ctx.dir, loc);
    if (!existsSync(path))
      throw new LmSteerError(
        'NOT_FOUND',
        `${ctx.file}: the external data file ${path} of initializer "${t.name}" does not exist`,
        'download the .onnx_data file beside the .onnx file',
      );
    const offset = Number(ext.get('offset') ?? 0);
    const length = Number(ext.get('length') ?? n * 4);
    const fd = openSync(path, 'r');
    try {
      raw = readBytesAt(fd, offset, length, path);
    } finally {
      closeSync(fd);
    }
  } else if (t.raw_data && t.raw_data.byteLength > 0) {
    raw = t.raw_data as Uint8Array;
  } else if (t.float_data?.length) {
    raw = new Uint8Array(Float32Array.from(t.float_data as number[]).buffer);
  }
  if (!raw || raw.byteLength !== n * 4) {
    throw new LmSteerError(
      'BAD_FILE',
      `${ctx.file}: initializer "${t.name}" holds ${raw?.byteLength ?? 0} bytes, expected ${n * 4}`,
      'the export is damaged or incomplete',
    );
  }
  // Copy into an aligned buffer (raw_data may sit at any offset of the file buffer).
  return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
}

// --- the steer ops ---

interface SteerValues {
  /** Insert h' = h + ((h·P1) ⊙ scale)·P2ᵀ before `headNode` in `graph`; returns h'. */
  apply(ctx: RewriteCtx, graph: Proto, headNode: Proto, h: string): string;
  /** Declare the steer inputs once d is known. */
  finish(d: number): void;
}

/**
 * The steer inputs and shared constants (top graph; branches of an If read them from the outer scope). The
 * per-row scale is applied after reshaping h·P1 to [B, rows-per-batch, K], so the same ops serve a head on
 * [B, S, d] (MatMul) and on flattened [B·S, d] (Gemm). Only opset-1..13 ops (Shape, Gather, Concat, Reshape),
 * so old exports need no opset bump. With steer_scale 0 the added term is exactly 0: h' = h bit for bit.
 */
function addSteerInputs(ctx: RewriteCtx, graph: Proto): SteerValues {
  const i64 = (name: string, values: number[]) => {
    const data = BigInt64Array.from(values.map(BigInt));
    graph.initializer.push({
      name,
      data_type: ONNX_DTYPE.int64,
      dims: [values.length],
      raw_data: Buffer.from(data.buffer),
    });
    return name;
  };
  graph.initializer ??= [];
  graph.node ??= [];
  const c0 = i64(fresh(ctx, 'c0'), [0]);
  const c1 = i64(fresh(ctx, 'c1'), [1]);
  const cm1 = i64(fresh(ctx, 'cm1'), [-1]);
  // [B], [K] and the shapes [B, -1, K] / [B, 1, K], computed once at the top.
  const pre: Proto[] = [];
  const op = (type: string, inputs: string[], attrs: Proto[] = []) => {
    const out = fresh(ctx, type.toLowerCase());
    pre.push(node(type, inputs, [out], ctx, attrs));
    return out;
  };
  const sShape = op('Shape', [CONTRACT.steerScale]);
  const B = op('Gather', [sShape, c0], [{ name: 'axis', type: 2, i: 0 }]);
  const K = op('Gather', [sShape, c1], [{ name: 'axis', type: 2, i: 0 }]);
  const axis0 = [{ name: 'axis', type: 2, i: 0 }];
  const rowsShape = op('Concat', [B, cm1, K], axis0);
  const scale3 = op('Reshape', [CONTRACT.steerScale, op('Concat', [B, c1, K], axis0)]);
  graph.node.unshift(...pre);

  return {
    apply(ctx2, g, headNode, h) {
      const out: Proto[] = [];
      const add = (type: string, inputs: string[]) => {
        const o = fresh(ctx2, type.toLowerCase());
        out.push(node(type, inputs, [o], ctx2));
        return o;
      };
      const proj = add('MatMul', [h, CONTRACT.steerP1]); // [..., K]
      const coeff = add('Reshape', [add('Mul', [add('Reshape', [proj, rowsShape]), scale3]), add('Shape', [proj])]);
      const steered = add('Add', [h, add('MatMul', [coeff, CONTRACT.steerP2t])]);
      const at = (g.node as Proto[]).indexOf(headNode);
      g.node.splice(at, 0, ...out);
      return steered;
    },
    finish(d) {
      graph.input.push(
        valueInfo(CONTRACT.steerP1, ONNX_DTYPE.float32, [d, 'steer_k']),
        valueInfo(CONTRACT.steerP2t, ONNX_DTYPE.float32, ['steer_k', d]),
        valueInfo(CONTRACT.steerScale, ONNX_DTYPE.float32, ['batch', 'steer_k']),
      );
    },
  };
}
