/**
 * Training one steer: the reference's loop (Glaciohound/LM-Steer experiments/training/train.py) on cached
 * hidden states. Each step takes a batch of examples, sets the trained slot to each example's label and the
 * dummy slot to 1, and takes one Adam step on  mean CE(steered logits) + reg·(‖P1‖² + ‖P2‖²).
 *
 * Reference defaults (lm_steer/arguments.py and the README's training commands): 2 slots (`--num_steers 2
 * --dummy_steer 1 --training_steer 0`), rank 1000 (capped at d here), eps 1e-3, init N(0, 1e-2²)
 * (`randn * init_var`), Adam lr 1e-2, batch 32, max length 256, 1000 steps, regularization 0, seed 0.
 * Batches: like its `DataLoader(shuffle=True)`, every epoch is a fresh permutation and the last batch of an
 * epoch may be short; here the permutation of epoch e is drawn from (seed, e), so the batch of any step is a
 * pure function of the step and a resumed run sees exactly the batches an uninterrupted one would.
 *
 * Padding: the reference pads each batch to its longest text with pad = eos, passes the attention mask and
 * `labels=input_ids`, so all B·(T−1) shifted positions are in its loss and its mean, pad targets included.
 * The default here keeps only real next tokens. `includePadding` reproduces the reference's loss exactly:
 * every row padded to the batch's longest, pad targets = padId, and the hidden state at a pad position is
 * the pad token's own state at that position attending to the text's real tokens (transformers' attention
 * mask; src/train/maskedForward.ts). That state depends only on the text and the position, so the cache
 * keeps it per text (HiddenCache pad rows), extracted up to the longest batch the text is part of.
 */
import { existsSync } from 'node:fs';
import { makeDir } from '../formats/outDir.js';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { writeFileAtomic } from '../formats/atomicWrite.js';
import {
  BASE_SLOT,
  DEFAULT_EPS,
  embeddingFingerprint,
  STEER_LIMITS,
  type Steer,
  type SteerConfig,
} from '../steer/steer.js';
import { packScale, packSteers, unpackSteer, type PackedSteers } from '../steer/pack.js';
import { saveSteer, STEER_JSON } from '../steer/steerFile.js';
import { linePlotSvg } from '../util/svgPlot.js';
import { LmSteerError } from '../util/errors.js';
import { expectShape, tensor, type Tensor } from '../util/tensor.js';
import { ADAM_DEFAULTS, adamInit, adamStep, type AdamConfig } from './adam.js';
import { hashExamples } from './data.js';
import { loadCheckpoint, saveCheckpoint, type Checkpoint, type LossPoint, type SamplerState } from './checkpoint.js';
import { HiddenCache, type ExtractFn, type HiddenEntry } from './hiddenCache.js';
import { LossSession, type LossBatch } from './lossGraph.js';

export interface TrainExample {
  text: string;
  /** Steer value of the trained slot for this text (toxic −1 / clean +1, SST-5 class/2 − 1, …). */
  label: number;
}

export interface TrainOptions {
  /** The steer folder: steer.json, steer.safetensors, loss.svg and checkpoint/ are written here. */
  outDir: string;
  examples: readonly TrainExample[];
  /** Name of the trained slot (`--value NAME=…` at inference); default `value`. */
  slotName?: string;
  /** Add the reference's dummy slot, held at 1 in training and inference; default true. */
  dummySlot?: boolean;
  /** Default min(1000, d). */
  rank?: number;
  eps?: number;
  initStd?: number;
  lr?: number;
  regularization?: number;
  batchSize?: number;
  maxLength?: number;
  steps?: number;
  seed?: number;
  /** Count pad positions in the loss as the reference does (see the file comment); needs padId, and
   * `deps.tokenCount` and an extractor that gives pad rows. */
  includePadding?: boolean;
  padId?: number;
  /** Write a checkpoint every this many steps; default 50. */
  checkpointEvery?: number;
  /** Hidden-state cache folder (reused across runs); none: memory only. */
  cacheDir?: string;
  fp16Cache?: boolean;
  /** Texts per extract call; default 8. */
  extractBatchSize?: number;
  /** Progress bar on stderr; default: when stderr is a terminal. */
  progress?: boolean;
  /** Replace a steer in outDir that this training did not make. */
  overwrite?: boolean;
  /** Recorded in steer.json (e.g. the dataset files). */
  datasetName?: string;
  /** Loss-graph tuning. */
  chunkRows?: number;
  intraOpNumThreads?: number;
}

export interface TrainDeps {
  extract: ExtractFn;
  /** Output embeddings E [V, d] of the model (the LM head). */
  embeddings: Tensor;
  /** The LM head's bias [V], where the model has one (GPT-J): logits = h'·Eᵀ + b. */
  headBias?: Tensor;
  /** The model's final logit soft-capping (DecoderConfig.finalLogitSoftcap, Gemma 2): the loss caps its logits. */
  logitSoftcap?: number;
  /** Identifies the model the hidden states come from (cache key, resume check); default: E's fingerprint. */
  modelFingerprint?: string;
  modelId?: string;
  /** Saves the final steer; default saveSteer(outDir, steer). */
  save?: (steer: Steer, outDir: string) => void | Promise<void>;
  /** Aborting stops training like SIGINT: a checkpoint is written, then CANCELLED is thrown. */
  signal?: AbortSignal;
  /** Called after every step. */
  onStep?: (p: LossPoint) => void;
  /** Status lines (resume notices); default: stderr. */
  log?: (line: string) => void;
  /** Tokens `extract` gives a text (includePadding: a batch's padded length is known before extraction). */
  tokenCount?: (text: string) => number;
}

export interface TrainResult {
  /** [S, d, r], slot order as in steer.config.slots. */
  p1: Tensor;
  p2: Tensor;
  history: LossPoint[];
  steer: Steer;
  /** The step a checkpoint resumed from (0 for a fresh run). */
  resumedFrom: number;
}

interface Resolved {
  slotName: string;
  dummySlot: boolean;
  rank: number;
  eps: number;
  initStd: number;
  lr: number;
  regularization: number;
  batchSize: number;
  maxLength: number;
  steps: number;
  seed: number;
  includePadding: boolean;
  padId: number | null;
  checkpointEvery: number;
}

export function resolveOptions(opts: TrainOptions, d: number): Resolved {
  const r: Resolved = {
    slotName: opts.slotName ?? 'value',
    dummySlot: opts.dummySlot ?? true,
    rank: opts.rank ?? Math.min(1000, d),
    eps: opts.eps ?? DEFAULT_EPS,
    initStd: opts.initStd ?? 1e-2,
    lr: opts.lr ?? 1e-2,
    regularization: opts.regularization ?? 0,
    batchSize: opts.batchSize ?? 32,
    maxLength: opts.maxLength ?? 256,
    steps: opts.steps ?? 1000,
    seed: opts.seed ?? 0,
    includePadding: opts.includePadding ?? false,
    padId: opts.padId ?? null,
    checkpointEvery: opts.checkpointEvery ?? 50,
  };
  const posInt = (name: string, v: number) => {
    if (!(Number.isInteger(v) && v > 0))
      throw new LmSteerError('BAD_ARGUMENT', `${name} is ${v}, expected a positive integer`);
  };
  const finite = (name: string, v: number, min = -Infinity) => {
    if (!(Number.isFinite(v) && v >= min))
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `${name} is ${v}, expected a finite number${min > -Infinity ? ` ≥ ${min}` : ''}`,
      );
  };
  posInt('rank', r.rank);
  if (r.rank > d)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `rank ${r.rank} is above the hidden size ${d}`,
      `a steer's rank is at most the hidden size; use --rank ${Math.min(1000, d)} or less`,
    );
  posInt('batch size', r.batchSize);
  posInt('max length', r.maxLength);
  posInt('steps', r.steps);
  posInt('checkpoint interval', r.checkpointEvery);
  finite('eps', r.eps);
  if (Math.abs(r.eps) > STEER_LIMITS.eps)
    throw new LmSteerError('BAD_ARGUMENT', `eps ${r.eps} is beyond ±${STEER_LIMITS.eps}`, 'the reference uses 1e-3');
  finite('init std', r.initStd, 0);
  finite('learning rate', r.lr, 0);
  finite('regularization', r.regularization, 0);
  if (!Number.isInteger(r.seed)) throw new LmSteerError('BAD_ARGUMENT', `seed is ${r.seed}, expected an integer`);
  if (r.slotName === '' || r.slotName === BASE_SLOT)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `slot name "${r.slotName}" is not allowed`,
      'name the slot after the attribute, e.g. toxicity',
    );
  if (r.includePadding && r.padId === null) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'including pad positions in the loss needs the pad token id',
      'pass padId (the reference pads with the eos token)',
    );
  }
  return r;
}

/** The options a resumed run must share with the checkpoint: everything that changes what is learned. */
function resumeKey(
  r: Resolved,
  datasetHash: string,
  modelFingerprint: string,
  E: Tensor,
  fp16Cache: boolean,
): Record<string, unknown> {
  const { checkpointEvery: _c, steps: _s, ...rest } = r;
  return {
    ...rest,
    // Pad states under the attention mask (before: the last real state), so an old checkpoint does not resume.
    ...(r.includePadding ? { padStates: 'attention-mask' } : {}),
    dataset: datasetHash,
    model: modelFingerprint,
    vocabSize: E.shape[0],
    hiddenSize: E.shape[1],
    fp16Cache,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Batches

/** Example indices of the batch at `step` (0-based): epoch-wise seeded permutations, last batch short. */
export function batchAt(
  n: number,
  batchSize: number,
  seed: number,
  step: number,
): { indices: number[]; sampler: SamplerState } {
  const perEpoch = Math.ceil(n / batchSize);
  const epoch = Math.floor(step / perEpoch);
  const b = step % perEpoch;
  const perm = epochPermutation(n, seed, epoch);
  return {
    indices: perm.slice(b * batchSize, Math.min(n, (b + 1) * batchSize)),
    sampler: { seed, epoch, batchInEpoch: b },
  };
}

const permCache = new Map<string, number[]>();

function epochPermutation(n: number, seed: number, epoch: number): number[] {
  const key = `${n}:${seed}:${epoch}`;
  const hit = permCache.get(key);
  if (hit) return hit;
  const rng = xoroshiro128plus((seed ^ Math.imul(epoch + 1, 0x9e3779b1)) | 0);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = uniformInt(rng, 0, i);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  permCache.clear(); // one epoch at a time is all a run needs
  permCache.set(key, p);
  return p;
}

/**
 * Token positions of a batch for the loss graph. Row i's positions t predict token t+1 with hidden[t], scaled
 * by `scale` row i (packScale of its steer values). Without includePadding: t < n_i − 1 (real targets only).
 * With it: t < T − 1 for the batch's longest T, as the reference's mean over B·(T−1); a target past the text
 * is padId, and hidden[t] for t ≥ n_i is the entry's pad row t (HiddenCache, pad rows).
 */
export function buildLossBatch(
  entries: readonly HiddenEntry[],
  scale: Tensor,
  cfg: { includePadding: boolean; padId: number | null },
): LossBatch {
  const d = entries.find((e) => e.hidden.shape[1] !== undefined)?.hidden.shape[1] ?? 0;
  const K = scale.shape[1]!;
  expectShape('scale rows', scale, [entries.length, -1]);
  const longest = Math.max(0, ...entries.map((e) => e.ids.length));
  const rowsOf = (e: HiddenEntry) => (cfg.includePadding ? Math.max(0, longest - 1) : Math.max(0, e.ids.length - 1));
  const M = entries.reduce((acc, e) => acc + rowsOf(e), 0);
  const hidden = new Float32Array(M * d);
  const targets = new Int32Array(M);
  const weight = new Float32Array(M).fill(1);
  const out = new Float32Array(M * K);
  let m = 0;
  entries.forEach((e, i) => {
    const n = e.ids.length;
    const rows = rowsOf(e);
    if (rows > 0 && n === 0)
      throw new LmSteerError(
        'BAD_DATA',
        'a text has no tokens, but pad positions need a real token to attend to',
        'drop empty texts from the dataset',
      );
    if (e.hidden.shape[0]! < rows)
      throw new Error(`internal: an entry has ${e.hidden.shape[0]} hidden rows, the batch needs ${rows}`);
    const scaleRow = scale.data.subarray(i * K, (i + 1) * K);
    for (let t = 0; t < rows; t++, m++) {
      hidden.set(e.hidden.data.subarray(t * d, (t + 1) * d), m * d);
      targets[m] = t + 1 < n ? e.ids[t + 1]! : cfg.padId!;
      out.set(scaleRow, m * K);
    }
  });
  return { hidden: tensor([M, d], hidden), targets, weight, scale: tensor([M, K], out) };
}

/** The steer values of training: the label on the trained slot, 1 on the dummy slot (reference: dummy_steer). */
export function trainingValues(label: number, dummySlot: boolean): number[][] {
  return [dummySlot ? [label, 1] : [label]];
}

// ---------------------------------------------------------------------------------------------------------
// Training keeps P1/P2 in the graph's packed layout p1 [d,K], p2t [K,d] (column c = s·r + j,
// docs/ARCHITECTURE.md; packed by src/steer/pack.ts) and unpacks to [S,d,r] only to save.

/** P1, P2 [S,d,r] with N(0, std²) entries, seeded (Box–Muller over xoroshiro128+), P1 drawn first. */
export function initProjectors(S: number, d: number, r: number, std: number, seed: number): { p1: Tensor; p2: Tensor } {
  const rng = xoroshiro128plus(seed);
  rng.jump(); // a stream apart from anything else seeded with the same number
  const draw = (n: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const u1 = 1 - uniformFloat64(rng); // (0, 1]: log is finite
      const u2 = uniformFloat64(rng);
      const rad = Math.sqrt(-2 * Math.log(u1));
      out[i] = std * rad * Math.cos(2 * Math.PI * u2);
      if (i + 1 < n) out[i + 1] = std * rad * Math.sin(2 * Math.PI * u2);
    }
    return out;
  };
  return { p1: tensor([S, d, r], draw(S * d * r)), p2: tensor([S, d, r], draw(S * d * r)) };
}

// ---------------------------------------------------------------------------------------------------------
// The loop

export async function trainSteer(opts: TrainOptions, deps: TrainDeps): Promise<TrainResult> {
  const E = deps.embeddings;
  expectShape('output embeddings', E, [-1, -1]);
  const [V, d] = E.shape as [number, number];
  const r = resolveOptions(opts, d);
  if (opts.examples.length === 0)
    throw new LmSteerError('BAD_DATA', 'the training set is empty', 'check the dataset files');
  const bad = opts.examples.findIndex((e) => !Number.isFinite(e.label));
  if (bad >= 0)
    throw new LmSteerError(
      'BAD_DATA',
      `example ${bad} has label ${opts.examples[bad]!.label}`,
      'labels must be finite numbers',
    );
  const log = deps.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const embFp = embeddingFingerprint(E);
  const modelFp = deps.modelFingerprint ?? embFp;
  const S = r.dummySlot ? 2 : 1;
  const K = S * r.rank;
  const key = resumeKey(r, hashExamples(opts.examples), modelFp, E, opts.fp16Cache ?? false);

  const config: SteerConfig = {
    formatVersion: 1,
    baseModel: { id: deps.modelId ?? 'unknown', embeddingFingerprint: embFp, vocabSize: V, hiddenSize: d },
    eps: r.eps,
    rank: r.rank,
    slots: [{ name: r.slotName, defaultValue: 0 }, ...(r.dummySlot ? [{ name: BASE_SLOT, defaultValue: 1 }] : [])],
    training: {
      dataset: opts.datasetName,
      examples: opts.examples.length,
      steps: r.steps,
      lr: r.lr,
      batchSize: r.batchSize,
      regularization: r.regularization,
      seed: r.seed,
      maxLength: r.maxLength,
      initStd: r.initStd,
      includePadding: r.includePadding,
    },
    source: { kind: 'trained' },
  };

  makeDir(opts.outDir);
  let ck = loadCheckpoint(opts.outDir);
  if (!ck && existsSync(join(opts.outDir, STEER_JSON)) && !opts.overwrite) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${opts.outDir} already holds a steer (steer.json) and no training checkpoint`,
      'choose another output folder, or allow overwriting it',
    );
  }
  if (ck) {
    const changed = Object.keys({ ...key, ...ck.options }).filter(
      (k) => JSON.stringify(key[k]) !== JSON.stringify(ck!.options[k]),
    );
    if (changed.length > 0) {
      const what = changed.map((k) => `${k}: ${short(ck!.options[k])} → ${short(key[k])}`).join('; ');
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `the checkpoint in ${opts.outDir} was made with other options (${what})`,
        'rerun with the same options to resume, or use another output folder (or delete its checkpoint/) to start over',
      );
    }
    if (ck.step > r.steps) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `the checkpoint in ${opts.outDir} is already at step ${ck.step}, past the ${r.steps} steps asked for`,
        `ask for at least ${ck.step} steps, or use another output folder`,
      );
    }
    log(
      ck.step === r.steps
        ? `training already complete (${ck.step} steps); re-saving the steer`
        : `resuming from the checkpoint at step ${ck.step} of ${r.steps}`,
    );
  } else {
    const packed = packSteers([{ config, ...initProjectors(S, d, r.rank, r.initStd, r.seed) }]);
    ck = {
      step: 0,
      p1: packed.p1,
      p2t: packed.p2t,
      adam: adamInit([d * K, K * d]),
      history: [],
      sampler: { seed: r.seed, epoch: 0, batchInEpoch: 0 },
      options: key,
    };
  }
  expectShape('checkpoint p1', ck.p1, [d, K]);
  const resumedFrom = ck.step;
  const state: Checkpoint = ck;
  const adamCfg: AdamConfig = { lr: r.lr, ...ADAM_DEFAULTS };

  if (state.step < r.steps) {
    if (r.includePadding && !deps.tokenCount)
      throw new Error('internal: includePadding needs deps.tokenCount (the padded length of a batch)');
    const cache = HiddenCache.open({
      dir: opts.cacheDir,
      modelFingerprint: modelFp,
      maxLength: r.maxLength,
      fp16: opts.fp16Cache,
      extractBatchSize: opts.extractBatchSize,
      padId: r.includePadding ? r.padId! : undefined,
    });
    const session = await LossSession.create(E, {
      headBias: deps.headBias,
      chunkRows: opts.chunkRows,
      intraOpNumThreads: opts.intraOpNumThreads,
      softcap: deps.logitSoftcap,
    });
    // Only the column layout and eps matter to packScale (the scale rows of a batch).
    const layout = packSteers([{ config, p1: tensor([S, d, r.rank]), p2: tensor([S, d, r.rank]) }]);
    try {
      await runSteps(opts, deps, r, state, adamCfg, cache, session, layout);
    } finally {
      cache.close();
      await session.close();
    }
  }

  const { p1, p2 } = unpackSteer(state.p1, state.p2t, S);
  config.training!.finalLoss = state.history.at(-1)?.loss;
  const steer: Steer = { config, p1, p2 };
  await writeLossPlot(opts.outDir, state.history);
  if (deps.save) await deps.save(steer, opts.outDir);
  else saveSteer(opts.outDir, steer);
  return { p1, p2, history: state.history, steer, resumedFrom };
}

async function runSteps(
  opts: TrainOptions,
  deps: TrainDeps,
  r: Resolved,
  state: Checkpoint,
  adamCfg: AdamConfig,
  cache: HiddenCache,
  session: LossSession,
  layout: PackedSteers,
): Promise<void> {
  const examples = opts.examples;
  const texts = examples.map((e) => e.text);
  let stopReason: string | undefined;
  const onSigint = () => {
    if (stopReason) {
      // A second Ctrl-C: the user does not want to wait for the step to finish.
      process.off('SIGINT', onSigint);
      process.kill(process.pid, 'SIGINT');
      return;
    }
    stopReason = 'interrupted (SIGINT)';
  };
  const onAbort = () => {
    stopReason ??= 'stopped';
  };
  process.on('SIGINT', onSigint);
  deps.signal?.addEventListener('abort', onAbort);
  if (deps.signal?.aborted) onAbort();

  const showBar = opts.progress ?? Boolean(process.stderr.isTTY);
  const bar = showBar
    ? new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: 'train [{bar}] {value}/{total} steps | loss {loss} | ETA {eta_formatted}',
          etaBuffer: 20,
          hideCursor: true,
          // Asked for explicitly on a non-terminal (a log file): print a line every few seconds instead.
          noTTYOutput: opts.progress === true && !process.stderr.isTTY,
          notTTYSchedule: 5000,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  // The reference shows a running mean of the loss (RunningMean(gamma_mean = 0.99), lm_steer/utils.py).
  let ema = 0;
  let emaWeight = 0;
  bar?.start(r.steps, state.step, { loss: '—' });
  const checkpoint = () => saveCheckpoint(opts.outDir, state);
  try {
    while (state.step < r.steps) {
      if (stopReason) {
        checkpoint();
        throw new LmSteerError(
          'CANCELLED',
          `training ${stopReason} at step ${state.step} of ${r.steps}; checkpoint saved in ${opts.outDir}`,
          'run the same command again to resume',
        );
      }
      const { indices, sampler } = batchAt(examples.length, r.batchSize, r.seed, state.step);
      const batchTexts = indices.map((i) => texts[i]!);
      // includePadding: every text of the batch needs hidden rows up to the batch's longest.
      const longest = r.includePadding ? Math.max(...batchTexts.map((t) => deps.tokenCount!(t))) : 0;
      const entries = await cache.get(
        batchTexts,
        deps.extract,
        r.includePadding ? batchTexts.map(() => longest) : undefined,
      );
      const scale = packScale(
        layout,
        indices.map((i) => trainingValues(examples[i]!.label, r.dummySlot)),
      );
      const batch = buildLossBatch(entries, scale, r);
      const res = await session.run(batch, state.p1, state.p2t);
      // Mean over the batch's token positions (as the HF loss), plus the regularizer's gradient 2·reg·P.
      const inv = res.count > 0 ? 1 / res.count : 0;
      const g1 = res.gradP1;
      const g2 = res.gradP2t;
      const reg2 = 2 * r.regularization;
      for (let i = 0; i < g1.length; i++) g1[i] = g1[i]! * inv + reg2 * state.p1.data[i]!;
      for (let i = 0; i < g2.length; i++) g2[i] = g2[i]! * inv + reg2 * state.p2t.data[i]!;
      adamStep(adamCfg, state.adam, [state.p1.data, state.p2t.data], [g1, g2]);
      state.step += 1;
      state.sampler = sampler;
      const point: LossPoint = {
        step: state.step,
        loss: res.count > 0 ? res.lossSum / res.count : NaN,
        tokens: res.count,
      };
      state.history.push(point);
      if (Number.isFinite(point.loss)) {
        ema = 0.99 * ema + 0.01 * point.loss;
        emaWeight = 0.99 * emaWeight + 0.01;
      }
      bar?.update(state.step, { loss: emaWeight > 0 ? (ema / emaWeight).toFixed(4) : '—' });
      deps.onStep?.(point);
      if (state.step % r.checkpointEvery === 0 || state.step === r.steps) {
        checkpoint();
        await writeLossPlot(opts.outDir, state.history);
      }
    }
  } finally {
    bar?.stop();
    process.off('SIGINT', onSigint);
    deps.signal?.removeEventListener('abort', onAbort);
  }
}

async function writeLossPlot(outDir: string, history: readonly LossPoint[]): Promise<void> {
  const pts = history.filter((p) => Number.isFinite(p.loss)).map((p) => [p.step, p.loss] as [number, number]);
  if (pts.length === 0) return;
  // Smoothed like the reference's running mean, so the trend is visible through batch noise.
  let ema = 0;
  let w = 0;
  const smooth = pts.map(([x, y]) => {
    ema = 0.98 * ema + 0.02 * y;
    w = 0.98 * w + 0.02;
    return [x, ema / w] as [number, number];
  });
  const svg = await linePlotSvg({
    title: 'LM-Steer training loss',
    xLabel: 'step',
    yLabel: 'cross-entropy (nats/token)',
    series: [
      { name: 'batch loss', points: pts },
      { name: 'running mean', points: smooth },
    ],
  });
  writeFileAtomic(join(outDir, 'loss.svg'), svg);
}

function short(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? 'unset' : s.length > 20 ? `${s.slice(0, 12)}…` : s;
}
