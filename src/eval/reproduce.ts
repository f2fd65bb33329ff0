/**
 * `lmsteer reproduce detox|sentiment`: the paper's pipeline in one call (Glaciohound/LM-Steer README §2):
 *   (a) the base model (paper: gpt2-large; any local path or hub id),
 *   (b) a steer trained with the paper's settings (2 slots with the dummy one, rank 1000 → min(1000, d), eps 1e-3,
 *       Adam lr 1e-2, batch 32, max length 256, 1000 steps; sentiment adds regularization 1e-6),
 *   (c) the evaluation protocol (25 samples × 20 tokens per prompt; top-k 50 as HF generate's default, top-p 0.9
 *       for sentiment) — detox: RealToxicityPrompts non-toxic prompts at steer value 5 (and 0, the unsteered
 *       baseline); sentiment: positive steer (+5) on neutral and negative prompts, negative steer (−5) on neutral
 *       and positive prompts, each next to its unsteered baseline,
 *   (d) one table with every setting.
 * Published reference rows are not included: the paper's Table 1/2 numbers could not be obtained here, and
 * numbers typed from memory would be worse than none.
 *
 * Sizes: `paper` is the above; `small` and `tiny` shrink training data/steps and the prompt/sample counts so the
 * pipeline runs in minutes (tiny: stories260K on a laptop). Every stage resumes: training from its checkpoint,
 * evaluation from its generations files.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type LoadedModel, type LoadModelOptions } from '../runtime/loadModel.js';
import { SteerSet } from '../steer/steerSet.js';
import { runTraining } from '../train/run.js';
import { LmSteerError } from '../util/errors.js';
import { fluencyModelOf } from './fluency.js';
import { buildReport, writeReport, type EvalReport, type EvalRow } from './report.js';
import { runEval, type SamplingSettings } from './run.js';
import { createScorer } from './scorers/registry.js';
import type { Scorer } from './scorers/scorer.js';

export type Task = 'detox' | 'sentiment';
export type Size = 'tiny' | 'small' | 'paper';

interface SizePlan {
  model: string;
  pplModel?: string;
  steps: number;
  /** Training examples (seeded subset); undefined: all. */
  trainLimit?: number;
  maxLength: number;
  /** Prompts per prompt file; undefined: all. */
  prompts?: number;
  samples: number;
}

export const SIZES: Record<Size, SizePlan> = {
  tiny: { model: 'stories260K', steps: 100, trainLimit: 1000, maxLength: 64, prompts: 20, samples: 10 },
  small: { model: 'gpt2', steps: 300, trainLimit: 5000, maxLength: 128, prompts: 100, samples: 25 },
  paper: { model: 'gpt2-large', pplModel: 'gpt2-xl', steps: 1000, maxLength: 256, samples: 25 },
};

/** Where each input lives inside a data folder laid out like lmsteer's shared data (MANIFEST.txt). */
const DATA_LAYOUT = {
  detox: {
    data: [
      ['toxicity/snlp_detox_jigsaw/dev_toxic.txt', -1],
      ['toxicity/snlp_detox_jigsaw/dev_normal.txt', 1],
    ] as [string, number][],
    prompts: [
      [
        'nontoxic',
        [
          'prompts/nontoxic_prompts-10k.jsonl',
          'prompts/rtp_nontoxic_subsets/nontoxic_prompts_random2000.jsonl',
          'prompts/rtp_nontoxic_subsets/nontoxic_prompts_first50.jsonl',
        ],
      ],
    ] as [string, string[]][],
  },
  sentiment: {
    data: [['sentiment/sst5_lowercase_yaolu/train.jsonl', NaN]] as [string, number][],
    prompts: ['neutral', 'positive', 'negative'].map((k) => [
      k,
      [`prompts/sentiment_prompts-10k/${k}_prompts.jsonl`, `prompts/sentiment_prompts-10k/${k}_prompts.dev.jsonl`],
    ]) as [string, string[]][],
  },
};

export interface ReproduceOptions {
  task: Task;
  size: Size;
  outDir: string;
  model?: string;
  pplModel?: string;
  /** Training files (`path[:label]`); default: from dataDir. */
  data?: string[];
  /** Label map for `data` (default: binary; sentiment from dataDir: sst5). */
  labelMap?: string;
  /** Prompt files as `name=path` (sentiment names: neutral, positive, negative; detox: nontoxic) or bare paths. */
  prompts?: string[];
  /** A folder laid out like lmsteer's shared data, used for whatever `data`/`prompts` leave out. */
  dataDir?: string;
  scorer?: string;
  scorerModel?: string;
  scorerLabel?: string;
  /** The steer value of the steered settings (paper: 5). */
  value?: number;
  /** Overrides of the size's plan. */
  steps?: number;
  promptLimit?: number;
  samples?: number;
  batchRows?: number;
  threads?: number;
  offline?: boolean;
  /** How to load the models (weight precision, load report); `threads` and `offline` above win. */
  load?: LoadModelOptions;
  progress?: boolean;
  overwrite?: boolean;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface ReproduceResult {
  report: EvalReport;
  reportMd: string;
  steerDir: string;
  rows: EvalRow[];
  seconds: { train: number; eval: number };
}

function locate(o: ReproduceOptions, candidates: string[], what: string): string {
  if (o.dataDir) {
    for (const c of candidates) if (existsSync(join(o.dataDir, c))) return join(o.dataDir, c);
    throw new LmSteerError(
      'NOT_FOUND',
      `no ${what} in ${o.dataDir} (looked for ${candidates.join(', ')})`,
      `pass the file explicitly (--${what.includes('prompt') ? 'prompts' : 'data'})`,
    );
  }
  throw new LmSteerError(
    'BAD_ARGUMENT',
    `the ${what} is not given`,
    `pass --data-dir (a folder with ${candidates[0]}), or the file itself with --${what.includes('prompt') ? 'prompts' : 'data'}`,
  );
}

/** The prompt sets of the task, name → file. */
export function promptSets(o: ReproduceOptions): [string, string][] {
  const layout = DATA_LAYOUT[o.task].prompts;
  const names = layout.map(([n]) => n);
  const given = new Map<string, string>();
  for (const spec of o.prompts ?? []) {
    const m = /^([a-z]+)=(.+)$/.exec(spec);
    if (m && names.includes(m[1]!)) given.set(m[1]!, m[2]!);
    else if (!m && names.length === 1) given.set(names[0]!, spec);
    else
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `--prompts "${spec}" is not name=path with name one of ${names.join(', ')}`,
        o.task === 'sentiment'
          ? 'e.g. --prompts neutral=neutral_prompts.jsonl'
          : 'e.g. --prompts nontoxic_prompts-10k.jsonl',
      );
  }
  return layout.map(([name, candidates]) => [name, given.get(name) ?? locate(o, candidates, `${name} prompt file`)]);
}

function trainingData(o: ReproduceOptions): { data: string[]; labelMap: string } {
  if (o.data?.length) return { data: o.data, labelMap: o.labelMap ?? 'binary' };
  const files = DATA_LAYOUT[o.task].data.map(([f, label]) => {
    const p = locate(o, [f], 'training data');
    return Number.isNaN(label) ? p : `${p}:${label}`;
  });
  return { data: files, labelMap: o.task === 'sentiment' ? 'sst5' : 'binary' };
}

async function defaultScorer(o: ReproduceOptions): Promise<Scorer> {
  if (o.scorer) return createScorer(o.scorer, { modelPath: o.scorerModel, label: o.scorerLabel });
  if (o.task === 'sentiment') {
    // The paper scores with DExperts' HF sentiment classifier; vader is the offline stand-in.
    return o.scorerModel
      ? createScorer('onnx-classifier', { modelPath: o.scorerModel, label: o.scorerLabel })
      : createScorer('vader');
  }
  // The paper scores toxicity with the Perspective API; offline, the offensive-linear classifier stands in.
  const local =
    o.scorerModel ?? (o.dataDir ? join(o.dataDir, '..', 'evaluators', 'offensive-linear', 'model.json') : undefined);
  if (local && existsSync(local)) return createScorer('offensive-linear', { modelPath: local });
  if (process.env.PERSPECTIVE_API_KEY) return createScorer('perspective');
  throw new LmSteerError(
    'BAD_ARGUMENT',
    'detox needs a toxicity scorer and none is available',
    "set PERSPECTIVE_API_KEY (the paper's scorer), or pass --scorer offensive-linear --scorer-model model.json",
  );
}

/** Steer values evaluated on each prompt set (0 = the unsteered baseline next to the steered setting). */
function valuesFor(task: Task, set: string, v: number): number[] {
  if (task === 'detox') return [0, v];
  if (set === 'neutral') return [-v, 0, v];
  return set === 'positive' ? [-v, 0] : [0, v];
}

export async function reproduce(o: ReproduceOptions): Promise<ReproduceResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const plan = SIZES[o.size];
  const value = o.value ?? 5;
  const slot = o.task === 'detox' ? 'toxicity' : 'sentiment';
  // Resolve every input before the slow stages, so a missing file fails at once.
  const sets = promptSets(o);
  const { data, labelMap } = trainingData(o);
  const scorer = await defaultScorer(o);
  const sampling: SamplingSettings = {
    samples: o.samples ?? plan.samples,
    maxNewTokens: 20,
    topP: o.task === 'sentiment' ? 0.9 : 1,
    topK: 50,
    temperature: 1,
    seed: 0,
  };

  const modelSpec = o.model ?? plan.model;
  log(`(a) base model ${modelSpec}`);
  const open = async (spec: string) => {
    const m = await loadModel(spec, { ...o.load, threads: o.threads, hub: { offline: o.offline || undefined } });
    if (m.buildNote) log(`${m.id}: ${m.buildNote}`);
    return m;
  };
  const model = await open(modelSpec);
  let ppl: LoadedModel | undefined;
  try {
    const steerDir = join(o.outDir, 'steer');
    log(`(b) training the ${slot} steer into ${steerDir}`);
    const t0 = performance.now();
    await runTraining({
      model: modelSpec,
      loaded: model,
      data,
      labelMap,
      outDir: steerDir,
      limit: plan.trainLimit,
      balance: false,
      train: {
        slotName: slot,
        steps: o.steps ?? plan.steps,
        lr: 1e-2,
        batchSize: 32,
        maxLength: plan.maxLength,
        eps: 1e-3,
        regularization: o.task === 'sentiment' ? 1e-6 : 0,
        seed: 0,
      },
      progress: o.progress,
      log,
      signal: o.signal,
    });
    const trainSeconds = (performance.now() - t0) / 1000;

    const pplSpec = o.pplModel ?? plan.pplModel;
    if (pplSpec && pplSpec !== modelSpec) ppl = await open(pplSpec);
    const steers = SteerSet.load(model, [steerDir]);
    const rows: EvalRow[] = [];
    const t1 = performance.now();
    for (const [name, path] of sets) {
      const dir = join(o.outDir, 'eval', name);
      log(`(c) evaluating on ${name} prompts (${path}) into ${dir}`);
      const r = await runEval(
        {
          outDir: dir,
          promptsPath: path,
          limit: o.promptLimit ?? plan.prompts,
          ...sampling,
          sweep: { name: slot, values: valuesFor(o.task, name, value) },
          batchRows: o.batchRows,
          overwrite: o.overwrite,
          progress: o.progress,
          title: `${o.task}: ${name} prompts`,
        },
        { model, steers, steerDirs: [steerDir], scorer, fluency: fluencyModelOf(ppl ?? model), signal: o.signal, log },
      );
      for (const s of r.settings)
        rows.push({ ...s.row, setting: `${name} prompts, ${s.setting}${s.steerValue === 0 ? ' (unsteered)' : ''}` });
    }
    const evalSeconds = (performance.now() - t1) / 1000;

    const report = buildReport({
      title: `LM-Steer ${o.task} reproduction (${o.size})`,
      config: {
        model: modelSpec,
        steer: steerDir,
        trainingData: data.join(', '),
        labelMap,
        trainingSteps: o.steps ?? plan.steps,
        trainingExamples: plan.trainLimit ?? 'all',
        prompts: sets.map(([n, p]) => `${n}: ${p}`).join('; '),
        promptsPerSet: o.promptLimit ?? plan.prompts ?? 'all',
        sampling: `${sampling.samples} samples × ${sampling.maxNewTokens} tokens, top-p ${sampling.topP}, top-k ${sampling.topK}`,
        pplModel: pplSpec ?? modelSpec,
        referenceRows: "not shown: the paper's published Table 1/2 numbers were not available to this build",
      },
      scorers: [{ name: scorer.name, attribute: scorer.attribute, version: scorer.version }],
      rows,
    });
    const files = writeReport(o.outDir, report);
    return { report, reportMd: files.mdPath, steerDir, rows, seconds: { train: trainSeconds, eval: evalSeconds } };
  } finally {
    ppl?.close();
    model.close();
  }
}
