/**
 * One benchmark measure in its own process (so its peak RSS is its own):
 *   node --import tsx bench/worker.ts MEASURE RESULT.json
 * writes { measure, config, metrics: { name: Summary }, peakRssMiB, notes } to RESULT.json.
 * bench/run.ts starts these; each can also be run alone to look at one number.
 */
import '../src/util/ortTelemetryOff.js';
import { llamaCppGreedy, openLlamaCpp, peerVersion } from './peer.js';
import { readdirSync, readFileSync, statSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { openSafetensorsModel } from '../src/formats/safetensors.js';
import type { WeightStore } from '../src/formats/weights.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { transpose2d } from '../src/models/common.js';
import type { DecoderConfig } from '../src/models/config.js';
import { canonicalWeights, checkWeights, outputEmbeddings, parseDecoderConfig } from '../src/models/registry.js';
import type { SteerInputs } from '../src/runtime/decoder.js';
import { generate, type GenerateRequest } from '../src/runtime/generate.js';
import { OrtDecoder } from '../src/runtime/ortDecoder.js';
import { createDecoderSession, sessionOptions } from '../src/runtime/session.js';
import { HfTokenizer } from '../src/tokenizer/hfTokenizer.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { ADAM_DEFAULTS, adamInit, adamStep } from '../src/train/adam.js';
import { LossSession, type LossBatch } from '../src/train/lossGraph.js';
import type { Tensor } from '../src/util/tensor.js';
import { benchPaths, fastNormals, readConfig, sharedFile, sharedTokenizerDir } from './model.js';
import { readVersion, SETTINGS, THREADS, type MeasureResult } from './settings.js';
import { argmaxRows, decodeRun } from './decodeRun.js';
import { now, peakRssMiB, rssMiB, single, summarize, type Summary } from './stats.js';

// ---------------------------------------------------------------------------------------------------------
// Loading

interface Loaded {
  cfg: DecoderConfig;
  weights: WeightStore;
  decoder: OrtDecoder;
  tokenizer?: Tokenizer;
  loadMs: number;
}

/** The real path: config.json → parseDecoderConfig, model.safetensors → src/formats, graph cache → session. */
async function loadLmsteer(): Promise<Loaded> {
  const p = benchPaths();
  const t0 = now();
  const cfg = parseDecoderConfig(readConfig(p), p.config);
  const weights = canonicalWeights(cfg, openSafetensorsModel(p.modelDir));
  checkWeights(cfg, weights);
  const session = await createDecoderSession(cfg, weights, { cacheDir: p.graphCache, threads: THREADS });
  const loadMs = now() - t0;
  const tokDir = sharedTokenizerDir();
  return {
    cfg,
    weights,
    decoder: new OrtDecoder(session, cfg),
    tokenizer: tokDir ? HfTokenizer.fromDir(tokDir) : undefined,
    loadMs,
  };
}

/** The one built graph in the bench model's cache (for sessions with other options, e.g. profiling). */
function cachedModelPath(): string {
  const dir = join(benchPaths().graphCache, 'graphs');
  const found = readdirSync(dir)
    .filter((d) => !d.includes('.tmp-'))
    .map((d) => join(dir, d, 'model.onnx'))
    .filter((f) => {
      try {
        return statSync(f).isFile();
      } catch {
        return false;
      }
    })
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (found.length === 0) throw new Error(`no built graph under ${dir}; run the prepare step first`);
  return found[0];
}

// ---------------------------------------------------------------------------------------------------------
// Inputs

let corpusIds: number[] | undefined;

/** Token ids of real text (the shared neutral prompts) when the tokenizer is there, else seeded ids. */
function corpus(tok: Tokenizer | undefined): number[] {
  if (corpusIds) return corpusIds;
  const file = sharedFile('data', 'prompts', 'sentiment_prompts-10k', 'neutral_prompts.jsonl');
  if (tok && file) {
    const texts = readFileSync(file, 'utf8')
      .split('\n')
      .slice(0, 400)
      .filter((l) => l.trim())
      .map((l) => (JSON.parse(l) as { prompt: { text: string } }).prompt.text);
    corpusIds = tok.encode(texts.join(' '), { addSpecialTokens: false });
  } else {
    const r = fastNormals(7);
    corpusIds = Array.from({ length: 20000 }, () => Math.floor(Math.abs(r() * 12000)) % 50000);
  }
  return corpusIds;
}

/** Row `i` of `n` tokens: a window of the corpus (different rows, different text). */
function promptRow(tok: Tokenizer | undefined, n: number, i: number): number[] {
  const c = corpus(tok);
  const start = (i * 997) % Math.max(1, c.length - n);
  return c.slice(start, start + n);
}

function evalPrompts(tok: Tokenizer | undefined, n: number): GenerateRequest['prompt'][] {
  const file = sharedFile('data', 'prompts', 'sentiment_prompts-10k', 'neutral_prompts.jsonl');
  if (tok && file) {
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(0, n)
      .map((l) => (JSON.parse(l) as { prompt: { text: string } }).prompt.text);
  }
  return Array.from({ length: n }, (_, i) => ({ ids: promptRow(tok, 12, i) }));
}

/** A random packed steer (K = slots·rank), values like the reference's init after some training. */
function randomSteer(d: number, batch: number, rank: number, slots: number): SteerInputs {
  const K = rank * slots;
  const r = fastNormals(99);
  const p1 = new Float32Array(d * K).map(() => 0.01 * r());
  const p2t = new Float32Array(K * d).map(() => 0.01 * r());
  const scale = new Float32Array(batch * K).fill(1e-3);
  return {
    p1: { dtype: 'float32', shape: [d, K], data: p1 },
    p2t: { dtype: 'float32', shape: [K, d], data: p2t },
    scale: { dtype: 'float32', shape: [batch, K], data: scale },
  };
}

/** A tokenizer stand-in for generate() when ../shared's GPT-2 tokenizer is absent. */
function stubTokenizer(vocab: number): Tokenizer {
  return {
    vocabSize: vocab,
    eosIds: [vocab - 1],
    bosId: vocab - 1,
    encode: (text) => Array.from(text).map((ch) => ch.charCodeAt(0) % 256),
    decode: (ids) => ids.map((i) => `<${i}>`).join(''),
    tokenString: (id) => `<${id}>`,
    isSpecial: (id) => id === vocab - 1,
  };
}

// ---------------------------------------------------------------------------------------------------------
// lmsteer decoding

async function warmup(dec: OrtDecoder, tok: Tokenizer | undefined, batch: number, steer?: SteerInputs): Promise<void> {
  await decodeRun(
    dec,
    Array.from({ length: batch }, (_, i) => promptRow(tok, 16, i)),
    4,
    1,
    steer,
  );
}

async function measureDecode(): Promise<MeasureResult> {
  const m = await loadLmsteer();
  const loaded = rssMiB();
  const { promptTokens: T, windowSteps: S, b1Runs, b1Windows } = SETTINGS;
  await warmup(m.decoder, m.tokenizer, 1);
  const prefill: number[] = [];
  const decode: number[] = [];
  for (let r = 0; r < b1Runs; r++) {
    const run = await decodeRun(m.decoder, [promptRow(m.tokenizer, T, r)], S, b1Windows);
    prefill.push((T / run.prefillMs) * 1000);
    for (const ms of run.windowMs) decode.push((S / ms) * 1000);
  }
  return {
    measure: 'decode',
    config: {
      batch: 1,
      promptTokens: T,
      decodeSteps: S * b1Windows,
      runs: b1Runs,
      sampling: 'greedy (argmax in JS), raw batch.step loop',
      threads: THREADS,
    },
    metrics: {
      load_ms: single(m.loadMs, 'ms'),
      prefill_tok_s: summarize(prefill, 'tok/s'),
      decode_tok_s: summarize(decode, 'tok/s'),
    },
    loadedRssMiB: loaded,
    peakRssMiB: peakRssMiB(),
    notes: [`decode windows of ${S} steps; context ${T}→${T + S * b1Windows}`],
  };
}

async function measureBatch(): Promise<MeasureResult> {
  const m = await loadLmsteer();
  const loaded = rssMiB();
  const { promptTokens: T, windowSteps: S, batchRows: B, batchWindows: W } = SETTINGS;
  const rows = Array.from({ length: B }, (_, i) => promptRow(m.tokenizer, T, i));
  // Warm up at the measured shape: the first 25×200 run grows ORT's arena and faults in fresh pages
  // (~560 page faults a step vs ~50 after; measured), which a serving or eval loop pays once.
  await decodeRun(m.decoder, rows, 4, 1);
  const run = await decodeRun(m.decoder, rows, S, W);
  return {
    measure: 'batch25',
    config: {
      batch: B,
      promptTokens: T,
      decodeSteps: S * W,
      sampling: 'greedy (argmax in JS), raw batch.step loop',
      threads: THREADS,
    },
    metrics: {
      prefill_tok_s: single(((B * T) / run.prefillMs) * 1000, 'tok/s'),
      decode_tok_s: summarize(
        run.windowMs.map((ms) => ((B * S) / ms) * 1000),
        'tok/s',
      ),
      decode_step_ms: summarize(
        run.windowMs.map((ms) => ms / S),
        'ms',
      ),
    },
    loadedRssMiB: loaded,
    peakRssMiB: peakRssMiB(),
    notes: [`tokens/s counts all ${B} rows; one prefill of ${B}×${T} tokens, after a warm-up run of the same shape`],
  };
}

async function measureSteer(): Promise<MeasureResult> {
  const m = await loadLmsteer();
  const loaded = rssMiB();
  const { promptTokens: T, windowSteps: S, b1Runs, b1Windows, steerRank, steerSlots } = SETTINGS;
  const steer = randomSteer(m.cfg.hiddenSize, 1, steerRank, steerSlots);
  await warmup(m.decoder, m.tokenizer, 1);
  await warmup(m.decoder, m.tokenizer, 1, steer);
  const plain: number[] = [];
  const steered: number[] = [];
  // Interleaved, so a neighbour's load on the shared machine hits both alike.
  for (let r = 0; r < b1Runs; r++) {
    const row = [promptRow(m.tokenizer, T, r)];
    const a = await decodeRun(m.decoder, row, S, b1Windows);
    const b = await decodeRun(m.decoder, row, S, b1Windows, steer);
    for (const ms of a.windowMs) plain.push((S / ms) * 1000);
    for (const ms of b.windowMs) steered.push((S / ms) * 1000);
  }
  const ps = summarize(plain, 'tok/s');
  const ss = summarize(steered, 'tok/s');
  return {
    measure: 'steer',
    config: {
      batch: 1,
      promptTokens: T,
      decodeSteps: S * b1Windows,
      runs: b1Runs,
      K: steerRank * steerSlots,
      rank: steerRank,
      slots: steerSlots,
      threads: THREADS,
    },
    metrics: {
      unsteered_tok_s: ps,
      steered_tok_s: ss,
      slowdown: single(ps.median / ss.median, '×'),
    },
    loadedRssMiB: loaded,
    peakRssMiB: peakRssMiB(),
    notes: ['slowdown = unsteered tok/s ÷ steered tok/s (medians); goal ≤ 1.05'],
  };
}

/** Decode tokens/s through generate(): time from the first new token to the last (prefill excluded). */
async function measureGenerate(): Promise<MeasureResult> {
  const m = await loadLmsteer();
  const loaded = rssMiB();
  const tok = m.tokenizer ?? stubTokenizer(m.cfg.vocabSize);
  const { promptTokens: T, windowSteps: S, b1Runs, b1Windows } = SETTINGS;
  const n = S * b1Windows + 1;
  const metrics: Record<string, Summary> = {};
  const once = async (temperature: number, topK: number, r: number) => {
    const times: number[] = [];
    await generate(
      m.decoder,
      tok,
      [{ prompt: { ids: promptRow(m.tokenizer, T, r) } }],
      { maxNewTokens: n, temperature, topK, stopAtEos: false, seed: r },
      { onToken: () => times.push(now()) },
    );
    return ((times.length - 1) / (times[times.length - 1] - times[0])) * 1000;
  };
  await warmup(m.decoder, m.tokenizer, 1);
  for (const [label, temperature, topK] of [
    ['greedy', 0, 0],
    ['topk50', 1, 50],
  ] as const) {
    const rates: number[] = [];
    for (let r = 0; r < b1Runs; r++) rates.push(await once(temperature, topK, r));
    metrics[`generate_${label}_tok_s`] = summarize(rates, 'tok/s');
  }
  return {
    measure: 'generate',
    config: {
      batch: 1,
      promptTokens: T,
      newTokens: n,
      runs: b1Runs,
      threads: THREADS,
      tokenizer: m.tokenizer ? 'gpt2 (shared)' : 'stub',
    },
    metrics,
    loadedRssMiB: loaded,
    peakRssMiB: peakRssMiB(),
    notes: [
      'decode rate from the first onToken to the last (prefill excluded); sampling, stopping and text streaming included',
    ],
  };
}

/** The evaluation protocol's shape: many samples per prompt, short continuations, top-k sampling. */
async function measureEval(): Promise<MeasureResult> {
  const m = await loadLmsteer();
  const loaded = rssMiB();
  const tok = m.tokenizer ?? stubTokenizer(m.cfg.vocabSize);
  const { evalPrompts: P, evalSamples: N, evalNewTokens: L, evalTopK: K } = SETTINGS;
  const prompts = evalPrompts(m.tokenizer, P);
  const settings = { maxNewTokens: L, temperature: 1, topK: K, stopAtEos: false };
  await warmup(m.decoder, m.tokenizer, 1);
  const metrics: Record<string, Summary> = {};
  const promptLens: number[] = prompts.map((p) => (typeof p === 'string' ? tok.encode(p).length : p.ids.length));
  for (const maxBatch of [32, 25]) {
    const t0 = now();
    const res = await generate(
      m.decoder,
      tok,
      prompts.map((prompt) => ({ prompt, numSamples: N })),
      { ...settings, maxBatch },
    );
    const ms = now() - t0;
    const count = res.reduce((a, r) => a + r.samples.reduce((b, s) => b + s.tokenIds.length, 0), 0);
    metrics[`eval_maxBatch${maxBatch}_tok_s`] = single((count / ms) * 1000, 'tok/s');
  }
  const b1: number[] = [];
  for (const prompt of prompts) {
    const t0 = now();
    const res = await generate(m.decoder, tok, [{ prompt }], settings);
    b1.push((res[0].samples[0].tokenIds.length / (now() - t0)) * 1000);
  }
  metrics.batch1_tok_s = summarize(b1, 'tok/s');
  metrics.speedup = single(metrics.eval_maxBatch32_tok_s.median / metrics.batch1_tok_s.median, '×');
  return {
    measure: 'eval',
    config: { prompts: P, samplesPerPrompt: N, newTokens: L, topK: K, promptTokens: promptLens, threads: THREADS },
    metrics,
    loadedRssMiB: loaded,
    peakRssMiB: peakRssMiB(),
    notes: [
      'wall time of whole generate() calls (prefill, sampling and text included); batch1 = one sample of each prompt at a time; speedup uses maxBatch 32 (the default)',
    ],
  };
}

/** Hidden-state extraction as training does it: OrtDecoder.forward over a batch of texts. */
async function measureExtract(): Promise<MeasureResult> {
  const m = await loadLmsteer();
  const loaded = rssMiB();
  const { extractRows: B, extractTokens: T } = SETTINGS;
  const rows = Array.from({ length: B }, (_, i) => promptRow(m.tokenizer, T, i + 100));
  await m.decoder.forward(rows.slice(0, 2).map((r) => r.slice(0, 8)));
  const full: number[] = [];
  const bodyOnly: number[] = [];
  for (let r = 0; r < 2; r++) {
    let t = now();
    const out = await m.decoder.forward(rows);
    full.push(((B * T) / (now() - t)) * 1000);
    if (out.hidden.shape[2] !== m.cfg.hiddenSize) throw new Error('internal: hidden has the wrong width');
    // What training's extractor (src/train/extract.ts) runs: the head at one position per row only.
    t = now();
    await m.decoder.forward(rows, { hiddenOnly: true });
    bodyOnly.push(((B * T) / (now() - t)) * 1000);
  }
  return {
    measure: 'extract',
    config: { rows: B, tokensPerRow: T, threads: THREADS },
    metrics: {
      forward_tok_s: summarize(full, 'tok/s'),
      hidden_only_tok_s: summarize(bodyOnly, 'tok/s'),
    },
    loadedRssMiB: loaded,
    peakRssMiB: peakRssMiB(),
    notes: [
      'forward() with logits at all B·T positions ([32,48,50257] floats, 309 MB) vs forward(rows, { hiddenOnly: true }), the extraction training uses (logits at one position per row)',
    ],
  };
}

/** One training step on cached hidden states: loss graph (all chunks) + gradient mean + Adam. */
async function measureTrain(): Promise<MeasureResult> {
  const p = benchPaths();
  const cfg = parseDecoderConfig(readConfig(p), p.config);
  const weights = canonicalWeights(cfg, openSafetensorsModel(p.modelDir));
  const E = outputEmbeddings(cfg, weights);
  const [, d] = E.shape;
  const { trainTexts, trainMinTokens, trainMaxTokens, steerRank: r, steerSlots: S, trainSteps } = SETTINGS;
  const K = r * S;
  const t0 = now();
  const session = await LossSession.create(E, { intraOpNumThreads: THREADS });
  const createMs = now() - t0;
  const loaded = rssMiB();
  const rnd = fastNormals(5);
  // Texts of 40–60 tokens; each contributes (length − 1) next-token positions.
  const lengths = Array.from(
    { length: trainTexts },
    (_, i) => trainMinTokens + ((i * 7) % (trainMaxTokens - trainMinTokens + 1)),
  );
  const M = lengths.reduce((a, n) => a + n - 1, 0);
  const hidden = new Float32Array(M * d).map(() => rnd());
  const targets = new Int32Array(M).map((_, i) => (i * 7919) % cfg.vocabSize);
  const scale = new Float32Array(M * K);
  let row = 0;
  lengths.forEach((n, i) => {
    const label = i % 2 ? 1 : -1;
    for (let t = 0; t < n - 1; t++, row++) {
      for (let c = 0; c < r; c++) scale[row * K + c] = 1e-3 * label;
      for (let c = r; c < K; c++) scale[row * K + c] = 1e-3;
    }
  });
  const batch: LossBatch = {
    hidden: { dtype: 'float32', shape: [M, d], data: hidden },
    targets,
    weight: new Float32Array(M).fill(1),
    scale: { dtype: 'float32', shape: [M, K], data: scale },
  };
  const p1: Tensor = { dtype: 'float32', shape: [d, K], data: new Float32Array(d * K).map(() => 0.01 * rnd()) };
  const p2t: Tensor = { dtype: 'float32', shape: [K, d], data: new Float32Array(K * d).map(() => 0.01 * rnd()) };
  const adam = adamInit([d * K, K * d]);
  const step = async () => {
    const res = await session.run(batch, p1, p2t);
    const inv = 1 / res.count;
    for (let i = 0; i < res.gradP1.length; i++) res.gradP1[i] *= inv;
    for (let i = 0; i < res.gradP2t.length; i++) res.gradP2t[i] *= inv;
    adamStep({ lr: 1e-2, ...ADAM_DEFAULTS }, adam, [p1.data, p2t.data], [res.gradP1, res.gradP2t]);
  };
  await step();
  const rates: number[] = [];
  const stepMs: number[] = [];
  for (let s = 0; s < trainSteps; s++) {
    const t = now();
    await step();
    const ms = now() - t;
    stepMs.push(ms);
    rates.push((M / ms) * 1000);
  }
  await session.close();
  return {
    measure: 'train',
    config: {
      texts: trainTexts,
      tokensPerText: `${trainMinTokens}–${trainMaxTokens}`,
      positionsPerStep: M,
      rank: r,
      slots: S,
      K,
      V: cfg.vocabSize,
      d,
      chunkRows: session.chunkRows,
      threads: THREADS,
    },
    metrics: {
      session_create_ms: single(createMs, 'ms'),
      step_ms: summarize(stepMs, 'ms'),
      train_tok_s: summarize(rates, 'tok/s'),
    },
    loadedRssMiB: loaded,
    peakRssMiB: peakRssMiB(),
    notes: [
      'a step = LossSession.run over all chunks + mean + Adam (what trainLoop does per step, minus the cache read); goal ≥ 1000 tok/s',
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------
// ORT profile: which ops dominate prefill and decode

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

function aggregate(
  events: ProfileEvent[],
  runs: { ts: number; end: number }[],
): { op: string; ms: number; pct: number }[] {
  const by = new Map<string, number>();
  let total = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || !e.args?.op_name) continue;
    if (!runs.some((r) => e.ts >= r.ts && e.ts <= r.end)) continue;
    by.set(e.args.op_name, (by.get(e.args.op_name) ?? 0) + e.dur);
    total += e.dur;
  }
  return [...by.entries()]
    .map(([op, us]) => ({ op, ms: us / 1000 / runs.length, pct: (100 * us) / total }))
    .sort((a, b) => b.ms - a.ms);
}

async function measureProfile(): Promise<MeasureResult> {
  const p = benchPaths();
  const cfg = parseDecoderConfig(readConfig(p), p.config);
  const dir = join(p.root, 'profile');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tokDir = sharedTokenizerDir();
  const tok = tokDir ? HfTokenizer.fromDir(tokDir) : undefined;
  const { promptTokens: T, windowSteps: S, batchRows: B } = SETTINGS;
  const session = await ort.InferenceSession.create(cachedModelPath(), {
    ...sessionOptions(THREADS),
    enableProfiling: true,
    profileFilePrefix: join(dir, 'ort'),
  });
  const dec = new OrtDecoder(session, cfg);
  // Phases in order: warmup, b1 prefill+decode, b25 prefill+decode. Run times tell them apart below.
  await warmup(dec, tok, 1);
  await decodeRun(dec, [promptRow(tok, T, 0)], S, 1);
  await decodeRun(
    dec,
    Array.from({ length: B }, (_, i) => promptRow(tok, T, i)),
    8,
    1,
  );
  session.endProfiling();
  await session.release();
  const file = readdirSync(dir).find((f) => f.endsWith('.json'));
  if (!file) throw new Error(`ORT wrote no profile into ${dir}`);
  const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as ProfileEvent[];
  const runs = events
    .filter((e) => e.cat === 'Session' && e.name === 'model_run')
    .map((e) => ({ ts: e.ts, end: e.ts + e.dur }));
  // warmup: 1 prefill + 4 steps; b1: 1 prefill + S steps; b25: 1 prefill + 8 steps.
  const w = 5;
  const phases = {
    prefill_b1: runs.slice(w, w + 1),
    decode_b1: runs.slice(w + 1, w + 1 + S),
    prefill_b25: runs.slice(w + 1 + S, w + 2 + S),
    decode_b25: runs.slice(w + 2 + S, w + 2 + S + 8),
  };
  const metrics: Record<string, Summary> = {};
  const tables: Record<string, { op: string; ms: number; pct: number }[]> = {};
  for (const [name, rs] of Object.entries(phases)) {
    if (rs.length === 0) continue;
    const ops = aggregate(events, rs);
    tables[name] = ops.slice(0, 12);
    metrics[`${name}_run_ms`] = summarize(
      rs.map((r) => (r.end - r.ts) / 1000),
      'ms',
    );
    metrics[`${name}_kernel_ms`] = single(
      ops.reduce((a, o) => a + o.ms, 0),
      'ms',
    );
  }
  writeFileSync(join(dir, 'summary.json'), JSON.stringify(tables, null, 2));
  return {
    measure: 'profile',
    config: { profileFile: join(dir, file), runs: runs.length, threads: THREADS },
    metrics,
    peakRssMiB: peakRssMiB(),
    notes: Object.entries(tables).map(
      ([phase, ops]) => `${phase}: ${ops.map((o) => `${o.op} ${o.ms.toFixed(2)}ms (${o.pct.toFixed(0)}%)`).join(', ')}`,
    ),
  };
}

// ---------------------------------------------------------------------------------------------------------
// llama.cpp (node-llama-cpp) on the same weights

async function measureLlamaCpp(): Promise<MeasureResult> {
  const { llama, model, context, loadMs } = await openLlamaCpp(benchPaths().gguf, 1024);
  const loaded = rssMiB();
  const tokDir = sharedTokenizerDir();
  const tok = tokDir ? HfTokenizer.fromDir(tokDir) : undefined;
  const { promptTokens: T, windowSteps: S, b1Runs, b1Windows } = SETTINGS;
  const seq = context.getSequence();
  await llamaCppGreedy(seq, promptRow(tok, 16, 0), 4, 1);
  const prefill: number[] = [];
  const decode: number[] = [];
  for (let r = 0; r < b1Runs; r++) {
    const res = await llamaCppGreedy(seq, promptRow(tok, T, r), S, b1Windows);
    prefill.push((T / res.prefillMs) * 1000);
    for (const ms of res.windowMs) decode.push((S / ms) * 1000);
  }
  const info = {
    nodeLlamaCpp: peerVersion(),
    llamaCppRelease: llama.llamaCppRelease.release,
    buildType: llama.buildType,
    gpu: llama.gpu,
    cpuMathCores: llama.cpuMathCores,
  };
  await context.dispose();
  await model.dispose();
  return {
    measure: 'llamacpp',
    config: {
      batch: 1,
      promptTokens: T,
      decodeSteps: S * b1Windows,
      runs: b1Runs,
      sampling: 'greedy (temperature 0)',
      threads: THREADS,
      contextSize: 1024,
      batchSize: 512,
      ...info,
    },
    metrics: {
      load_ms: single(loadMs, 'ms'),
      prefill_tok_s: summarize(prefill, 'tok/s'),
      decode_tok_s: summarize(decode, 'tok/s'),
    },
    loadedRssMiB: loaded,
    peakRssMiB: peakRssMiB(),
    notes: ['node-llama-cpp prebuilt CPU binary, F32 GGUF written by bench/gguf.ts from the same weights'],
  };
}

/**
 * lmsteer and llama.cpp in one process, runs alternating (lmsteer, llama.cpp, lmsteer, …): on a shared
 * machine a neighbour's load hits both sides of each pair alike, so the per-pair ratio is the robust number.
 * (Peak RSS here is of both together; the decode and llamacpp measures give each alone.)
 */
async function measureVersus(): Promise<MeasureResult> {
  const m = await loadLmsteer();
  const { llama, model, context } = await openLlamaCpp(benchPaths().gguf, 1024);
  const seq = context.getSequence();
  const { promptTokens: T, windowSteps: S, b1Windows } = SETTINGS;
  const pairs = 4;
  await warmup(m.decoder, m.tokenizer, 1);
  await llamaCppGreedy(seq, promptRow(m.tokenizer, 16, 0), 4, 1);
  const ours = { prefill: [] as number[], decode: [] as number[] };
  const theirs = { prefill: [] as number[], decode: [] as number[] };
  const decodeRatio: number[] = [];
  const prefillRatio: number[] = [];
  const med = (xs: number[]) => summarize(xs, '').median;
  for (let r = 0; r < pairs; r++) {
    const prompt = promptRow(m.tokenizer, T, r);
    const a = await decodeRun(m.decoder, [prompt], S, b1Windows);
    const b = await llamaCppGreedy(seq, prompt, S, b1Windows);
    const ad = a.windowMs.map((ms) => (S / ms) * 1000);
    const bd = b.windowMs.map((ms) => (S / ms) * 1000);
    ours.prefill.push((T / a.prefillMs) * 1000);
    theirs.prefill.push((T / b.prefillMs) * 1000);
    ours.decode.push(...ad);
    theirs.decode.push(...bd);
    decodeRatio.push(med(ad) / med(bd));
    prefillRatio.push(b.prefillMs / a.prefillMs);
  }
  const release = llama.llamaCppRelease.release;
  await context.dispose();
  await model.dispose();
  return {
    measure: 'versus',
    config: {
      batch: 1,
      promptTokens: T,
      decodeSteps: S * b1Windows,
      pairs,
      threads: THREADS,
      llamaCppRelease: release,
      nodeLlamaCpp: peerVersion(),
    },
    metrics: {
      lmsteer_decode_tok_s: summarize(ours.decode, 'tok/s'),
      llamacpp_decode_tok_s: summarize(theirs.decode, 'tok/s'),
      decode_ratio: summarize(decodeRatio, 'lmsteer/llama.cpp'),
      lmsteer_prefill_tok_s: summarize(ours.prefill, 'tok/s'),
      llamacpp_prefill_tok_s: summarize(theirs.prefill, 'tok/s'),
      prefill_ratio: summarize(prefillRatio, 'lmsteer/llama.cpp'),
    },
    peakRssMiB: peakRssMiB(),
    notes: ['ratios per alternating pair (tok/s of lmsteer ÷ tok/s of llama.cpp), > 1 means lmsteer is faster'],
  };
}

/** Same weights, same answers? lmsteer and llama.cpp on one short prompt: next-token distribution + greedy run. */
async function measureParity(): Promise<MeasureResult> {
  const m = await loadLmsteer();
  const { model, context } = await openLlamaCpp(benchPaths().gguf, 256);
  const notes: string[] = [];
  const prompt = m.tokenizer
    ? m.tokenizer.encode('The quick brown fox jumps over the lazy dog because', { addSpecialTokens: false })
    : promptRow(undefined, 12, 0);
  if (m.tokenizer) {
    const text = 'Hello world! LM-Steer steers models: naïve café, 2024.';
    const a = m.tokenizer.encode(text, { addSpecialTokens: false });
    const b = model.tokenize(text) as number[];
    notes.push(
      `tokenizer: GGUF vocab ${JSON.stringify(a) === JSON.stringify(b) ? 'tokenizes the test sentence exactly as tokenizer.json' : `DIFFERS: lmsteer ${JSON.stringify(a)} vs llama.cpp ${JSON.stringify(b)}`}`,
    );
  }
  const N = 16;
  // lmsteer: next-token probabilities after the prompt, and N greedy tokens.
  const run = await decodeRun(m.decoder, [prompt], N - 1, 1);
  const ours = run.tokens[0];
  const logits = (await m.decoder.forward([prompt], { hiddenOnly: true })).logits.data;
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let z = 0;
  for (const v of logits) z += Math.exp(v - max);
  const pOurs = (id: number) => Math.exp(logits[id] - max) / z;
  // llama.cpp: the same, through its sampler's probability list.
  const seq = context.getSequence();
  const it = seq.evaluateWithMetadata(
    prompt as never[],
    { probabilities: true },
    { temperature: 0, yieldEogToken: true },
  );
  const theirs: number[] = [];
  let probs: Map<number, number> | undefined;
  for (let i = 0; i < N; i++) {
    const r = await it.next();
    if (r.done) break;
    theirs.push(r.value.token as number);
    if (i === 0) probs = r.value.probabilities as Map<number, number>;
  }
  await it.return();
  let maxDiff = 0;
  const top = [...(probs?.entries() ?? [])].slice(0, 20);
  for (const [id, p] of top) maxDiff = Math.max(maxDiff, Math.abs(p - pOurs(id)));
  const same = ours.filter((t, i) => t === theirs[i]).length;
  let firstDiff = ours.findIndex((t, i) => t !== theirs[i]);
  if (firstDiff < 0) firstDiff = N;
  notes.push(`greedy tokens lmsteer:    ${JSON.stringify(ours)}`, `greedy tokens llama.cpp: ${JSON.stringify(theirs)}`);
  notes.push(
    `top-5 llama.cpp p: ${top
      .slice(0, 5)
      .map(([id, p]) => `${id}:${p.toFixed(4)}/${pOurs(id).toFixed(4)}`)
      .join(' ')} (llama.cpp/lmsteer)`,
  );
  await context.dispose();
  await model.dispose();
  return {
    measure: 'parity',
    config: { promptTokens: prompt.length, greedyTokens: N },
    metrics: {
      greedy_tokens_equal: single(same, `of ${N}`),
      first_divergence: single(firstDiff, 'index'),
      top20_prob_max_abs_diff: single(maxDiff, 'prob'),
    },
    peakRssMiB: peakRssMiB(),
    notes,
  };
}

/**
 * The ceiling of batched decode on this machine: only the weight MatMuls of one decode step (12 × QKV, attention
 * out, MLP up, MLP down, and the LM head; the bench model's real weights), as one ORT graph, at 1 row and at
 * 25. A real 25-row step adds attention over the KV cache, norms and the runtime's work to these products,
 * so their 25-row vs 1-row token rate (run.ts's derived ratio) bounds what batch 25 can reach over batch 1.
 */
async function measureGemm(): Promise<MeasureResult> {
  const p = benchPaths();
  const cfg = parseDecoderConfig(readConfig(p), p.config);
  const weights = openSafetensorsModel(p.modelDir);
  const g = new GraphBuilder('gemm-ceiling');
  const d = cfg.hiddenSize;
  const x = g.input('x', 'float32', ['rows', d]);
  const xi = g.input('xi', 'float32', ['rows', cfg.intermediateSize]); // the MLP's inner activations
  const outs: string[] = [];
  let flops = 0;
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const [name, input] of [
      ['attn.c_attn', x],
      ['attn.c_proj', x],
      ['mlp.c_fc', x],
    ] as const) {
      const w = weights.get(`h.${i}.${name}.weight`);
      outs.push(g.op('ReduceSum', [g.op('MatMul', [input, g.weight(`${i}.${name}`, w)])], { keepdims: 0 }));
      flops += 2 * w.data.length;
    }
    const down = weights.get(`h.${i}.mlp.c_proj.weight`);
    outs.push(g.op('ReduceSum', [g.op('MatMul', [xi, g.weight(`${i}.mlp.c_proj`, down)])], { keepdims: 0 }));
    flops += 2 * down.data.length;
  }
  const headT = transpose2d(weights.get('wte.weight'));
  outs.push(g.op('ReduceSum', [g.op('MatMul', [x, g.weight('head', headT)])], { keepdims: 0 }));
  flops += 2 * headT.data.length;
  g.output(g.op('Sum', outs), 'y', 'float32', []);
  const session = await ort.InferenceSession.create(g.serialize(), sessionOptions(THREADS));
  const timeRows = async (rows: number): Promise<number[]> => {
    const feeds = {
      x: new ort.Tensor('float32', fastNormalArray(rows * d), [rows, d]),
      xi: new ort.Tensor('float32', fastNormalArray(rows * cfg.intermediateSize), [rows, cfg.intermediateSize]),
    };
    for (let i = 0; i < 3; i++) await session.run(feeds);
    const ts: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t = now();
      await session.run(feeds);
      ts.push(now() - t);
    }
    return ts;
  };
  const one = await timeRows(1);
  const rows = SETTINGS.batchRows;
  const many = await timeRows(rows);
  const gflops = (r: number, ms: number[]) => ms.map((t) => (r * flops) / t / 1e6);
  return {
    measure: 'gemm',
    config: { rows: [1, rows], gflopPerRow: flops / 1e9, threads: THREADS },
    metrics: {
      gemm_step_b1_ms: summarize(one, 'ms'),
      gemm_step_b25_ms: summarize(many, 'ms'),
      gemm_b25_gflop_s: summarize(gflops(rows, many), 'GFLOP/s'),
      gemm_only_b25_tok_s: summarize(
        many.map((ms) => (rows * 1000) / ms),
        'tok/s',
      ),
    },
    peakRssMiB: peakRssMiB(),
    notes: [
      `weight MatMuls of one decode step only (${(flops / 1e9).toFixed(3)} GFLOP a row): the bound on batched decode`,
    ],
  };
}

function fastNormalArray(n: number): Float32Array {
  const randn = fastNormals(7);
  return Float32Array.from({ length: n }, randn);
}

const MEASURES: Record<string, () => Promise<MeasureResult>> = {
  decode: measureDecode,
  generate: measureGenerate,
  batch25: measureBatch,
  steer: measureSteer,
  llamacpp: measureLlamaCpp,
  versus: measureVersus,
  parity: measureParity,
  train: measureTrain,
  extract: measureExtract,
  eval: measureEval,
  profile: measureProfile,
  gemm: measureGemm,
};

async function main(): Promise<void> {
  const [name, out] = process.argv.slice(2);
  const fn = MEASURES[name];
  if (!fn || !out) {
    process.stderr.write(`usage: node --import tsx bench/worker.ts <${Object.keys(MEASURES).join('|')}> RESULT.json\n`);
    process.exit(2);
  }
  const res = await fn();
  writeFileSync(out, JSON.stringify(res, null, 2));
}

await main();
