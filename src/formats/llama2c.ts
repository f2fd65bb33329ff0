/**
 * llama2.c checkpoints (karpathy/llama2.c) → an HF config.json-shaped object and HF Llama tensor names.
 *
 * Three layouts (export.py), all little-endian:
 *   v0 legacy  7×int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len); a negative
 *              vocab_size means a separate classifier follows. f32: token_embedding, rms_att, wq, wk, wv, wo,
 *              rms_ffn, w1, w2, w3, rms_final, freq_cis_real, freq_cis_imag (unused), [wcls].
 *   v1         256-byte header: uint32 magic "ak42", int32 version 1, the 7 ints, uint8 shared_classifier.
 *              f32: rms_att, rms_ffn, rms_final, token_embedding, wq, wk, wv, wo, w1, w2, w3, [wcls].
 *   v2 (Q8_0)  as v1 plus int32 group_size at byte 37. f32 norms (rms_att, rms_ffn, rms_final), then each of
 *              token_embedding, wq, wk, wv, wo, w1, w2, w3, [wcls] per layer as int8 values followed by one
 *              f32 scale per group (value = q · scale).
 * Per-layer arrays are stacked [n_layers, rows, cols]. Tensors are read lazily on `get`.
 *
 * RoPE: run.c rotates interleaved pairs (2i, 2i+1) of each head; HF Llama rotates (i, i + hd/2). So wq rows
 * (per query head) and wk rows (per KV head) are permuted as transformers' convert_llama_weights_to_hf.py does:
 * new row h·hd + j·hd/2 + i = old row h·hd + 2i + j.
 */
import { closeSync } from 'node:fs';
import { endianness } from 'node:os';
import { LmSteerError } from '../util/errors.js';
import { firstNonFinite, type Tensor } from '../util/tensor.js';
import type { WeightStore } from './weights.js';
import { fileIdentity } from './fileIdentity.js';
import { readBytesAt } from './readAt.js';
import { openRegularFile } from './safeRead.js';

const MAGIC = 0x616b3432; // "ak42"

export interface Llama2cHeader {
  version: 0 | 1 | 2;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  /** Q8_0 group size (v2 only). */
  groupSize?: number;
  /** Bytes before the first weight: 28 (v0) or 256. */
  headerBytes: number;
}

/** A weights store over an open llama2.c file; `close()` releases it. */
export interface Llama2cWeights extends WeightStore {
  identity(): string;
  close(): void;
}

export interface Llama2cCheckpoint {
  /** Shaped like a transformers LlamaConfig config.json. */
  config: Record<string, unknown>;
  weights: Llama2cWeights;
  header: Llama2cHeader;
}

function bad(
  path: string,
  message: string,
  hint = 'the file is not a llama2.c checkpoint, or it is corrupt; export or download it again',
): LmSteerError {
  return new LmSteerError('BAD_FILE', `${path}: ${message}`, hint);
}

/** Parse and sanity-check the header from the first (up to) 256 bytes of the file. */
export function parseLlama2cHeader(path: string, head: Uint8Array): Llama2cHeader {
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length < 28) throw bad(path, `${head.length} bytes is too short for a llama2.c header (28 bytes at least)`);
  const versioned = dv.getUint32(0, true) === MAGIC;
  let h: Llama2cHeader;
  if (!versioned) {
    const ints = [0, 1, 2, 3, 4, 5, 6].map((i) => dv.getInt32(4 * i, true));
    h = {
      version: 0,
      dim: ints[0],
      hiddenDim: ints[1],
      nLayers: ints[2],
      nHeads: ints[3],
      nKvHeads: ints[4],
      vocabSize: Math.abs(ints[5]),
      seqLen: ints[6],
      sharedClassifier: ints[5] > 0, // legacy flag: the sign of vocab_size
      headerBytes: 28,
    };
  } else {
    if (head.length < 256) throw bad(path, `${head.length} bytes is too short for a llama2.c v1/v2 header (256 bytes)`);
    const version = dv.getInt32(4, true);
    if (version !== 1 && version !== 2) {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${path}: llama2.c checkpoint version ${version} is not supported`,
        'export it again with llama2.c export.py --version 0, 1 or 2',
      );
    }
    const ints = [0, 1, 2, 3, 4, 5, 6].map((i) => dv.getInt32(8 + 4 * i, true));
    const shared = dv.getUint8(36);
    if (shared > 1) throw bad(path, `shared_classifier flag is ${shared}, expected 0 or 1`);
    h = {
      version,
      dim: ints[0],
      hiddenDim: ints[1],
      nLayers: ints[2],
      nHeads: ints[3],
      nKvHeads: ints[4],
      vocabSize: ints[5],
      seqLen: ints[6],
      sharedClassifier: shared === 1,
      headerBytes: 256,
    };
    if (version === 2) h.groupSize = dv.getInt32(37, true);
  }
  const desc = describe(h);
  for (const [field, v] of [
    ['dim', h.dim],
    ['hidden_dim', h.hiddenDim],
    ['n_layers', h.nLayers],
    ['n_heads', h.nHeads],
    ['n_kv_heads', h.nKvHeads],
    ['vocab_size', h.vocabSize],
    ['seq_len', h.seqLen],
  ] as const) {
    if (!(v > 0)) throw bad(path, `header field ${field} is ${v}, expected a positive number (${desc})`);
  }
  if (h.dim % h.nHeads !== 0) throw bad(path, `n_heads ${h.nHeads} does not divide dim ${h.dim} (${desc})`);
  if (h.nHeads % h.nKvHeads !== 0)
    throw bad(path, `n_kv_heads ${h.nKvHeads} does not divide n_heads ${h.nHeads} (${desc})`);
  if ((h.dim / h.nHeads) % 2 !== 0)
    throw bad(path, `head size ${h.dim / h.nHeads} is odd; RoPE needs an even head size (${desc})`);
  if (h.groupSize !== undefined && (h.groupSize <= 0 || h.dim % h.groupSize !== 0)) {
    throw bad(path, `Q8_0 group_size ${h.groupSize} must be positive and divide dim ${h.dim} (${desc})`);
  }
  return h;
}

function describe(h: Llama2cHeader): string {
  const gs = h.groupSize !== undefined ? `, group_size ${h.groupSize}` : '';
  return `v${h.version} header: dim ${h.dim}, hidden_dim ${h.hiddenDim}, n_layers ${h.nLayers}, n_heads ${h.nHeads}, n_kv_heads ${h.nKvHeads}, vocab_size ${h.vocabSize}, seq_len ${h.seqLen}${gs}`;
}

/** The arrays of a llama2.c file, by their llama2.c names. */
type L2cName =
  | 'token_embedding'
  | 'rms_att'
  | 'wq'
  | 'wk'
  | 'wv'
  | 'wo'
  | 'rms_ffn'
  | 'w1'
  | 'w2'
  | 'w3'
  | 'rms_final'
  | 'freq_cis_real'
  | 'freq_cis_imag'
  | 'wcls';

/** One tensor's place in the file. */
interface Location {
  offset: number;
  shape: number[];
  encoding: 'f32' | 'q8';
  /** Permute rows per head for RoPE (wq: n_heads, wk: n_kv_heads). */
  ropeHeads?: number;
}

/** Where llama2.c array `name` (layer `l`) goes in HF Llama; undefined = not used (freq_cis). */
function hfName(name: L2cName, l: number): string | undefined {
  const p = `model.layers.${l}.`;
  switch (name) {
    case 'token_embedding':
      return 'model.embed_tokens.weight';
    case 'rms_att':
      return p + 'input_layernorm.weight';
    case 'wq':
      return p + 'self_attn.q_proj.weight';
    case 'wk':
      return p + 'self_attn.k_proj.weight';
    case 'wv':
      return p + 'self_attn.v_proj.weight';
    case 'wo':
      return p + 'self_attn.o_proj.weight';
    case 'rms_ffn':
      return p + 'post_attention_layernorm.weight';
    case 'w1':
      return p + 'mlp.gate_proj.weight';
    case 'w2':
      return p + 'mlp.down_proj.weight';
    case 'w3':
      return p + 'mlp.up_proj.weight';
    case 'rms_final':
      return 'model.norm.weight';
    case 'wcls':
      return 'lm_head.weight';
    default:
      return undefined;
  }
}

/**
 * Every array in file order with its per-layer shape, count and encoding. The size the header implies is
 * checked against the file's before any per-layer entry is made: the header is untrusted (n_layers 2^31−1
 * would otherwise build billions of entries before the size check).
 */
function layout(h: Llama2cHeader, path: string, fileSize: number): Map<string, Location> {
  const { dim, hiddenDim: hid, nLayers: L, vocabSize: V, seqLen: S } = h;
  const hd = dim / h.nHeads;
  const kvDim = hd * h.nKvHeads;
  const shapes: Record<L2cName, { layers: number; shape: number[] }> = {
    token_embedding: { layers: 1, shape: [V, dim] },
    rms_att: { layers: L, shape: [dim] },
    wq: { layers: L, shape: [dim, dim] },
    wk: { layers: L, shape: [kvDim, dim] },
    wv: { layers: L, shape: [kvDim, dim] },
    wo: { layers: L, shape: [dim, dim] },
    rms_ffn: { layers: L, shape: [dim] },
    w1: { layers: L, shape: [hid, dim] },
    w2: { layers: L, shape: [dim, hid] },
    w3: { layers: L, shape: [hid, dim] },
    rms_final: { layers: 1, shape: [dim] },
    freq_cis_real: { layers: 1, shape: [S, hd / 2] },
    freq_cis_imag: { layers: 1, shape: [S, hd / 2] },
    wcls: { layers: 1, shape: [V, dim] },
  };
  const cls: L2cName[] = h.sharedClassifier ? [] : ['wcls'];
  const matrices: L2cName[] = ['token_embedding', 'wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3', ...cls];
  const order: { name: L2cName; encoding: 'f32' | 'q8' }[] =
    h.version === 0
      ? [
          ...(
            [
              'token_embedding',
              'rms_att',
              'wq',
              'wk',
              'wv',
              'wo',
              'rms_ffn',
              'w1',
              'w2',
              'w3',
              'rms_final',
              'freq_cis_real',
              'freq_cis_imag',
              ...cls,
            ] as L2cName[]
          ).map((name) => ({ name, encoding: 'f32' as const })),
        ]
      : [
          ...(['rms_att', 'rms_ffn', 'rms_final'] as L2cName[]).map((name) => ({ name, encoding: 'f32' as const })),
          ...matrices.map((name) => ({ name, encoding: h.version === 2 ? ('q8' as const) : ('f32' as const) })),
        ];

  const bytesOf = (name: L2cName, encoding: 'f32' | 'q8'): number => {
    const n = shapes[name].shape.reduce((a, b) => a * b, 1);
    if (encoding === 'q8' && n % h.groupSize! !== 0) {
      throw bad(
        path,
        `${name} has ${n} values per layer, not a multiple of group_size ${h.groupSize} (${describe(h)})`,
      );
    }
    return encoding === 'f32' ? 4 * n : n + 4 * (n / h.groupSize!);
  };
  // (products of int32 header fields can pass 2^53; they are then inexact but still far above any real size)
  const totalBytes = order.reduce(
    (sum, { name, encoding }) => sum + shapes[name].layers * bytesOf(name, encoding),
    h.headerBytes,
  );
  if (fileSize !== totalBytes) {
    throw bad(
      path,
      `file is ${fileSize} bytes but its ${describe(h)} implies ${totalBytes} bytes`,
      fileSize < totalBytes
        ? 'the file is truncated, or its header is damaged; download or export it again'
        : 'the file has extra bytes: it is not a llama2.c checkpoint of this version, or it is corrupt',
    );
  }
  const tensors = new Map<string, Location>();
  let offset = h.headerBytes;
  for (const { name, encoding } of order) {
    const { layers, shape } = shapes[name];
    const bytes = bytesOf(name, encoding);
    const ropeHeads = name === 'wq' ? h.nHeads : name === 'wk' ? h.nKvHeads : undefined;
    for (let l = 0; l < layers; l++) {
      const hf = hfName(name, l);
      if (hf) tensors.set(hf, { offset, shape, encoding, ropeHeads });
      offset += bytes;
    }
  }
  return tensors;
}

/** new row h·hd + j·hd/2 + i = old row h·hd + 2i + j (interleaved RoPE pairs → rotate_half halves). */
export function permuteRopeRows(w: Float32Array, rows: number, cols: number, nHeads: number): Float32Array {
  const hd = rows / nHeads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * hd + 2 * i + j) * cols;
        const dst = (h * hd + j * (hd / 2) + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

class Llama2cStore implements Llama2cWeights {
  private fd: number | undefined;
  constructor(
    fd: number,
    readonly source: string,
    private readonly tensors: Map<string, Location>,
    private readonly groupSize: number | undefined,
    private readonly ident = '',
  ) {
    this.fd = fd;
  }
  identity(): string {
    return this.ident;
  }
  names(): string[] {
    return [...this.tensors.keys()];
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  shape(name: string): number[] {
    return [...this.location(name).shape];
  }
  get(name: string): Tensor<'float32'> {
    const loc = this.location(name);
    if (this.fd === undefined) throw new Error(`${this.source} was closed before reading "${name}"`);
    const n = loc.shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (loc.encoding === 'f32') {
      const b = readBytesAt(this.fd, loc.offset, 4 * n, this.source);
      data = new Float32Array(b.buffer, b.byteOffset, n);
    } else {
      const gs = this.groupSize!;
      const b = readBytesAt(this.fd, loc.offset, n + 4 * (n / gs), this.source);
      const q = new Int8Array(b.buffer, b.byteOffset, n);
      // Copied: the scales follow n int8 values, so they may start at an offset a Float32Array cannot view.
      const scales = new Float32Array(b.slice(n).buffer);
      data = new Float32Array(n);
      // Float32Array storage rounds the exact double product once, exactly like runq.c's float multiply.
      for (let g = 0; g < scales.length; g++) {
        for (let i = g * gs; i < (g + 1) * gs; i++) data[i] = q[i] * scales[g];
      }
    }
    const bad = firstNonFinite(data);
    if (bad >= 0) {
      throw new LmSteerError(
        'BAD_FILE',
        `tensor "${name}" in ${this.source} holds ${data[bad]} at flat index ${bad}`,
        'the checkpoint is damaged; download or export it again',
      );
    }
    if (loc.ropeHeads !== undefined) data = permuteRopeRows(data, loc.shape[0], loc.shape[1], loc.ropeHeads);
    return { dtype: 'float32', shape: [...loc.shape], data };
  }
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
  private location(name: string): Location {
    const loc = this.tensors.get(name);
    if (!loc)
      throw new LmSteerError(
        'NOT_FOUND',
        `tensor "${name}" is missing from ${this.source}`,
        'llama2.c checkpoints hold only the Llama weights (embed_tokens, layers.*, norm, lm_head when untied)',
      );
    return loc;
  }
}

/** The config.json transformers would write for this checkpoint (as llama2.c export.py's hf_export does). */
export function llama2cConfig(h: Llama2cHeader): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: h.dim,
    intermediate_size: h.hiddenDim,
    num_hidden_layers: h.nLayers,
    num_attention_heads: h.nHeads,
    num_key_value_heads: h.nKvHeads,
    head_dim: h.dim / h.nHeads,
    hidden_act: 'silu',
    max_position_embeddings: h.seqLen,
    vocab_size: h.vocabSize,
    rms_norm_eps: 1e-5, // llama2.c's ModelArgs.norm_eps; run.c hard-codes it
    rope_theta: 10000,
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: h.sharedClassifier,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
  };
}

/** Open a llama2.c checkpoint (v0, v1 or v2); validates its header against its size. */
export function openLlama2c(path: string): Llama2cCheckpoint {
  if (endianness() !== 'LE')
    throw new LmSteerError(
      'UNSUPPORTED',
      'llama2.c checkpoints need a little-endian machine',
      'run lmsteer on x86-64 or ARM64',
    );
  const { fd, size } = openRegularFile(path, 'llama2.c checkpoint');
  try {
    const headBytes = readBytesAt(fd, 0, Math.min(256, size), path);
    const header = parseLlama2cHeader(path, headBytes);
    const tensors = layout(header, path, size);
    return {
      config: llama2cConfig(header),
      weights: new Llama2cStore(fd, path, tensors, header.groupSize, fileIdentity(path, fd, headBytes)),
      header,
    };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
