/**
 * A small GGUF (version 3) writer, and GPT-2 in llama.cpp's layout, so node-llama-cpp can run the very
 * weights lmsteer runs. Only what the benchmark needs: float32 tensors and scalar/array metadata.
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
import type { Tensor } from '../src/util/tensor.js';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const ALIGNMENT = 32;
const GGML_TYPE_F32 = 0;

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

/** A tensor to write: row-major float32 `shape`, produced on demand (so big files stream). */
export interface GgufTensor {
  name: string;
  shape: number[];
  data: () => Float32Array;
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
    h.u32(GGML_TYPE_F32);
    h.u64(offset);
    const bytes = 4 * t.shape.reduce((a, b) => a * b, 1);
    offset += bytes + ((ALIGNMENT - (bytes % ALIGNMENT)) % ALIGNMENT);
  }
  h.pad(ALIGNMENT);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, h.bytes());
    const zeros = Buffer.alloc(ALIGNMENT);
    for (const t of tensors) {
      const data = t.data();
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (data.length !== n)
        throw new Error(`internal: GGUF tensor ${t.name} has ${data.length} values for shape [${t.shape}]`);
      writeSync(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      const pad = (ALIGNMENT - (data.byteLength % ALIGNMENT)) % ALIGNMENT;
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
