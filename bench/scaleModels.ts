/**
 * Script-made checkpoints with the exact shapes of real models (bench/scaleShapes.ts), for the scale benchmark:
 * no download, deterministic, written with little memory.
 *
 *   model.safetensors  bf16, streamed: the header first (every shape is known), then each tensor made and written
 *                      band by band (~4 MB of float32 at a time). Each tensor's values come from its own seed
 *                      (a hash of the seed and its name), so any one tensor can be remade alone.
 *   config.json        the real model's config.json (scaleShapes.ts)
 *   tokenizer.json     a synthetic byte-level BPE of the model's vocabulary size (not the real vocabulary: the
 *                      bench feeds token ids; the file only has to load and be the right size): the 256 byte
 *                      symbols, then merges that each extend an existing token by one byte symbol, then the
 *                      model's special tokens at their real ids.
 *
 * Scales, chosen so activations and logits look like a trained model's rather than an init's (a peaked next-token
 * distribution keeps greedy tokens well separated, which the parity checks need): embeddings (and an untied head)
 * std 0.02, as trained Llama/Qwen embeddings; linear weights std 0.6/√in; layer norm gains 1 ± 0.05; the final
 * norm's gain 3/(0.02·√d) ± 5% (trained models' final gains are large too), so logits have std ≈ 3; biases std
 * 0.02. (Embeddings of std 3/√d instead made tied models repeat their last input token: h·E[token] dominated.)
 *
 *   node --import tsx bench/scaleModels.ts --shape qwen2.5-0.5b [--dir DIR]   (prints the folder)
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f32ToBf16 } from '../src/formats/halfFloat.js';
import { fastNormals } from './model.js';
import { SCALE_SHAPES, shapeDims, type ScaleShape } from './scaleShapes.js';

/** Bump when the weights, tokenizer or files written change, so stale folders are not reused. */
export const SCALE_MODEL_VERSION = 1;

export interface TensorSpec {
  name: string;
  shape: number[];
  mean: number;
  std: number;
}

/** Every tensor of a Llama/Qwen2 checkpoint of `config`, in Hugging Face's names and order. */
export function llamaTensorSpecs(config: Record<string, unknown>): TensorSpec[] {
  const c = config as {
    hidden_size: number;
    intermediate_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    head_dim?: number;
    vocab_size: number;
    tie_word_embeddings: boolean;
    model_type: string;
    attention_bias?: boolean;
  };
  const d = c.hidden_size;
  const hd = c.head_dim ?? d / c.num_attention_heads;
  const q = c.num_attention_heads * hd;
  const kv = c.num_key_value_heads * hd;
  const I = c.intermediate_size;
  const bias = c.model_type === 'qwen2' || c.attention_bias === true;
  const lin = (name: string, out: number, inp: number): TensorSpec => ({
    name,
    shape: [out, inp],
    mean: 0,
    std: 0.6 / Math.sqrt(inp),
  });
  const vec = (name: string, n: number, mean: number, std: number): TensorSpec => ({ name, shape: [n], mean, std });
  const specs: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocab_size, d], mean: 0, std: 0.02 }];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    specs.push(vec(`${p}.input_layernorm.weight`, d, 1, 0.05));
    specs.push(lin(`${p}.self_attn.q_proj.weight`, q, d), lin(`${p}.self_attn.k_proj.weight`, kv, d));
    specs.push(lin(`${p}.self_attn.v_proj.weight`, kv, d));
    if (bias) {
      specs.push(vec(`${p}.self_attn.q_proj.bias`, q, 0, 0.02), vec(`${p}.self_attn.k_proj.bias`, kv, 0, 0.02));
      specs.push(vec(`${p}.self_attn.v_proj.bias`, kv, 0, 0.02));
    }
    specs.push(lin(`${p}.self_attn.o_proj.weight`, d, q));
    specs.push(vec(`${p}.post_attention_layernorm.weight`, d, 1, 0.05));
    specs.push(lin(`${p}.mlp.gate_proj.weight`, I, d), lin(`${p}.mlp.up_proj.weight`, I, d));
    specs.push(lin(`${p}.mlp.down_proj.weight`, d, I));
  }
  specs.push(vec('model.norm.weight', d, 1, 0.05));
  if (!c.tie_word_embeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocab_size, d], mean: 0, std: 0.02 });
  return specs;
}

/** Rows drawn from one seeded stream: a band of rows can be remade without drawing the rows before it. */
const SEED_ROWS = 256;

/** [rows, cols] of a tensor; a vector [n] is one row. */
function rowsCols(spec: TensorSpec): [number, number] {
  return spec.shape.length === 2 ? [spec.shape[0], spec.shape[1]] : [1, spec.shape[0]];
}

/** The float32 values of rows [start, start + count) of a tensor, from its own seed. */
export function tensorValues(spec: TensorSpec, seed: number, start = 0, count = rowsCols(spec)[0]): Float32Array {
  const [rows, cols] = rowsCols(spec);
  const out = new Float32Array(count * cols);
  for (let b = Math.floor(start / SEED_ROWS); b * SEED_ROWS < start + count; b++) {
    const randn = fastNormals(bandSeed(seed, spec.name, b));
    for (let r = b * SEED_ROWS; r < Math.min(rows, (b + 1) * SEED_ROWS); r++) {
      const keep = r >= start && r < start + count;
      for (let j = 0; j < cols; j++) {
        const v = spec.mean + spec.std * randn();
        if (keep) out[(r - start) * cols + j] = v;
      }
    }
  }
  return out;
}

function bandSeed(seed: number, name: string, band: number): number {
  return createHash('sha256').update(`${seed}|${name}|${band}`).digest().readUInt32LE(0);
}

/** Write `specs` as one bf16 safetensors file, a band of rows at a time (atomically, via a temp file). */
export function writeStreamedSafetensors(path: string, specs: TensorSpec[], seed: number): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', bench: `lmsteer scale seed ${seed}` } };
  let offset = 0;
  for (const s of specs) {
    const bytes = 2 * s.shape.reduce((a, b) => a * b, 1);
    header[s.name] = { dtype: 'BF16', shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, Buffer.from(json));
    for (const s of specs) {
      const [rows, cols] = rowsCols(s);
      // ~1M values a band, a whole number of seed bands (no row drawn twice).
      const band = SEED_ROWS * Math.max(1, Math.floor((1 << 20) / cols / SEED_ROWS));
      for (let r = 0; r < rows; r += band) {
        const bits = f32ToBf16(tensorValues(s, seed, r, Math.min(band, rows - r)));
        writeSync(fd, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
      }
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** GPT-2's byte → printable-character map (the alphabet of byte-level BPE). */
function byteSymbols(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  return out;
}

export interface SpecialToken {
  id: number;
  content: string;
}

/** A synthetic byte-level BPE tokenizer.json: `bpeTokens` ordinary tokens, then `special` at their ids. */
export function syntheticTokenizer(bpeTokens: number, special: SpecialToken[], seed: number): object {
  const symbols = byteSymbols();
  const vocab: Record<string, number> = {};
  const tokens: string[] = [];
  symbols.forEach((s, i) => {
    vocab[s] = i;
    tokens.push(s);
  });
  const merges: string[] = [];
  let state = seed >>> 0 || 1;
  const uniform = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  while (tokens.length < bpeTokens) {
    // Extend a recent-ish token by one symbol: token lengths grow slowly, as in a real merge list.
    const a = tokens[Math.floor(uniform() ** 2 * tokens.length)];
    const b = symbols[Math.floor(uniform() * 256)];
    const t = a + b;
    if (t in vocab) continue;
    vocab[t] = tokens.length;
    tokens.push(t);
    merges.push(`${a} ${b}`);
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((s) => ({
      id: s.id,
      content: s.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/** The real models' special tokens: Qwen2.5 (151643 BPE tokens, then <|endoftext|>, …), Llama 3 (128000, then 256). */
function specialTokens(shape: ScaleShape): { bpe: number; special: SpecialToken[] } {
  if (shape === 'qwen2.5-0.5b') {
    const names = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
    return { bpe: 151643, special: names.map((content, i) => ({ id: 151643 + i, content })) };
  }
  const special = Array.from({ length: 256 }, (_, i) => ({
    id: 128000 + i,
    content: `<|reserved_special_token_${i}|>`,
  }));
  special[0].content = '<|begin_of_text|>';
  special[1].content = '<|end_of_text|>';
  return { bpe: 128000, special };
}

export interface ScaleModelPaths {
  dir: string;
  config: string;
  safetensors: string;
  tokenizer: string;
}

export function scaleModelDir(shape: ScaleShape, seed: number, root?: string): ScaleModelPaths {
  const base = root ?? process.env.LMSTEER_BENCH_DIR ?? join(tmpdir(), 'lmsteer-bench');
  const dir = join(base, `${shape}-seed${seed}-v${SCALE_MODEL_VERSION}`);
  return {
    dir,
    config: join(dir, 'config.json'),
    safetensors: join(dir, 'model.safetensors'),
    tokenizer: join(dir, 'tokenizer.json'),
  };
}

/**
 * Write config.json, tokenizer.json and a streamed bf16 model.safetensors of `config` into `dir` (each file only
 * when missing, atomically, so an interrupted run resumes).
 */
export function writeCheckpointFolder(
  dir: string,
  config: Record<string, unknown>,
  tokens: { bpe: number; special: SpecialToken[] },
  seed: number,
): ScaleModelPaths {
  const p = {
    dir,
    config: join(dir, 'config.json'),
    safetensors: join(dir, 'model.safetensors'),
    tokenizer: join(dir, 'tokenizer.json'),
  };
  mkdirSync(dir, { recursive: true });
  if (!existsSync(p.config)) writeFileSync(p.config, JSON.stringify(config, null, 2));
  if (!existsSync(p.tokenizer)) {
    const tmp = `${p.tokenizer}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(syntheticTokenizer(tokens.bpe, tokens.special, seed)));
    renameSync(tmp, p.tokenizer);
  }
  if (!existsSync(p.safetensors)) writeStreamedSafetensors(p.safetensors, llamaTensorSpecs(config), seed);
  return p;
}

/** Make the checkpoint folder of `shape` unless it is complete already. Returns its paths. */
export function makeScaleModel(shape: ScaleShape, seed = 1234, root?: string): ScaleModelPaths {
  const p = scaleModelDir(shape, seed, root);
  return writeCheckpointFolder(
    p.dir,
    SCALE_SHAPES[shape] as unknown as Record<string, unknown>,
    specialTokens(shape),
    seed,
  );
}

export function removeScaleModel(p: ScaleModelPaths): void {
  rmSync(p.dir, { recursive: true, force: true });
}

if (process.argv[1]?.endsWith('scaleModels.ts')) {
  const i = process.argv.indexOf('--shape');
  const shape = (i > 0 ? process.argv[i + 1] : 'qwen2.5-0.5b') as ScaleShape;
  if (!(shape in SCALE_SHAPES)) {
    console.error(`unknown --shape ${shape}; known: ${Object.keys(SCALE_SHAPES).join(', ')}`);
    process.exit(2);
  }
  const j = process.argv.indexOf('--dir');
  const t0 = performance.now();
  const p = makeScaleModel(shape, 1234, j > 0 ? process.argv[j + 1] : undefined);
  console.log(`${p.dir} (${((performance.now() - t0) / 1000).toFixed(1)} s; ${JSON.stringify(shapeDims(shape))})`);
}
