/**
 * A small GGUF (version 3) writer, and GPT-2 and Llama/Qwen2 in llama.cpp's layout, so node-llama-cpp can run
 * the very weights lmsteer runs. Only what the benchmark needs: F32, F16, Q8_0 and Q4_0 tensors (ggml's exact
 * block formats, see ggmlTypes.ts) and scalar/array metadata.
 *
 * GGUF v3 (ggml/docs/gguf.md): "GGUF" magic, u32 version 3, u64 tensor count, u64 metadata count; metadata
 * as (string key, u32 type, value); tensor infos as (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type,
 * u64 offset into the data section); then the data section, aligned to `general.alignment` (default 32).
 * ggml's ne lists dimensions fastest-first, so a row-major [rows, cols] array has ne = [cols, rows].
 *
 * GPT-2 names and orientation (llama.cpp LLM_ARCH_GPT2; the same that convert_hf_to_gguf.py writes):
 *   token_embd [V, d], position_embd [n_ctx, d]           — as HF (row = one token / position)
 *   blk.N.attn_qkv [3d, d], attn_output [d, d], ffn_up [4d, d], ffn_down [d, 4d]
 *                                                         — ggml mul_mat wants [out, in] rows, so HF's
 *                                                           Conv1D [in, out] weights are transposed
 *   blk.N.attn_norm / ffn_norm / output_norm (.weight, .bias), and the biases as they are.
 * `output.weight` is left out: llama.cpp then ties the head to token_embd, as GPT-2 does.
 */
import { closeSync, openSync, renameSync, writeSync } from 'node:fs';
import type { RowSource } from '../src/graph/rowSource.js';
import type { Tensor } from '../src/util/tensor.js';
import { encodeRows, GGML_TYPES, GGUF_FILE_TYPE, type GgmlType } from './ggmlTypes.js';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const ALIGNMENT = 32;

enum ValueType {
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
}

export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: string[] }
  | { type: 'i32[]'; value: ArrayLike<number> };

/**
 * A tensor to write: row-major float32 `shape`, produced on demand (so big files stream): `data()` gives it
 * whole, or `rows` band by band (2-D tensors; a 500M-value embedding never sits in memory as float32).
 * `type` (default F32) is how it is stored; quantized types need rows of a multiple of their block length.
 */
export interface GgufTensor {
  name: string;
  shape: number[];
  type?: GgmlType;
  data?: () => Float32Array;
  rows?: RowSource;
}

/** Stored bytes of a tensor of `type`. */
function storedBytes(t: GgufTensor): number {
  const info = GGML_TYPES[t.type ?? 'F32'];
  const rowLen = t.shape[t.shape.length - 1];
  if (rowLen % info.blockValues !== 0)
    throw new Error(`internal: GGUF tensor ${t.name} rows of ${rowLen} are not whole ${t.type} blocks`);
  const n = t.shape.reduce((a, b) => a * b, 1);
  return (n / info.blockValues) * info.blockBytes;
}

/** Growable little-endian byte buffer for the header. */
class Bytes {
  private buf = Buffer.alloc(1 << 20);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.length);
    this.length += 4;
  }
  u64(v: number): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  f32(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.length);
    this.length += 4;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.ensure(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }
  pad(to: number): void {
    const n = (to - (this.length % to)) % to;
    this.ensure(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(b: Bytes, v: GgufValue): void {
  switch (v.type) {
    case 'u32':
      b.u32(ValueType.UINT32);
      b.u32(v.value);
      return;
    case 'i32':
      b.u32(ValueType.INT32);
      b.i32(v.value);
      return;
    case 'f32':
      b.u32(ValueType.FLOAT32);
      b.f32(v.value);
      return;
    case 'bool':
      b.u32(ValueType.BOOL);
      b.u8(v.value ? 1 : 0);
      return;
    case 'string':
      b.u32(ValueType.STRING);
      b.str(v.value);
      return;
    case 'string[]':
      b.u32(ValueType.ARRAY);
      b.u32(ValueType.STRING);
      b.u64(v.value.length);
      for (const s of v.value) b.str(s);
      return;
    case 'i32[]':
      b.u32(ValueType.ARRAY);
      b.u32(ValueType.INT32);
      b.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) b.i32(v.value[i]);
      return;
  }
}

/** Write a GGUF v3 file of float32 tensors (atomically, via a temp file). */
export function writeGguf(path: string, metadata: Record<string, GgufValue>, tensors: GgufTensor[]): void {
  const h = new Bytes();
  h.u32(GGUF_MAGIC);
  h.u32(3);
  h.u64(tensors.length);
  h.u64(Object.keys(metadata).length);
  for (const [key, value] of Object.entries(metadata)) {
    h.str(key);
    writeValue(h, value);
  }
  let offset = 0;
  for (const t of tensors) {
    h.str(t.name);
    h.u32(t.shape.length);
    for (const n of [...t.shape].reverse()) h.u64(n); // ggml ne: fastest dimension first
    h.u32(GGML_TYPES[t.type ?? 'F32'].id);
    h.u64(offset);
    const bytes = storedBytes(t);
    offset += bytes + ((ALIGNMENT - (bytes % ALIGNMENT)) % ALIGNMENT);
  }
  h.pad(ALIGNMENT);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, h.bytes());
    const zeros = Buffer.alloc(ALIGNMENT);
    for (const t of tensors) {
      const type = t.type ?? 'F32';
      const rowLen = t.shape[t.shape.length - 1];
      let written = 0;
      const put = (values: Float32Array) => {
        const bytes = encodeRows(values, rowLen, type);
        writeSync(fd, bytes);
        written += bytes.byteLength;
      };
      if (t.rows) {
        const band = Math.max(1, Math.floor((1 << 20) / rowLen)); // ~4 MB of float32 at a time
        for (let r = 0; r < t.rows.rows; r += band) put(t.rows.read(r, Math.min(band, t.rows.rows - r)));
      } else {
        put(t.data!());
      }
      if (written !== storedBytes(t))
        throw new Error(`internal: GGUF tensor ${t.name} wrote ${written} bytes for ${type} [${t.shape}]`);
      const pad = (ALIGNMENT - (written % ALIGNMENT)) % ALIGNMENT;
      if (pad) writeSync(fd, zeros, 0, pad);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function transpose(t: Tensor<'float32'>): Float32Array {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return out;
}

/** The GPT-2 BPE vocabulary of a tokenizer.json, in GGUF's terms. */
export interface GgufVocab {
  tokens: string[];
  tokenTypes: number[]; // 1 normal, 3 control
  merges: string[];
  bosId: number;
  eosId: number;
}

/** tokens, types and merges of a Hugging Face GPT-2 tokenizer.json (byte-level BPE). */
export function vocabFromTokenizerJson(json: unknown, vocabSize: number): GgufVocab {
  const tj = json as {
    model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
    added_tokens?: { id: number; content: string; special?: boolean }[];
  };
  const tokens = new Array<string>(vocabSize);
  const tokenTypes = new Array<number>(vocabSize).fill(1);
  for (const [s, id] of Object.entries(tj.model.vocab)) if (id < vocabSize) tokens[id] = s;
  for (const a of tj.added_tokens ?? []) {
    if (a.id >= vocabSize) continue;
    tokens[a.id] = a.content;
    if (a.special) tokenTypes[a.id] = 3;
  }
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      tokenTypes[i] = 5; // unused
    }
  }
  const merges = tj.model.merges.map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));
  const eos = (tj.added_tokens ?? []).find((a) => a.content === '<|endoftext|>')?.id ?? vocabSize - 1;
  return { tokens, tokenTypes, merges, bosId: eos, eosId: eos };
}

export interface Gpt2GgufConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositions: number;
  normEps: number;
}

/** Write HF GPT-2 weights (unprefixed names, Conv1D [in, out]) as a llama.cpp GPT-2 GGUF in float32. */
export function writeGpt2Gguf(
  path: string,
  cfg: Gpt2GgufConfig,
  get: (name: string) => Tensor<'float32'>,
  vocab: GgufVocab,
  name = 'lmsteer-bench-gpt2',
): void {
  const md: Record<string, GgufValue> = {
    'general.architecture': { type: 'string', value: 'gpt2' },
    'general.name': { type: 'string', value: name },
    'general.file_type': { type: 'u32', value: 0 }, // ALL_F32
    'general.alignment': { type: 'u32', value: ALIGNMENT },
    'gpt2.context_length': { type: 'u32', value: cfg.maxPositions },
    'gpt2.embedding_length': { type: 'u32', value: cfg.hiddenSize },
    'gpt2.feed_forward_length': { type: 'u32', value: cfg.intermediateSize },
    'gpt2.block_count': { type: 'u32', value: cfg.numLayers },
    'gpt2.attention.head_count': { type: 'u32', value: cfg.numHeads },
    'gpt2.attention.layer_norm_epsilon': { type: 'f32', value: cfg.normEps },
    'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
    'tokenizer.ggml.pre': { type: 'string', value: 'gpt-2' },
    'tokenizer.ggml.tokens': { type: 'string[]', value: vocab.tokens },
    'tokenizer.ggml.token_type': { type: 'i32[]', value: vocab.tokenTypes },
    'tokenizer.ggml.merges': { type: 'string[]', value: vocab.merges },
    'tokenizer.ggml.bos_token_id': { type: 'u32', value: vocab.bosId },
    'tokenizer.ggml.eos_token_id': { type: 'u32', value: vocab.eosId },
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: false },
  };
  const same = (hf: string) => () => get(hf).data;
  const transposed = (hf: string) => () => transpose(get(hf));
  const { hiddenSize: d, intermediateSize: I } = cfg;
  const tensors: GgufTensor[] = [
    { name: 'token_embd.weight', shape: [cfg.vocabSize, d], data: same('wte.weight') },
    { name: 'position_embd.weight', shape: [cfg.maxPositions, d], data: same('wpe.weight') },
  ];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `h.${i}`;
    const b = `blk.${i}`;
    tensors.push(
      { name: `${b}.attn_norm.weight`, shape: [d], data: same(`${p}.ln_1.weight`) },
      { name: `${b}.attn_norm.bias`, shape: [d], data: same(`${p}.ln_1.bias`) },
      { name: `${b}.attn_qkv.weight`, shape: [3 * d, d], data: transposed(`${p}.attn.c_attn.weight`) },
      { name: `${b}.attn_qkv.bias`, shape: [3 * d], data: same(`${p}.attn.c_attn.bias`) },
      { name: `${b}.attn_output.weight`, shape: [d, d], data: transposed(`${p}.attn.c_proj.weight`) },
      { name: `${b}.attn_output.bias`, shape: [d], data: same(`${p}.attn.c_proj.bias`) },
      { name: `${b}.ffn_norm.weight`, shape: [d], data: same(`${p}.ln_2.weight`) },
      { name: `${b}.ffn_norm.bias`, shape: [d], data: same(`${p}.ln_2.bias`) },
      { name: `${b}.ffn_up.weight`, shape: [I, d], data: transposed(`${p}.mlp.c_fc.weight`) },
      { name: `${b}.ffn_up.bias`, shape: [I], data: same(`${p}.mlp.c_fc.bias`) },
      { name: `${b}.ffn_down.weight`, shape: [d, I], data: transposed(`${p}.mlp.c_proj.weight`) },
      { name: `${b}.ffn_down.bias`, shape: [d], data: same(`${p}.mlp.c_proj.bias`) },
    );
  }
  tensors.push(
    { name: 'output_norm.weight', shape: [d], data: same('ln_f.weight') },
    { name: 'output_norm.bias', shape: [d], data: same('ln_f.bias') },
  );
  writeGguf(path, md, tensors);
}

/** The HF config.json fields a Llama-family GGUF needs (llama, qwen2). */
export interface LlamaGgufConfig {
  model_type: 'llama' | 'qwen2';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  tie_word_embeddings: boolean;
  rope_scaling?: {
    rope_type: string;
    factor: number;
    low_freq_factor?: number;
    high_freq_factor?: number;
    original_max_position_embeddings?: number;
  } | null;
}

/**
 * llama.cpp's LLM_ARCH_LLAMA rotates interleaved pairs (GGML_ROPE_TYPE_NORM) where transformers rotates halves,
 * so its converter permutes the rows of q_proj and k_proj within each head (convert_hf_to_gguf.py
 * LlamaModel.permute): GGUF row h·hd + 2i + j = HF row h·hd + j·hd/2 + i. Qwen2 uses NEOX rope: no permutation.
 */
export function permutedRopeRows(src: RowSource, heads: number): RowSource {
  const hd = src.rows / heads;
  const from = (r: number) => {
    const h = Math.floor(r / hd);
    const i = Math.floor((r % hd) / 2);
    const j = r % 2;
    return h * hd + j * (hd / 2) + i;
  };
  return {
    rows: src.rows,
    cols: src.cols,
    read(start, count) {
      const out = new Float32Array(count * src.cols);
      for (let r = 0; r < count; r++) out.set(src.read(from(start + r), 1), r * src.cols);
      return out;
    },
  };
}

/**
 * Llama 3's rope scaling as llama.cpp takes it: a `rope_freqs` tensor of per-frequency divisors (convert_hf_to_gguf
 * LlamaModel.generate_extra_tensors for rope_type "llama3"): 1 for short wavelengths, `factor` for long ones,
 * a smooth blend between.
 */
export function llama3RopeFactors(cfg: LlamaGgufConfig): Float32Array {
  const rs = cfg.rope_scaling!;
  const dim = cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;
  const lowFactor = rs.low_freq_factor ?? 1;
  const highFactor = rs.high_freq_factor ?? 4;
  const oldContext = rs.original_max_position_embeddings ?? 8192;
  const lowWavelen = oldContext / lowFactor;
  const highWavelen = oldContext / highFactor;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = Math.fround(1 / Math.fround(cfg.rope_theta ** Math.fround((2 * i) / dim)));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = rs.factor;
    else {
      const smooth = (oldContext / wavelen - lowFactor) / (highFactor - lowFactor);
      out[i] = 1 / ((1 - smooth) / rs.factor + smooth);
    }
  }
  return out;
}

/**
 * Write a Llama or Qwen2 checkpoint (HF names, Linear weights [out, in]) as a llama.cpp GGUF whose 2-D weights
 * are `type` (norms, biases and rope_freqs stay F32, as llama.cpp's converter keeps 1-D tensors). Names
 * (llama.cpp LLM_ARCH_LLAMA / LLM_ARCH_QWEN2, as convert_hf_to_gguf.py writes them):
 *   token_embd [V, d]; blk.N.attn_norm, attn_q / attn_k / attn_v (+ .bias for qwen2), attn_output, ffn_norm,
 *   ffn_gate, ffn_up, ffn_down; output_norm; output [V, d] unless tied (llama.cpp then reuses token_embd).
 * `rows(name)` gives an HF tensor's rows on demand, so a multi-GB checkpoint streams through. `headType` is the LM
 * head's type (`output`, or `token_embd` when tied), as llama-quantize's --output-tensor-type /
 * --token-embedding-type set it: Q4_0 with a Q8_0 head is lmsteer q4's precision (its LM head is 8-bit).
 */
export function writeLlamaGguf(
  path: string,
  cfg: LlamaGgufConfig,
  rows: (name: string) => RowSource,
  vec: (name: string) => Float32Array,
  vocab: GgufVocab,
  type: GgmlType,
  name = 'lmsteer-bench-llama',
  headType: GgmlType = type,
): void {
  const arch = cfg.model_type;
  const hd = cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;
  const md: Record<string, GgufValue> = {
    'general.architecture': { type: 'string', value: arch },
    'general.name': { type: 'string', value: name },
    'general.file_type': { type: 'u32', value: GGUF_FILE_TYPE[type] },
    'general.alignment': { type: 'u32', value: ALIGNMENT },
    [`${arch}.vocab_size`]: { type: 'u32', value: cfg.vocab_size },
    [`${arch}.context_length`]: { type: 'u32', value: cfg.max_position_embeddings },
    [`${arch}.embedding_length`]: { type: 'u32', value: cfg.hidden_size },
    [`${arch}.feed_forward_length`]: { type: 'u32', value: cfg.intermediate_size },
    [`${arch}.block_count`]: { type: 'u32', value: cfg.num_hidden_layers },
    [`${arch}.attention.head_count`]: { type: 'u32', value: cfg.num_attention_heads },
    [`${arch}.attention.head_count_kv`]: { type: 'u32', value: cfg.num_key_value_heads },
    [`${arch}.attention.key_length`]: { type: 'u32', value: hd },
    [`${arch}.attention.value_length`]: { type: 'u32', value: hd },
    [`${arch}.attention.layer_norm_rms_epsilon`]: { type: 'f32', value: cfg.rms_norm_eps },
    [`${arch}.rope.freq_base`]: { type: 'f32', value: cfg.rope_theta },
    [`${arch}.rope.dimension_count`]: { type: 'u32', value: hd },
    'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
    'tokenizer.ggml.pre': { type: 'string', value: 'default' },
    'tokenizer.ggml.tokens': { type: 'string[]', value: vocab.tokens },
    'tokenizer.ggml.token_type': { type: 'i32[]', value: vocab.tokenTypes },
    'tokenizer.ggml.merges': { type: 'string[]', value: vocab.merges },
    'tokenizer.ggml.bos_token_id': { type: 'u32', value: vocab.bosId },
    'tokenizer.ggml.eos_token_id': { type: 'u32', value: vocab.eosId },
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: false },
  };
  const { hidden_size: d, vocab_size: V, intermediate_size: I } = cfg;
  const H = cfg.num_attention_heads;
  const kvH = cfg.num_key_value_heads;
  const matrix = (gguf: string, hf: string, shape: number[], src = rows(hf), t = type): GgufTensor => ({
    name: gguf,
    shape,
    type: t,
    rows: src,
  });
  const vector = (gguf: string, hf: string, n: number): GgufTensor => ({ name: gguf, shape: [n], data: () => vec(hf) });
  const tied = cfg.tie_word_embeddings;
  const embedding = rows('model.embed_tokens.weight');
  const tensors: GgufTensor[] = [matrix('token_embd.weight', '', [V, d], embedding, tied ? headType : type)];
  if (arch === 'llama' && cfg.rope_scaling?.rope_type === 'llama3')
    tensors.push({ name: 'rope_freqs.weight', shape: [hd / 2], data: () => llama3RopeFactors(cfg) });
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    const b = `blk.${i}`;
    const q = rows(`${p}.self_attn.q_proj.weight`);
    const k = rows(`${p}.self_attn.k_proj.weight`);
    tensors.push(
      vector(`${b}.attn_norm.weight`, `${p}.input_layernorm.weight`, d),
      matrix(`${b}.attn_q.weight`, '', [H * hd, d], arch === 'llama' ? permutedRopeRows(q, H) : q),
      matrix(`${b}.attn_k.weight`, '', [kvH * hd, d], arch === 'llama' ? permutedRopeRows(k, kvH) : k),
      matrix(`${b}.attn_v.weight`, `${p}.self_attn.v_proj.weight`, [kvH * hd, d]),
    );
    if (arch === 'qwen2')
      tensors.push(
        vector(`${b}.attn_q.bias`, `${p}.self_attn.q_proj.bias`, H * hd),
        vector(`${b}.attn_k.bias`, `${p}.self_attn.k_proj.bias`, kvH * hd),
        vector(`${b}.attn_v.bias`, `${p}.self_attn.v_proj.bias`, kvH * hd),
      );
    tensors.push(
      matrix(`${b}.attn_output.weight`, `${p}.self_attn.o_proj.weight`, [d, H * hd]),
      vector(`${b}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`, d),
      matrix(`${b}.ffn_gate.weight`, `${p}.mlp.gate_proj.weight`, [I, d]),
      matrix(`${b}.ffn_up.weight`, `${p}.mlp.up_proj.weight`, [I, d]),
      matrix(`${b}.ffn_down.weight`, `${p}.mlp.down_proj.weight`, [d, I]),
    );
  }
  tensors.push(vector('output_norm.weight', 'model.norm.weight', d));
  if (!tied) tensors.push(matrix('output.weight', 'lm_head.weight', [V, d], rows('lm_head.weight'), headType));
  writeGguf(path, md, tensors);
}
