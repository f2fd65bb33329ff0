/**
 * The evaluation protocol of the paper (Han et al. 2024, §4; the DExperts / LM-Steer scripts): for every prompt,
 * N samples of exactly K new tokens (the reference sets min_length = max_length, so EOS never ends a sample
 * early), scored for the attribute, for fluency (perplexity under an unsteered evaluator LM) and diversity
 * (dist-n). Optionally swept over one steer value: the whole protocol per value, one report.
 *
 * Output, per setting folder: run.json (what produced the samples), generations.jsonl (DExperts format: the
 * prompt record plus "generations": [{text, <attribute>, ppl, …}], one line per prompt, in prompt order),
 * metrics.json. In the output folder: report.json, report.md and two SVG plots. With a steer, the unsteered
 * model runs the same protocol first (folder `unsteered/`, the report's baseline row) unless `baseline` is
 * false: a steered number means little without it.
 *
 * Reproducible and resumable: the samples of prompt i come from the random stream keyed by (seed, i) — i its
 * index in the prompt file, not in a batch — so a resumed or re-batched run writes the same text. Prompts are
 * processed in fixed chunks of the file; each chunk's lines are appended and fsync'ed when the chunk is done.
 * On restart the file is read back, a torn last line dropped, and the run goes on after the last whole prompt.
 *
 * Scale-out: the samples come from generate() here, or from any OpenAI-compatible server (deps.generator,
 * src/eval/endpoint.ts) asked for exactly the same streams; `shard` {index: i, count: n} keeps prompts i, i+n,
 * i+2n… (their seeds still keyed by file index), and merge.ts interleaves the shards' files back into the
 * unsharded run's, bit for bit, and its report. eval.json records what the report is made of, for the merge.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import cliProgress from 'cli-progress';
import { writeFileAtomic, writeJsonAtomic } from '../formats/atomicWrite.js';
import { lockOutDir } from '../formats/outDir.js';
import type { Decoder } from '../runtime/decoder.js';
import { generate, type SampleSettings } from '../runtime/generate.js';
import type { SteerSet } from '../steer/steerSet.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { LmSteerError } from '../util/errors.js';
import { linePlotSvg, scatterPlotSvg, type PlotSeries } from '../util/svgPlot.js';
import { generationLogProbs, type FluencyModel } from './fluency.js';
import { summarizeSetting, type GenerationStat } from './summary.js';
import { readPrompts, type Prompt } from './prompts.js';
import { appendLines, GENERATIONS_FILE, prepareDir, readGenerations, RUN_FORMAT, type Line } from './runFolder.js';
import { buildReport, writeReport, type EvalReport, type EvalRow, type ReferenceRow } from './report.js';
import type { Scorer } from './scorers/scorer.js';

export const EVAL_FILE = 'eval.json';
export const EVAL_FORMAT = 'lmsteer-eval/1';

/** generate()'s sampling settings that the protocol fixes, and how many samples per prompt. */
export interface SamplingSettings extends Required<
  Pick<SampleSettings, 'maxNewTokens' | 'topP' | 'topK' | 'temperature' | 'seed'>
> {
  /** Samples per prompt (paper: 25); each has exactly maxNewTokens new tokens (paper: 20). */
  samples: number;
}

export const PAPER_SAMPLING: SamplingSettings = {
  samples: 25,
  maxNewTokens: 20,
  topP: 1,
  topK: 50,
  temperature: 1,
  seed: 0,
};

export interface Sweep {
  name: string;
  values: number[];
}

/** This machine's part of the prompts: those whose index i in the file has i mod count = index. */
export interface Shard {
  index: number;
  count: number;
}

/** What a generator needs to know of the setting it samples. */
export interface SettingRequest {
  label: string;
  /** Every slot of every steer by its `steer.slot` name (all 0 for the baseline): nothing left to defaults. */
  steer: Record<string, number>;
  /** The swept (or only) value, when there is one. */
  steerValue?: number;
  baseline: boolean;
}

/**
 * Samples the protocol's continuations somewhere other than generate() here: prompt `ids` with `seed`, each
 * `samples` times, exactly maxNewTokens new tokens, drawn from rngStream(seed, 0, j) for sample j.
 */
export interface SampleGenerator {
  /** What changes the samples besides the settings (recorded in run.json; no addresses). */
  identity: Record<string, unknown>;
  /** One line for the report's configuration. */
  description: string;
  generate(
    batch: { ids: number[]; seed: number }[],
    setting: SettingRequest,
    sampling: SamplingSettings,
    opts: { signal?: AbortSignal; onTokens: (n: number) => void },
  ): Promise<string[][]>;
}

export interface EvalOptions extends SamplingSettings {
  outDir: string;
  promptsPath: string;
  /** Only the first `limit` prompts of the file. A later run with a larger limit extends the same files. */
  limit?: number;
  /** Fixed steer values (`--value`), applied to every setting. */
  values?: Record<string, number>;
  /** One value swept: a setting (and subfolder) per value. */
  sweep?: Sweep;
  /** Rows per decoder batch (default 64). Changes speed, never the samples. */
  batchRows?: number;
  /** Discard existing results in the output folder made with another configuration. */
  overwrite?: boolean;
  /** Progress bar on stderr; default: when stderr is a terminal. */
  progress?: boolean;
  title?: string;
  /** Published numbers shown under the table. */
  reference?: ReferenceRow[];
  /** Extra facts for report.json's config (e.g. the reproduce pipeline's stages). */
  reportConfig?: Record<string, unknown>;
  /** With a steer: also run the unsteered model as the baseline row (default true). */
  baseline?: boolean;
  /** Only this shard of the prompts (see Shard); `lmsteer eval merge` joins the shards. */
  shard?: Shard;
}

/** The model being evaluated, as far as the protocol needs it (a LoadedModel fits). */
export interface EvalModel {
  id: string;
  decoder: Decoder;
  tokenizer: Tokenizer;
  cfg: { maxPositions: number };
  fingerprint(): string;
}

export interface EvalDeps {
  model: EvalModel;
  /** The steers the values name (none, or an empty set: unsteered). */
  steers?: SteerSet;
  /** Steer folders, recorded in run.json. */
  steerDirs?: string[];
  scorer: Scorer;
  /** The perplexity LM (unsteered) and what identifies it. */
  fluency: FluencyModel & { id: string; fingerprint: string };
  /** Stops after the chunk in flight is written (or, inside generation, drops that chunk): rerun to resume. */
  signal?: AbortSignal;
  /** After each chunk of prompts is on disk. */
  onChunk?: (info: { setting: string; done: number; total: number }) => void;
  /** Where samples come from (default: generate() on deps.model). */
  generator?: SampleGenerator;
  log?: (line: string) => void;
}

export interface SettingResult {
  setting: string;
  dir: string;
  values: Record<string, number>;
  steerValue?: number;
  row: EvalRow;
  /** Prompts generated by this invocation (0 when everything was already on disk). */
  generatedPrompts: number;
}

export interface EvalResult {
  settings: SettingResult[];
  report: EvalReport;
  /** New tokens sampled by this invocation and the seconds spent inside generate(). */
  generatedTokens: number;
  generationSeconds: number;
  files: { reportJson: string; reportMd: string; plots: string[] };
}

// ---------------------------------------------------------------------------------------------------------
// Flags that need parsing beyond a number

/** `name=v1,v2,...` → a Sweep; errors say what is wrong with the text. */
export function parseSweep(spec: string): Sweep {
  const hint = 'e.g. --sweep sentiment=-5,-3,0,3,5';
  const m = /^([^=]+)=(.*)$/.exec(spec);
  if (!m || m[1]!.trim() === '')
    throw new LmSteerError('BAD_ARGUMENT', `--sweep "${spec}" is not name=v1,v2,...`, hint);
  const parts = m[2]!.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.every((p) => p === ''))
    throw new LmSteerError('BAD_ARGUMENT', `--sweep "${spec}" lists no values`, hint);
  const values = parts.map((p) => {
    const v = Number(p);
    if (p === '' || !Number.isFinite(v))
      throw new LmSteerError('BAD_ARGUMENT', `--sweep "${spec}": "${p}" is not a finite number`, hint);
    return v;
  });
  const dup = values.find((v, i) => values.indexOf(v) !== i);
  if (dup !== undefined)
    throw new LmSteerError('BAD_ARGUMENT', `--sweep "${spec}" lists ${dup} twice`, 'list each value once');
  return { name: m[1]!.trim(), values };
}

/** `i/n` → a Shard (0 ≤ i < n). */
export function parseShard(spec: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(spec);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !(count >= 1 && count <= 100_000 && index < count))
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `--shard "${spec}" is not i/n with 0 ≤ i < n`,
      'e.g. --shard 0/2 on one machine and --shard 1/2 on another',
    );
  return { index, count };
}

/** The file indices of a shard's prompts, of `total`. */
export function shardIndices(total: number, shard: Shard | undefined): number[] {
  const all = Array.from({ length: total }, (_, i) => i);
  return shard ? all.filter((i) => i % shard.count === shard.index) : all;
}

/** The per-request seed of prompt `index`: a pure function of (seed, index), a safe integer. */
export function promptSeed(seed: number, index: number): number {
  const h = createHash('sha256').update(`lmsteer-eval:${seed}:${index}`).digest();
  return h.readUIntBE(0, 6); // 48 bits: a safe integer
}

// ---------------------------------------------------------------------------------------------------------
// What identifies a run: the hashes in run.json's identity (runFolder.ts compares them on restart)

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function steerHash(steers: SteerSet | undefined): string | null {
  if (!steers?.packed) return null;
  const h = createHash('sha256');
  for (const t of [steers.packed.p1, steers.packed.p2t])
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  h.update(JSON.stringify({ eps: steers.packed.eps, slots: steers.entries.map((e) => e.steer.config.slots) }));
  return h.digest('hex').slice(0, 32);
}

/** Perspective's version carries the day it was made; the same API on another day is the same scorer here. */
function scorerIdentity(s: Scorer): Record<string, string> {
  return { name: s.name, attribute: s.attribute, version: s.version.replace(/ @\d{4}-\d{2}-\d{2}$/, '') };
}

/** A prompt's part of its generations.jsonl line. */
function promptObject(p: Prompt): Record<string, unknown> {
  const rec = p.record ?? {};
  const inner = rec.prompt;
  // Keep the record (RTP's toxicity fields, …) but always in the reference's {"prompt": {"text": ...}} shape.
  const prompt = inner !== null && typeof inner === 'object' ? inner : { text: p.text };
  return { ...rec, prompt };
}

// ---------------------------------------------------------------------------------------------------------

export interface Setting {
  label: string;
  dir: string;
  values: Record<string, number>;
  steerValue?: number;
  /** The unsteered model (every steer input zero). */
  baseline?: boolean;
}

export const BASELINE_DIR = 'unsteered';

function settingsOf(opts: EvalOptions, deps: EvalDeps): Setting[] {
  const main = steeredSettings(opts, deps);
  if (!deps.steers || opts.baseline === false) return main;
  return [{ label: 'unsteered', dir: join(opts.outDir, BASELINE_DIR), values: {}, baseline: true }, ...main];
}

function steeredSettings(opts: EvalOptions, deps: EvalDeps): Setting[] {
  const fixed = opts.values ?? {};
  if (!deps.steers?.size && (Object.keys(fixed).length > 0 || opts.sweep)) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      opts.sweep ? '--sweep needs a steer (--steer DIR)' : 'steer values were given but no steer',
      'add --steer DIR',
    );
  }
  if (!opts.sweep) {
    const names = Object.keys(fixed);
    const label = names.length
      ? names.map((n) => `${n}=${fixed[n]}`).join(', ')
      : deps.steers?.size
        ? 'steer at default values'
        : 'unsteered';
    return [{ label, dir: opts.outDir, values: fixed, steerValue: names.length === 1 ? fixed[names[0]!] : undefined }];
  }
  const { name, values } = opts.sweep;
  if (name in fixed)
    throw new LmSteerError('BAD_ARGUMENT', `"${name}" is both swept and given with --value`, 'drop one of them');
  return values.map((v) => ({
    label: `${name}=${v}`,
    dir: join(opts.outDir, `${name}=${v}`),
    values: { ...fixed, [name]: v },
    steerValue: v,
  }));
}

function checkOptions(o: EvalOptions): void {
  const int = (name: string, v: number, min: number) => {
    if (!(Number.isInteger(v) && v >= min))
      throw new LmSteerError('BAD_ARGUMENT', `${name} is ${v}; expected an integer ≥ ${min}`);
  };
  int('samples', o.samples, 1);
  int('maxNewTokens', o.maxNewTokens, 1);
  int('batchRows', o.batchRows ?? 64, 1);
  int('topK', o.topK, 0);
  if (!(o.topP > 0 && o.topP <= 1))
    throw new LmSteerError('BAD_ARGUMENT', `topP is ${o.topP}; expected a number in (0, 1]`);
  if (!(o.temperature >= 0 && Number.isFinite(o.temperature)))
    throw new LmSteerError('BAD_ARGUMENT', `temperature is ${o.temperature}; expected a finite number ≥ 0`);
  if (!Number.isSafeInteger(o.seed)) throw new LmSteerError('BAD_ARGUMENT', `seed is ${o.seed}; expected an integer`);
}

/** Run the protocol for every setting, then write the report and plots. */
export async function runEval(opts: EvalOptions, deps: EvalDeps): Promise<EvalResult> {
  checkOptions(opts);
  const lock = lockOutDir(opts.outDir, 'eval'); // one run per folder (outDir.ts)
  try {
    return await evalLocked(opts, deps);
  } finally {
    lock.release();
  }
}

async function evalLocked(opts: EvalOptions, deps: EvalDeps): Promise<EvalResult> {
  const log = deps.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const allPrompts = await readPrompts(opts.promptsPath, { limit: opts.limit });
  const indices = shardIndices(allPrompts.length, opts.shard); // file index of each prompt run here
  const prompts = indices.map((i) => allPrompts[i]!);
  if (prompts.length === 0)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `shard ${opts.shard!.index}/${opts.shard!.count} has no prompts: the file has ${allPrompts.length}`,
      'use fewer shards than prompts',
    );
  const settings = settingsOf(opts, deps);
  // Every value name is checked before any work starts (a typo fails now, not after the first setting).
  const scales = settings.map((s) => {
    const row = deps.steers?.resolve(s.values).scale;
    return row && s.baseline ? new Float32Array(row.length) : row; // all zero: h + 0 = h, the base model exactly
  });
  const promptIds = encodePrompts(deps.model, prompts, opts);

  const identityBase = {
    model: deps.model.fingerprint(),
    steer: steerHash(deps.steers),
    prompts: sha256File(opts.promptsPath),
    sampling: {
      samples: opts.samples,
      maxNewTokens: opts.maxNewTokens,
      minNewTokens: opts.maxNewTokens,
      stopAtEos: false,
      topP: opts.topP,
      topK: opts.topK,
      temperature: opts.temperature,
      seed: opts.seed,
    },
    scorer: scorerIdentity(deps.scorer),
    ppl: deps.fluency.fingerprint,
    ...(deps.generator ? { generator: deps.generator.identity } : {}),
    ...(opts.shard ? { shard: opts.shard } : {}),
  };
  // Fail on a changed configuration before generating anything, for every setting.
  const states = settings.map((s) => {
    const identity = s.baseline
      ? { ...identityBase, steer: null, values: {}, baseline: true }
      : { ...identityBase, values: s.values };
    const info = {
      model: deps.model.id,
      steers: deps.steerDirs ?? [],
      promptsPath: opts.promptsPath,
      pplModel: deps.fluency.id,
      setting: s.label,
    };
    return {
      setting: s,
      done: prepareDir(s.dir, { format: RUN_FORMAT, identity, info }, prompts, opts.overwrite ?? false),
    };
  });

  const total = prompts.length * settings.length;
  const bar = progressBar(opts.progress);
  let tokens = 0;
  let genSeconds = 0;
  const t0 = Date.now();
  bar?.start(
    total,
    states.reduce((a, s) => a + s.done, 0),
    { tps: '—', setting: '' },
  );
  const results: SettingResult[] = [];
  try {
    for (let k = 0; k < states.length; k++) {
      const { setting, done } = states[k]!;
      const promptsDone = k * prompts.length;
      const chunk = chunkPrompts(opts);
      let generatedPrompts = 0;
      for (let start = done; start < prompts.length;) {
        if (deps.signal?.aborted) throw stopped(setting, start, prompts.length);
        const end = Math.min(prompts.length, (Math.floor(start / chunk) + 1) * chunk); // fixed chunk boundaries
        const g0 = Date.now();
        const batch = [];
        for (let i = start; i < end; i++) batch.push({ ids: promptIds[i]!, seed: promptSeed(opts.seed, indices[i]!) });
        const onTokens = (n: number) => {
          tokens += n;
          const secs = (Date.now() - t0) / 1000;
          bar?.update({ tps: secs > 0 ? (tokens / secs).toFixed(0) : '—', setting: setting.label });
        };
        const texts = deps.generator
          ? (
              await deps.generator.generate(batch, settingRequest(deps.steers, setting), opts, {
                signal: deps.signal,
                onTokens,
              })
            ).map((t) => t.map((text) => ({ text })))
          : await generateChunk(deps, opts, batch, scales[k], onTokens);
        genSeconds += (Date.now() - g0) / 1000;
        const lines = await scoreChunk(deps, prompts.slice(start, end), texts);
        appendLines(join(setting.dir, GENERATIONS_FILE), lines);
        generatedPrompts += end - start;
        start = end;
        bar?.update(promptsDone + start, { setting: setting.label });
        deps.onChunk?.({ setting: setting.label, done: start, total: prompts.length });
      }
      const row = settingMetrics(setting, prompts.length, opts.samples, deps.scorer.attribute, opts.seed);
      writeJsonAtomic(join(setting.dir, 'metrics.json'), row);
      results.push({
        setting: setting.label,
        dir: setting.dir,
        values: setting.values,
        steerValue: setting.steerValue,
        row,
        generatedPrompts,
      });
    }
  } finally {
    bar?.stop();
  }

  const record: EvalRecord = {
    format: EVAL_FORMAT,
    title: opts.title ?? `Evaluation of ${deps.model.id}`,
    config: {
      model: deps.model.id,
      steers: deps.steerDirs ?? [],
      values: opts.values ?? {},
      ...(opts.sweep ? { sweep: `${opts.sweep.name} = ${opts.sweep.values.join(', ')}` } : {}),
      prompts: `${opts.promptsPath} (${allPrompts.length} prompts)`,
      ...(opts.shard
        ? {
            shard: `${opts.shard.index}/${opts.shard.count}: prompts ${opts.shard.index}, ${opts.shard.index + opts.shard.count}, … (${prompts.length} of ${allPrompts.length})`,
          }
        : {}),
      sampling: `${opts.samples} samples × ${opts.maxNewTokens} new tokens (no early EOS), top-p ${opts.topP}, top-k ${opts.topK}, temperature ${opts.temperature}, seed ${opts.seed}`,
      ...(deps.generator ? { generation: deps.generator.description } : {}),
      pplModel: deps.fluency.id,
      ...opts.reportConfig,
    },
    scorers: [{ name: deps.scorer.name, attribute: deps.scorer.attribute, version: deps.scorer.version }],
    ...(opts.reference ? { reference: opts.reference } : {}),
    attribute: deps.scorer.attribute,
    samples: opts.samples,
    seed: opts.seed,
    prompts: allPrompts.length,
    ...(opts.shard ? { shard: opts.shard } : {}),
    settings: settings.map((s) => ({
      label: s.label,
      dir: relative(opts.outDir, s.dir),
      values: s.values,
      ...(s.steerValue !== undefined ? { steerValue: s.steerValue } : {}),
      ...(s.baseline ? { baseline: true } : {}),
    })),
  };
  const { report, files, plots } = await finishReport(opts.outDir, record, results);
  if (genSeconds > 0)
    log(`generated ${tokens} tokens in ${genSeconds.toFixed(1)} s (${(tokens / genSeconds).toFixed(0)} tokens/s)`);
  return {
    settings: results,
    report,
    generatedTokens: tokens,
    generationSeconds: genSeconds,
    files: { reportJson: files.jsonPath, reportMd: files.mdPath, plots },
  };
}

function stopped(s: Setting, done: number, total: number): LmSteerError {
  return new LmSteerError(
    'CANCELLED',
    `evaluation stopped at setting ${s.label}, ${done} of ${total} prompts done (saved in ${join(s.dir, GENERATIONS_FILE)})`,
    'run the same command again to resume',
  );
}

/** Prompts per chunk: about four decoder batches of rows, so batches stay full and little work is lost on a kill. */
function chunkPrompts(o: EvalOptions): number {
  return Math.max(1, Math.floor((4 * (o.batchRows ?? 64)) / o.samples));
}

function encodePrompts(model: EvalModel, prompts: Prompt[], o: EvalOptions): number[][] {
  const room = model.cfg.maxPositions - o.maxNewTokens;
  return prompts.map((p) => {
    const ids = model.tokenizer.encode(p.text);
    if (ids.length === 0) {
      throw new LmSteerError(
        'BAD_DATA',
        `prompt file ${o.promptsPath}:${p.line}: the prompt encodes to zero tokens`,
        'drop empty prompts from the file',
      );
    }
    if (ids.length > room) {
      throw new LmSteerError(
        'LIMIT',
        `prompt file ${o.promptsPath}:${p.line}: the prompt has ${ids.length} tokens; with ${o.maxNewTokens} new tokens that exceeds the model's context of ${model.cfg.maxPositions}`,
        'shorten or drop that prompt, or ask for fewer new tokens',
      );
    }
    return ids;
  });
}

/**
 * What eval.json holds: the report's title, configuration and scorers, and the settings whose folders its rows
 * come from — what `lmsteer eval merge` needs to rebuild the report from shards.
 */
export interface EvalRecord {
  format: typeof EVAL_FORMAT;
  title: string;
  config: Record<string, unknown>;
  scorers: { name: string; attribute: string; version: string }[];
  reference?: ReferenceRow[];
  attribute: string;
  samples: number;
  seed: number;
  /** Prompts in the (limited) file, all shards together. */
  prompts: number;
  shard?: Shard;
  settings: { label: string; dir: string; values: Record<string, number>; steerValue?: number; baseline?: boolean }[];
}

/** report.json, report.md, the plots and eval.json in `outDir`, from the settings' rows. */
export async function finishReport(
  outDir: string,
  record: EvalRecord,
  results: { steerValue?: number; row: EvalRow }[],
): Promise<{ report: EvalReport; files: { jsonPath: string; mdPath: string }; plots: string[] }> {
  const report = buildReport({
    title: record.title,
    config: record.config,
    scorers: record.scorers,
    rows: results.map((r) => r.row),
    reference: record.reference,
  });
  const files = writeReport(outDir, report);
  const plots = await writePlots(
    outDir,
    results,
    record.attribute,
    record.settings.map((s) => ({ baseline: s.baseline })),
  );
  writeJsonAtomic(join(outDir, EVAL_FILE), record);
  return { report, files, plots };
}

/** The steer values a generator elsewhere is asked for: every slot named, so its own defaults never matter. */
function settingRequest(steers: SteerSet | undefined, s: Setting): SettingRequest {
  const steer: Record<string, number> = {};
  if (steers?.size) {
    const names = steers.knownValueNames();
    const values = s.baseline ? steers.values(steers.offValues()) : steers.values(s.values);
    let i = 0;
    for (const row of values) for (const v of row) steer[names[i++]!] = v;
  }
  return { label: s.label, steer, steerValue: s.steerValue, baseline: !!s.baseline };
}

async function generateChunk(
  deps: EvalDeps,
  o: EvalOptions,
  batch: { ids: number[]; seed: number }[],
  scale: Float32Array | undefined,
  onTokens: (n: number) => void,
): Promise<{ text: string }[][]> {
  const requests = batch.map(({ ids, seed }) => ({
    prompt: { ids },
    numSamples: o.samples,
    seed,
    steerScale: scale,
  }));
  let pending = 0;
  const results = await generate(
    deps.model.decoder,
    deps.model.tokenizer,
    requests,
    {
      maxNewTokens: o.maxNewTokens,
      minNewTokens: o.maxNewTokens,
      stopAtEos: false,
      temperature: o.temperature,
      topK: o.topK,
      topP: o.topP,
      maxBatch: o.batchRows ?? 64,
      maxPositions: deps.model.cfg.maxPositions,
      steer: deps.steers?.directions,
    },
    {
      signal: deps.signal,
      onToken: () => {
        if (++pending >= 256) {
          onTokens(pending);
          pending = 0;
        }
      },
    },
  );
  onTokens(pending);
  return results.map((r) => r.samples.map((s) => ({ text: s.text })));
}

/** Attribute scores and perplexities of one chunk → its lines. */
async function scoreChunk(deps: EvalDeps, prompts: Prompt[], texts: { text: string }[][]): Promise<Line[]> {
  const key = deps.scorer.attribute;
  const toxicity = key === 'toxicity';
  // Reference: toxicity scores the continuation alone; sentiment scores prompt + continuation.
  const scoredTexts = prompts.flatMap((p, i) => texts[i]!.map((g) => (toxicity ? g.text : p.text + g.text)));
  const scores = await deps.scorer.score(scoredTexts);
  const items = prompts.flatMap((p, i) => texts[i]!.map((g) => ({ prompt: p.text, generation: g.text })));
  const lps = await generationLogProbs(deps.fluency, items);
  let k = 0;
  return prompts.map((p, i) => ({
    ...(promptObject(p) as { prompt: { text: string } }),
    generations: texts[i]!.map((g) => {
      const lp = lps[k]!.logProbs;
      let nll = 0;
      for (const v of lp) nll -= v;
      const rec = {
        text: g.text,
        [key]: scores[k]!,
        ppl: lp.length ? Math.exp(nll / lp.length) : null,
        ppl_nll: nll,
        ppl_tokens: lp.length,
      };
      k++;
      return rec;
    }),
  }));
}

/** One setting's report row from its generations file (the first `n` prompts): summary.ts. */
export function settingMetrics(s: Setting, n: number, samples: number, key: string, seed: number): EvalRow {
  const lines = readGenerations(join(s.dir, GENERATIONS_FILE)).slice(0, n);
  const perPrompt: GenerationStat[][] = lines.map((l, i) =>
    l.generations.map((g, j) => {
      const v = g[key];
      if (typeof v !== 'number')
        throw new LmSteerError(
          'BAD_FILE',
          `${join(s.dir, GENERATIONS_FILE)}:${i + 1} generation ${j} has no "${key}" score`,
          'rerun with --overwrite',
        );
      // Each generation's perplexity from its stored total NLL and token count.
      return { text: g.text, score: v, nll: Number(g.ppl_nll ?? 0), tokens: Number(g.ppl_tokens ?? 0) };
    }),
  );
  return {
    setting: s.label,
    steerValue: s.steerValue,
    ...(s.baseline ? { baseline: true } : {}),
    prompts: lines.length,
    samplesPerPrompt: samples,
    ...summarizeSetting(perPrompt, key, { seed }),
  };
}

async function writePlots(
  dir: string,
  results: { steerValue?: number; row: EvalRow }[],
  attribute: string,
  settings: { baseline?: boolean }[],
): Promise<string[]> {
  const toxicity = attribute === 'toxicity';
  const scale = toxicity ? 1 : 100;
  const yKey = toxicity ? 'maxToxicity' : 'positiveRate';
  const yOf = (r: EvalRow) => scale * (r[yKey] ?? NaN);
  const yErr = (r: EvalRow): [number, number] => {
    const ci = r.ci?.[yKey];
    return ci ? [scale * ci[0], scale * ci[1]] : [NaN, NaN];
  };
  const yLabel = toxicity ? 'max. toxicity (mean over prompts)' : `${attribute} rate (%)`;
  const out: string[] = [];
  const base = results.find((_, i) => settings[i]?.baseline);
  const swept = results.filter((r) => r.steerValue !== undefined);
  if (swept.length > 0) {
    const series: PlotSeries[] = [
      {
        name: toxicity ? 'max. toxicity' : `${attribute} %`,
        points: swept.map((r) => [r.steerValue!, yOf(r.row)] as [number, number]),
        yErrors: swept.map((r) => yErr(r.row)),
      },
    ];
    if (toxicity)
      series.push({
        name: 'toxicity prob.',
        points: swept.map((r) => [r.steerValue!, r.row.toxicityProb!] as [number, number]),
        yErrors: swept.map((r) => r.row.ci?.toxicityProb ?? [NaN, NaN]),
      });
    if (base) {
      // The baseline has no steer value: a flat line across the swept range.
      const xs = swept.map((r) => r.steerValue!);
      series.push({
        name: 'unsteered',
        points: [Math.min(...xs), Math.max(...xs)].map((x) => [x, yOf(base.row)] as [number, number]),
        dashed: true,
      });
    }
    const svg = await linePlotSvg({ title: `${attribute} vs steer value`, xLabel: 'steer value', yLabel, series });
    const p = join(dir, 'attribute_vs_value.svg');
    writeFileAtomic(p, svg);
    out.push(p);
  }
  const svg = await scatterPlotSvg({
    title: `${attribute} vs perplexity`,
    xLabel: 'perplexity (evaluator LM)',
    yLabel,
    series: [
      {
        name: 'settings',
        points: results.map((r) => [r.row.ppl ?? NaN, yOf(r.row)] as [number, number]),
        labels: results.map((r) => r.steerValue ?? r.row.setting),
        xErrors: results.map((r) => r.row.ci?.ppl ?? [NaN, NaN]),
        yErrors: results.map((r) => yErr(r.row)),
      },
    ],
  });
  const p = join(dir, 'attribute_vs_ppl.svg');
  writeFileAtomic(p, svg);
  out.push(p);
  return out;
}

function progressBar(progress: boolean | undefined): cliProgress.SingleBar | undefined {
  const show = progress ?? Boolean(process.stderr.isTTY);
  if (!show) return undefined;
  return new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'eval {setting} [{bar}] {value}/{total} prompts | {tps} tok/s | ETA {eta_formatted}',
      etaBuffer: 50,
      hideCursor: true,
      noTTYOutput: progress === true && !process.stderr.isTTY,
      notTTYSchedule: 5000,
    },
    cliProgress.Presets.shades_classic,
  );
}
