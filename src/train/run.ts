/**
 * `lmsteer train` end to end: dataset files → examples, model spec → loaded model, hidden states extracted
 * once into the on-disk cache (longest-first batches of similar length), then trainSteer on the cached states,
 * the held-out diagnostic (steerLoss.ts) on a dev set, and the steer folder written with where it came from
 * (model, data files, options, final loss, held-out losses).
 *
 * --include-padding: the reference pads with EOS (its `tokenizer.pad_token = eos_token`), so the pad id is
 * EOS whatever the tokenizer calls its pad token. Each text is extracted with pad rows up to the longest
 * batch it is part of in the run's plan (batchAt over every step; the plan is known up front), not up to
 * --max-length: SST-2 texts are ~20 tokens and a batch's longest ~60, so padding every text to 256 would cost
 * 4× the extraction and cache for rows no batch uses. A longer plan later (more steps) extends the entries.
 */
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { lockOutDir } from '../formats/outDir.js';
import { loadModel, type LoadedModel, type LoadModelOptions } from '../runtime/loadModel.js';
import { defaultCacheDir } from '../runtime/session.js';
import type { Steer } from '../steer/steer.js';
import { saveSteer, STEER_JSON, STEER_TENSORS } from '../steer/steerFile.js';
import { LmSteerError } from '../util/errors.js';
import { CHECKPOINT_DIR, loadCheckpoint } from './checkpoint.js';
import { describeDataset, hashExamples, loadDataset, type Dataset, type Example } from './data.js';
import { encodeForTraining, extractionFingerprint, makeExtractor } from './extract.js';
import { HiddenCache } from './hiddenCache.js';
import type { LossPoint } from './checkpoint.js';
import { MaskedForward } from './maskedForward.js';
import { describeSteerLoss, domainWarning, heldOutLoss, type SteerLossResult } from './steerLoss.js';
import { batchAt, resolveOptions, trainSteer, type TrainOptions, type TrainResult } from './trainLoop.js';

/** Texts per extraction chunk while filling the cache (the extractor batches them by length within). */
const PREFILL_CHUNK = 256;

export interface TrainRunOptions {
  /** Model spec as loadModel takes it (folder, .bin, hub id). */
  model: string;
  /** Dataset files, each `path` or `path:label`. */
  data: string[];
  outDir: string;
  textField?: string;
  labelField?: string;
  /** `binary` (default), `sst5`, `identity`, or `a=1,b=-1`. */
  labelMap?: string;
  /** Downsample every steer value to the rarest one's count. */
  balance?: boolean;
  /** Keep a seeded random subset of this many examples (after balancing), for quick runs. */
  limit?: number;
  /** Held-out files (read like `data`) for the loss diagnostic at the end. */
  dev?: string[];
  /** Hold out this many examples of the training data (seeded) for the diagnostic, when no `dev` is given. */
  holdout?: number;
  /** Training options as trainSteer takes them (reference defaults when absent). */
  train?: Pick<
    TrainOptions,
    | 'slotName'
    | 'dummySlot'
    | 'rank'
    | 'eps'
    | 'initStd'
    | 'lr'
    | 'regularization'
    | 'batchSize'
    | 'maxLength'
    | 'steps'
    | 'seed'
    | 'includePadding'
    | 'checkpointEvery'
    | 'fp16Cache'
    | 'overwrite'
  >;
  /** Hidden-state cache root; default <lmsteer cache>/hidden; false: memory only (recomputed every run). */
  cacheDir?: string | false;
  threads?: number;
  offline?: boolean;
  /** How to load `model` (weight precision, load report); `threads` and `offline` above win. */
  load?: LoadModelOptions;
  /** Progress bars on stderr; default: when stderr is a terminal. */
  progress?: boolean;
  /** Status lines; default stderr. */
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** After every training step (the library's progress callback; the CLI draws a bar instead). */
  onStep?: (p: LossPoint) => void;
  /** An already loaded model (tests, callers that reuse one); `model` is then only recorded. */
  loaded?: LoadedModel;
}

export interface Throughput {
  texts: number;
  tokens: number;
  seconds: number;
}

export interface TrainRunResult {
  outDir: string;
  /** Files written: steer.json, steer.safetensors, loss.svg, checkpoint/. */
  files: string[];
  dataset: Dataset;
  result: TrainResult;
  finalLoss?: number;
  /** Mean loss over the last 10% of steps (at least 1): less noisy than the last batch. */
  recentLoss?: number;
  /** Hidden-state extraction done by this run (0 texts when everything was cached). */
  extraction: Throughput;
  /** The training steps of this run (cached hidden states; tokens = loss positions). */
  training: { steps: number; tokens: number; seconds: number };
  cacheFolder?: string;
  /** The held-out diagnostic (dev files or the held-out split), when there was one. */
  heldOut?: SteerLossResult;
  /** Set when the diagnostic says the steer learned the domain rather than the style. */
  warning?: string;
}

/** Train into `opts.outDir`, held by this run alone (outDir.ts) until it ends. */
export async function runTraining(opts: TrainRunOptions): Promise<TrainRunResult> {
  const lock = lockOutDir(opts.outDir, 'train');
  try {
    return await trainLocked(opts);
  } finally {
    lock.release();
  }
}

async function trainLocked(opts: TrainRunOptions): Promise<TrainRunResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const t = opts.train ?? {};
  const seed = t.seed ?? 0;
  const ds = loadDataset(opts.data, {
    labelMap: opts.labelMap,
    textField: opts.textField,
    labelField: opts.labelField,
    balance: opts.balance ? 'downsample' : 'none',
    seed,
  });
  const limited = opts.limit !== undefined ? limitDataset(ds, opts.limit, seed) : ds;
  if (opts.dev?.length && opts.holdout !== undefined)
    throw new LmSteerError('BAD_ARGUMENT', 'give --dev FILE or --holdout N, not both');
  const split = opts.holdout !== undefined ? holdOut(limited, opts.holdout, seed) : undefined;
  const dataset = split?.train ?? limited;
  const dev = opts.dev?.length
    ? loadDataset(opts.dev, {
        labelMap: opts.labelMap,
        textField: opts.textField,
        labelField: opts.labelField,
        balance: 'none',
        seed,
      }).examples
    : split?.dev;
  if (dev)
    log(
      `held out for the loss diagnostic: ${dev.length} examples${opts.dev?.length ? ` (${opts.dev.join(', ')})` : ''}`,
    );
  log(`dataset (${dataset.examples.length} examples):`);
  log(describeDataset(dataset));
  if (dataset.summary.perLabel.length < 2) {
    log(
      `  note: every example has the steer value ${dataset.summary.perLabel[0]?.label}; the steer learns that style, and negative values push away from it`,
    );
  }

  const model =
    opts.loaded ??
    (await loadModel(opts.model, { ...opts.load, threads: opts.threads, hub: { offline: opts.offline || undefined } }));
  if (!opts.loaded && model.buildNote) log(`${model.id}: ${model.buildNote}`);
  let masked: MaskedForward | undefined;
  try {
    const E = model.outputEmbeddings();
    const d = model.cfg.hiddenSize;
    // Clamped to the model's context so the resume key and the cache agree on what is stored.
    const maxLength = Math.min(t.maxLength ?? 256, model.cfg.maxPositions);
    if (t.maxLength !== undefined && t.maxLength > maxLength)
      log(`max length ${t.maxLength} is beyond the model's ${maxLength} positions; using ${maxLength}`);
    // The reference pads with EOS (tokenizer.pad_token = eos_token), whatever the tokenizer's own pad token.
    const padId = model.tokenizer.eosIds[0];
    const resolved = resolveOptions({ ...t, maxLength, padId, outDir: opts.outDir, examples: [] }, d);
    const fingerprint = extractionFingerprint(model);
    const cacheRoot = opts.cacheDir === false ? undefined : resolve(opts.cacheDir ?? join(defaultCacheDir(), 'hidden'));
    const extraction: Throughput = { texts: 0, tokens: 0, seconds: 0 };
    masked = resolved.includePadding || dev ? await MaskedForward.open(model) : undefined;
    const extract = makeExtractor(model, {
      maxLength,
      onBatch: (texts, tokens) => {
        extraction.texts += texts;
        extraction.tokens += tokens;
      },
      pad: resolved.includePadding ? { id: padId!, forward: masked! } : undefined,
    });
    const examples = dataset.examples.map((e) => ({ text: e.text, label: e.label }));
    const counts = new Map<string, number>();
    const tokenCount = (text: string) => {
      let n = counts.get(text);
      if (n === undefined) counts.set(text, (n = encodeForTraining(model.tokenizer, text, maxLength).length));
      return n;
    };

    let cacheFolder: string | undefined;
    if (cacheRoot) {
      // Extract every text the remaining steps will touch up front, longest texts batched together, so the
      // steps then read the cache only (per-step extraction would run 8 texts of mixed lengths at a time).
      const start = Math.min(loadCheckpoint(opts.outDir)?.step ?? 0, resolved.steps);
      const needed = new Set<string>();
      for (let s = start; s < resolved.steps && needed.size < examples.length; s++) {
        for (const i of batchAt(examples.length, resolved.batchSize, resolved.seed, s).indices)
          needed.add(examples[i]!.text);
      }
      // Pads included: the rows a text needs are the longest batch it lands in over the whole plan (from step
      // 0, so a resumed run asks for what the first run extracted).
      const rows = new Map<string, number>();
      for (let s = 0; resolved.includePadding && s < resolved.steps; s++) {
        const { indices } = batchAt(examples.length, resolved.batchSize, resolved.seed, s);
        const longest = Math.max(...indices.map((i) => tokenCount(examples[i]!.text)));
        for (const i of indices) rows.set(examples[i]!.text, Math.max(rows.get(examples[i]!.text) ?? 0, longest));
      }
      const rowsOf = (text: string) => (resolved.includePadding ? rows.get(text)! : undefined);
      const cache = HiddenCache.open({
        dir: cacheRoot,
        modelFingerprint: fingerprint,
        maxLength,
        fp16: t.fp16Cache,
        extractBatchSize: PREFILL_CHUNK,
        padId: resolved.includePadding ? padId : undefined,
      });
      cacheFolder = cache.folder;
      try {
        const missing = [...needed]
          .filter((x) => !cache.has(x, rowsOf(x)))
          .sort((a, b) => (rowsOf(a) ?? a.length) - (rowsOf(b) ?? b.length));
        if (missing.length > 0) {
          log(
            `extracting hidden states of ${missing.length} texts (${needed.size - missing.length} cached) into ${cache.folder}`,
          );
          const t0 = performance.now();
          await prefill(
            cache,
            missing,
            resolved.includePadding ? missing.map((x) => rows.get(x)!) : undefined,
            extract,
            opts,
            extraction,
          );
          extraction.seconds = (performance.now() - t0) / 1000;
          log(
            `  ${extraction.tokens} tokens in ${extraction.seconds.toFixed(1)} s (${Math.round(extraction.tokens / Math.max(extraction.seconds, 1e-9))} tokens/s)`,
          );
        } else if (needed.size > 0) {
          log(`hidden states of all ${needed.size} texts the run needs are cached (${cache.folder})`);
        }
      } finally {
        cache.close();
      }
    }

    const datasetName = opts.data.join(', ');
    let heldOut: SteerLossResult | undefined;
    let steps = 0;
    let tokens = 0;
    let lastStep = 0;
    const t0 = performance.now();
    const result = await trainSteer(
      {
        ...t,
        maxLength,
        outDir: opts.outDir,
        examples,
        padId,
        cacheDir: cacheRoot,
        // Without a disk cache nothing was extracted up front: extract a training batch per call.
        extractBatchSize: Math.max(8, resolved.batchSize),
        progress: opts.progress,
        datasetName,
        intraOpNumThreads: opts.threads,
      },
      {
        extract,
        embeddings: E,
        headBias: model.outputBias?.(),
        logitSoftcap: model.cfg.finalLogitSoftcap,
        modelFingerprint: fingerprint,
        modelId: model.id,
        signal: opts.signal,
        log,
        tokenCount,
        onStep: (p) => {
          steps++;
          tokens += p.tokens;
          lastStep = performance.now();
          opts.onStep?.(p);
        },
        save: async (steer, dir) => {
          if (dev && masked) {
            log(`computing the held-out loss on ${dev.length} texts`);
            heldOut = await heldOutLoss(model, steer, dev, {
              slot: steer.config.slots[0]!.name,
              batchSize: resolved.batchSize,
              maxLength,
              masked,
              threads: opts.threads,
            });
          }
          saveSteer(dir, annotate(steer, model, opts, dataset, fingerprint, heldOut));
        },
      },
    );
    let warning: string | undefined;
    if (heldOut) {
      for (const l of describeSteerLoss(heldOut, resolved.includePadding ? ['include', 'exclude'] : ['exclude']))
        log(l);
      warning = domainWarning(heldOut, heldOut.exclude);
      if (warning) log(warning);
    }
    const h = result.history;
    const recent = h.slice(Math.max(0, h.length - Math.max(1, Math.round(h.length / 10))));
    return {
      outDir: opts.outDir,
      files: [STEER_JSON, STEER_TENSORS, 'loss.svg', `${CHECKPOINT_DIR}/`].map((f) => join(opts.outDir, f)),
      dataset,
      result,
      finalLoss: h.at(-1)?.loss,
      recentLoss: recent.length ? recent.reduce((a, p) => a + p.loss, 0) / recent.length : undefined,
      extraction,
      training: { steps, tokens, seconds: steps > 0 ? (lastStep - t0) / 1000 : 0 },
      cacheFolder,
      heldOut,
      warning,
    };
  } finally {
    await masked?.close();
    if (!opts.loaded) model.close();
  }
}

/** Extract `texts` into the cache with a progress bar; Ctrl-C stops after the current batch (all kept). */
async function prefill(
  cache: HiddenCache,
  texts: string[],
  rows: number[] | undefined,
  extract: ReturnType<typeof makeExtractor>,
  opts: TrainRunOptions,
  done: Throughput,
): Promise<void> {
  let stop = false;
  const onSigint = () => {
    if (stop) {
      process.off('SIGINT', onSigint);
      process.kill(process.pid, 'SIGINT');
    }
    stop = true;
  };
  process.on('SIGINT', onSigint);
  const showBar = opts.progress ?? Boolean(process.stderr.isTTY);
  const bar = showBar
    ? new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: 'extract [{bar}] {value}/{total} texts | {tps} tokens/s | ETA {eta_formatted}',
          hideCursor: true,
          noTTYOutput: opts.progress === true && !process.stderr.isTTY,
          notTTYSchedule: 5000,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const t0 = performance.now();
  bar?.start(texts.length, 0, { tps: '—' });
  try {
    // Chunk by chunk, dropping what get() returns: the states live on disk, not in memory.
    for (let s = 0; s < texts.length; s += PREFILL_CHUNK) {
      if (stop || opts.signal?.aborted) {
        throw new LmSteerError(
          'CANCELLED',
          `hidden-state extraction interrupted after ${done.texts} of ${texts.length} texts; those are cached`,
          'run the same command again to continue',
        );
      }
      await cache.get(texts.slice(s, s + PREFILL_CHUNK), extract, rows?.slice(s, s + PREFILL_CHUNK));
      bar?.update(done.texts, { tps: Math.round(done.tokens / ((performance.now() - t0) / 1000)) });
    }
  } finally {
    bar?.stop();
    process.off('SIGINT', onSigint);
  }
}

/** A seeded random subset of `n` examples in file order, so every label keeps its share. */
export function limitDataset(ds: Dataset, n: number, seed: number): Dataset {
  if (!(Number.isInteger(n) && n > 0)) throw new LmSteerError('BAD_ARGUMENT', `--limit ${n} is not a positive integer`);
  if (n >= ds.examples.length) return ds;
  return subset(ds, seededPick(ds.examples.length, n, seed ^ 0x51ed270b), `random subset of ${n} (--limit)`);
}

/** `n` examples held out (seeded, file order) for the diagnostic; the rest train. */
export function holdOut(ds: Dataset, n: number, seed: number): { train: Dataset; dev: Example[] } {
  if (!(Number.isInteger(n) && n > 0 && n < ds.examples.length))
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `--holdout ${n} must be a positive integer below the ${ds.examples.length} examples`,
      'e.g. --holdout 500',
    );
  const dev = new Set(seededPick(ds.examples.length, n, seed ^ 0x2f6b1d3c));
  const keep = ds.examples.map((_, i) => i).filter((i) => !dev.has(i));
  return {
    train: subset(ds, keep, `${n} held out (--holdout)`),
    dev: [...dev].sort((a, b) => a - b).map((i) => ds.examples[i]!),
  };
}

/** `n` distinct indices below `total`, seeded (a partial Fisher–Yates shuffle). */
function seededPick(total: number, n: number, seed: number): number[] {
  const idx = Array.from({ length: total }, (_, i) => i);
  const rng = xoroshiro128plus(seed);
  for (let i = 0; i < n; i++) {
    const j = uniformInt(rng, i, idx.length - 1);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, n);
}

function subset(ds: Dataset, indices: number[], what: string): Dataset {
  const kept: Example[] = [...indices].sort((a, b) => a - b).map((i) => ds.examples[i]!);
  const counts = new Map<number, number>();
  for (const e of kept) counts.set(e.label, (counts.get(e.label) ?? 0) + 1);
  return {
    examples: kept,
    summary: {
      ...ds.summary,
      perLabel: [...counts].sort((a, b) => a[0] - b[0]).map(([label, count]) => ({ label, count })),
      total: kept.length,
      balancing: `${ds.summary.balancing}; ${what}`,
    },
    hash: hashExamples(kept),
  };
}

/** What steer.json records beyond trainSteer's config: the data and how it was read, and loss metrics. */
function annotate(
  steer: Steer,
  model: LoadedModel,
  opts: TrainRunOptions,
  ds: Dataset,
  fingerprint: string,
  heldOut?: SteerLossResult,
): Steer {
  const c = steer.config;
  if (c.baseModel.embeddingFingerprint !== model.fingerprint())
    throw new Error('internal: the trained steer does not carry the model fingerprint');
  const h = steer.config.training?.finalLoss;
  return {
    ...steer,
    config: {
      ...c,
      training: {
        ...c.training,
        dataFiles: opts.data,
        labelMap: opts.labelMap ?? 'binary',
        textField: opts.textField,
        labelField: opts.labelField,
        balance: opts.balance ? 'downsample' : 'none',
        limit: opts.limit,
        perLabel: ds.summary.perLabel,
        datasetSha256: ds.hash,
        slotName: c.slots[0]!.name,
        dummySlot: c.slots.length > 1,
        hiddenStates: fingerprint,
      },
      metrics: {
        ...c.metrics,
        finalLoss: h,
        ...(heldOut
          ? { heldOut: { ...heldOut, values: undefined, dev: opts.dev ?? `--holdout ${opts.holdout}` } }
          : {}),
      },
    },
  };
}
