/**
 * Fixtures for the lens and transfer tests: a steer built to boost one token on a real model, and model folders
 * made in a temp dir next to stories260K (a random llama of another width, the same model embedded in a wider
 * space with rescaled embeddings, a model whose tokenizer shares nothing). Tokenizers are symlinked, never copied.
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import type { LoadedModel } from '../../src/runtime/loadModel.js';
import type { Steer } from '../../src/steer/steer.js';
import { tensor, type Tensor } from '../../src/util/tensor.js';
import { tinyCheckpoint } from './tinyModels.js';

const made: string[] = [];

/** A fresh temp folder, removed by removeTempDirs() (call it from the test file's `after`). */
export function tempDir(prefix = 'lmsteer-lens-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Unit-norm mean final hidden state of `model` over `text`: a read direction most positions agree with. */
export async function meanHiddenDirection(model: LoadedModel, text: string): Promise<Float64Array> {
  const ids = model.tokenizer.encode(text);
  const out = await model.decoder.forward([ids]);
  const d = model.cfg.hiddenSize;
  const m = new Float64Array(d);
  for (let t = 0; t < ids.length; t++) for (let i = 0; i < d; i++) m[i]! += out.hidden.data[t * d + i]!;
  const n = Math.hypot(...m);
  return m.map((x) => x / n);
}

/**
 * A rank-1 steer W = p1·p2ᵀ that writes along E[token] (p2 = E[token]/‖E[token]‖, the top right singular
 * vector) and reads along `read`, so at +value it raises `token`'s logit wherever h·read > 0. Slot "boost",
 * plus a base slot (default 1) when `withDummy`.
 */
export function boostSteer(
  model: LoadedModel,
  token: number,
  read: Float64Array,
  opts: { eps?: number; sigma?: number; withDummy?: boolean } = {},
): Steer {
  const E = model.outputEmbeddings();
  const d = E.shape[1]!;
  const e = E.data.subarray(token * d, (token + 1) * d);
  const en = Math.hypot(...e);
  const slots = opts.withDummy
    ? [
        { name: 'boost', defaultValue: 0 },
        { name: 'base', defaultValue: 1 },
      ]
    : [{ name: 'boost', defaultValue: 0 }];
  const S = slots.length;
  const p1 = tensor([S, d, 1]);
  const p2 = tensor([S, d, 1]);
  const sigma = opts.sigma ?? 1;
  for (let i = 0; i < d; i++) {
    p1.data[i] = sigma * read[i]!;
    p2.data[i] = e[i]! / en;
  }
  return {
    config: {
      formatVersion: 1,
      name: 'boost',
      baseModel: { id: model.id, embeddingFingerprint: model.fingerprint(), vocabSize: E.shape[0]!, hiddenSize: d },
      eps: opts.eps ?? 0.3,
      rank: 1,
      slots,
    },
    p1,
    p2,
  };
}

function writeModel(
  dir: string,
  config: Record<string, unknown>,
  weights: Record<string, Tensor>,
  tokenizerJson: string | { link: string },
): string {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensors(join(dir, 'model.safetensors'), weights);
  if (typeof tokenizerJson === 'string') writeFileSync(join(dir, 'tokenizer.json'), tokenizerJson);
  else symlinkSync(tokenizerJson.link, join(dir, 'tokenizer.json'));
  return dir;
}

/** A randomly initialised llama of hidden size `d` with stories260K's tokenizer (symlinked). */
export function randomLlamaDir(storiesDir: string, opts: { d?: number; seed?: number } = {}): string {
  const ck = tinyCheckpoint('llama', {
    vocab: 512,
    d: opts.d ?? 48,
    layers: 2,
    heads: 4,
    seed: opts.seed ?? 3,
    maxPositions: 256,
  });
  const weights: Record<string, Tensor> = {};
  for (const name of ck.weights.names()) weights[name] = ck.weights.get(name);
  return writeModel(tempDir('lmsteer-rand-'), ck.config, weights, { link: join(storiesDir, 'tokenizer.json') });
}

/**
 * stories260K embedded in a wider hidden space: the residual stream gets `extra` coordinates that stay 0, the
 * output embeddings become untied E_B = [E_A / m, R] (m > 0 per coordinate, R random) and the final norm gain is
 * multiplied by m, so B's hidden states are [h_A ⊙ m, 0]·√… and its logits equal A's — a different model (other
 * width, other embeddings) that predicts exactly like A. RMSNorm over d' coordinates is matched by scaling the
 * gains by √(d/d') and eps by d/d'.
 */
export function widenedStoriesDir(
  storiesDir: string,
  model: LoadedModel,
  opts: { extra?: number; seed?: number } = {},
): { dir: string; m: Float64Array } {
  const cfg = model.cfg;
  const d = cfg.hiddenSize;
  const D = d + (opts.extra ?? 32);
  let s = (opts.seed ?? 11) >>> 0 || 1;
  const rand = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const m = Float64Array.from({ length: d }, () => 0.7 + 0.7 * rand());
  const c = Math.sqrt(d / D);
  const out: Record<string, Tensor> = {};
  const padCols = (t: Tensor) => {
    const [rows, cols] = t.shape as [number, number];
    const r = tensor([rows, cols - d + D]);
    for (let i = 0; i < rows; i++) r.data.set(t.data.subarray(i * cols, (i + 1) * cols), i * (cols - d + D));
    return r;
  };
  const padRows = (t: Tensor) => {
    const [rows, cols] = t.shape as [number, number];
    const r = tensor([rows - d + D, cols]);
    r.data.set(t.data);
    return r;
  };
  for (const name of model.weights.names()) {
    const t = model.weights.get(name);
    if (name === 'lm_head.weight') continue;
    if (name === 'model.embed_tokens.weight') out[name] = padCols(t);
    else if (/(q_proj|k_proj|v_proj|gate_proj|up_proj)\.weight$/.test(name)) out[name] = padCols(t);
    else if (/(o_proj|down_proj)\.weight$/.test(name)) out[name] = padRows(t);
    else if (/norm\.weight$/.test(name)) {
      const g = tensor([D]);
      const final = name === 'model.norm.weight';
      for (let i = 0; i < d; i++) g.data[i] = t.data[i]! * c * (final ? m[i]! : 1);
      out[name] = g;
    } else throw new Error(`widenedStoriesDir: unexpected tensor ${name}`);
  }
  const E = model.outputEmbeddings();
  const V = E.shape[0]!;
  const head = tensor([V, D]);
  for (let t = 0; t < V; t++) {
    for (let i = 0; i < d; i++) head.data[t * D + i] = E.data[t * d + i]! / m[i]!;
    for (let i = d; i < D; i++) head.data[t * D + i] = rand() - 0.5;
  }
  out['lm_head.weight'] = head;
  const config = {
    model_type: 'llama',
    hidden_size: D,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    max_position_embeddings: 512,
    vocab_size: cfg.vocabSize,
    rms_norm_eps: (cfg.normEps * d) / D,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  return { dir: writeModel(tempDir('lmsteer-wide-'), config, out, { link: join(storiesDir, 'tokenizer.json') }), m };
}

/** A tiny llama whose word-level tokenizer shares no token string with stories260K. */
export function disjointVocabDir(): string {
  const words = Array.from({ length: 63 }, (_, i) => `qzx${i}vv`);
  const vocab: Record<string, number> = { '[UNK]': 0 };
  words.forEach((w, i) => (vocab[w] = i + 1));
  const tok = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '[UNK]' },
  };
  const ck = tinyCheckpoint('llama', { vocab: 64, d: 16, layers: 1, heads: 2, seed: 5 });
  const weights: Record<string, Tensor> = {};
  for (const name of ck.weights.names()) weights[name] = ck.weights.get(name);
  return writeModel(tempDir('lmsteer-disjoint-'), ck.config, weights, JSON.stringify(tok));
}
