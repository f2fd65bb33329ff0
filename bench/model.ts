/**
 * The benchmark model: GPT-2 small's shape (12 layers, d 768, 12 heads, vocab 50257, 1024 positions) with
 * seeded random weights of realistic scale, written once to a folder under the OS temp dir as
 *   config.json + model.safetensors   (what lmsteer loads, through src/formats)
 *   model.gguf                        (the same float32 weights for llama.cpp, see gguf.ts)
 * and reused by later runs (the folder name carries the seed and BENCH_MODEL_VERSION).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors } from '../src/formats/safetensors.js';
import type { Tensor } from '../src/util/tensor.js';

/** Bump when the weights or the files written change, so stale folders are not reused. */
export const BENCH_MODEL_VERSION = 1;
export const SEED = 1234;

export const GPT2_SMALL_CONFIG = {
  model_type: 'gpt2',
  vocab_size: 50257,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_positions: 1024,
  n_inner: null,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  tie_word_embeddings: true,
  bos_token_id: 50256,
  eos_token_id: 50256,
};

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHARED_DIR = process.env.LMSTEER_SHARED ?? resolve(repoRoot, '..', 'shared');

/** The GPT-2 tokenizer folder in ../shared, or undefined when absent. */
export function sharedTokenizerDir(): string | undefined {
  const dir = join(SHARED_DIR, 'models', 'gpt2-tokenizer');
  return existsSync(join(dir, 'tokenizer.json')) ? dir : undefined;
}

export function sharedFile(...parts: string[]): string | undefined {
  const p = join(SHARED_DIR, ...parts);
  return existsSync(p) ? p : undefined;
}

export interface BenchPaths {
  root: string;
  modelDir: string;
  config: string;
  safetensors: string;
  gguf: string;
  /** lmsteer's built-graph cache for this model (createDecoderSession's cacheDir). */
  graphCache: string;
}

export function benchPaths(): BenchPaths {
  const root = process.env.LMSTEER_BENCH_DIR ?? join(tmpdir(), 'lmsteer-bench');
  const modelDir = join(root, `gpt2-small-seed${SEED}-v${BENCH_MODEL_VERSION}`);
  return {
    root,
    modelDir,
    config: join(modelDir, 'config.json'),
    safetensors: join(modelDir, 'model.safetensors'),
    gguf: join(modelDir, 'model.gguf'),
    graphCache: join(modelDir, 'lmsteer-cache'),
  };
}

/**
 * A fast seeded normal generator. Hand-written rather than pure-rand (used by the tests' tiny models) because
 * this draws 124M values: xorshift128+ on two uint32 halves plus Box–Muller takes ~2 s, pure-rand's 53-bit
 * uniforms several times that.
 */
export function fastNormals(seed: number): () => number {
  let s0 = (seed ^ 0x9e3779b9) >>> 0 || 1;
  let s1 = Math.imul(seed + 0x6d2b79f5, 0x85ebca6b) >>> 0 || 2;
  let s2 = 0x243f6a88;
  let s3 = 0xb7e15162;
  const next = () => {
    // xoshiro128+ (32-bit), good enough for weight noise.
    const r = (s0 + s3) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    return r;
  };
  for (let i = 0; i < 16; i++) next();
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const v = spare;
      spare = undefined;
      return v;
    }
    const u = (next() + 1) / 4294967297; // (0, 1)
    const v = next() / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/**
 * Scales chosen so activations look like a trained GPT-2's rather than an init's: embedding std 0.1 gives
 * logits of std ≈ 2.8 (a peaked next-token distribution, so greedy tokens are well separated and the
 * llama.cpp comparison is meaningful); projections std 0.06 ≈ 1.7/√768 give attention scores of std ≈ 3.
 */
function scaleOf(name: string): [mean: number, std: number] {
  if (/ln_\d\.weight$|ln_f\.weight$/.test(name)) return [1, 0.05];
  if (name.endsWith('.bias')) return [0, 0.02];
  if (name === 'wte.weight') return [0, 0.1];
  if (name === 'wpe.weight') return [0, 0.02];
  return [0, 0.06];
}

/** GPT-2 small's tensors (HF names, Conv1D weights [in, out]) in checkpoint order. */
export function gpt2SmallShapes(): { name: string; shape: number[] }[] {
  const c = GPT2_SMALL_CONFIG;
  const d = c.n_embd;
  const I = 4 * d;
  const out = [
    { name: 'wte.weight', shape: [c.vocab_size, d] },
    { name: 'wpe.weight', shape: [c.n_positions, d] },
  ];
  for (let i = 0; i < c.n_layer; i++) {
    const p = `h.${i}`;
    out.push({ name: `${p}.ln_1.weight`, shape: [d] }, { name: `${p}.ln_1.bias`, shape: [d] });
    out.push({ name: `${p}.attn.c_attn.weight`, shape: [d, 3 * d] }, { name: `${p}.attn.c_attn.bias`, shape: [3 * d] });
    out.push({ name: `${p}.attn.c_proj.weight`, shape: [d, d] }, { name: `${p}.attn.c_proj.bias`, shape: [d] });
    out.push({ name: `${p}.ln_2.weight`, shape: [d] }, { name: `${p}.ln_2.bias`, shape: [d] });
    out.push({ name: `${p}.mlp.c_fc.weight`, shape: [d, I] }, { name: `${p}.mlp.c_fc.bias`, shape: [I] });
    out.push({ name: `${p}.mlp.c_proj.weight`, shape: [I, d] }, { name: `${p}.mlp.c_proj.bias`, shape: [d] });
  }
  out.push({ name: 'ln_f.weight', shape: [d] }, { name: 'ln_f.bias', shape: [d] });
  return out;
}

export function makeGpt2SmallWeights(seed = SEED): Record<string, Tensor<'float32'>> {
  const randn = fastNormals(seed);
  const out: Record<string, Tensor<'float32'>> = {};
  for (const { name, shape } of gpt2SmallShapes()) {
    const [mean, std] = scaleOf(name);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = mean + std * randn();
    out[name] = { dtype: 'float32', shape, data };
  }
  return out;
}

/** True when the model folder already holds every file (safetensors, config, and GGUF when asked). */
export function modelReady(p: BenchPaths, needGguf: boolean): boolean {
  return existsSync(p.config) && existsSync(p.safetensors) && (!needGguf || existsSync(p.gguf));
}

/** Write config.json and model.safetensors (atomically: a crash leaves no half folder). */
export function writeModelFiles(p: BenchPaths, weights: Record<string, Tensor<'float32'>>): void {
  mkdirSync(p.modelDir, { recursive: true });
  if (!existsSync(p.safetensors))
    writeSafetensors(p.safetensors, weights, { metadata: { format: 'pt', bench: `seed ${SEED}` } });
  if (!existsSync(p.config)) {
    const tmp = `${p.config}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(GPT2_SMALL_CONFIG, null, 2));
    renameSync(tmp, p.config);
  }
}

export function readConfig(p: BenchPaths): Record<string, unknown> {
  return JSON.parse(readFileSync(p.config, 'utf8')) as Record<string, unknown>;
}

export function removeModel(p: BenchPaths): void {
  rmSync(p.modelDir, { recursive: true, force: true });
}
