/**
 * The library's front door: a loaded model with the verbs the CLI has — generate (one text, many, streamed),
 * inspect, train a steer, evaluate, explain — taking steers as a `SteerSet` plus named values. Everything
 * here is a thin layer over the modules the CLI uses (src/runtime, src/steer, src/train, src/eval, src/lens),
 * so the two never disagree; docs/API.md says why it looks the way it does.
 *
 *   const model = await Model.open();                       // the embedded stories260K
 *   const mood = model.steers('stories260K-sentiment');     // a shipped steer, or steer folders
 *   await model.generate('Once upon a time', { steers: mood, values: { sentiment: 8 } });
 *   const happy = model.steered(mood, { sentiment: 8 });    // the same, bound (repeng's set_control, immutable)
 *   for await (const piece of happy.stream('Once upon a time')) process.stdout.write(piece);
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../formats/atomicWrite.js';
import type { DecoderConfig } from '../models/config.js';
import { generate, type GenerateRequest, type GenerateResult, type SampleSettings } from '../runtime/generate.js';
import { generationDefaults } from '../runtime/generationDefaults.js';
import { inspectIds, type Inspection } from '../runtime/inspect.js';
import { DEFAULT_MODEL, loadModel, type LoadedModel, type LoadModelOptions } from '../runtime/loadModel.js';
import { SteerSet, type SteerSetOptions } from '../steer/steerSet.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { runTraining, type TrainRunOptions, type TrainRunResult } from '../train/run.js';
import type { LossPoint } from '../train/checkpoint.js';
import { PAPER_SAMPLING, runEval, type EvalOptions, type EvalResult } from '../eval/run.js';
import { createScorer, type ScorerOptions } from '../eval/scorers/registry.js';
import type { Scorer } from '../eval/scorers/scorer.js';
import { fluencyModelOf } from '../eval/fluency.js';
import {
  explainSteerDims,
  explainText,
  type ExplainDimsOptions,
  type ExplainTextOptions,
  type SteerDimsReport,
  type TextExplanation,
} from '../lens/explain.js';
import { startServer, type RunningServer, type ServerOptions } from '../server/server.js';
import { saveSteer } from '../steer/steerFile.js';
import { transferSteerBetweenModels, type TransferModelsOptions, type TransferReport } from '../transfer/run.js';
import { LmSteerError } from '../util/errors.js';
import { shippedSteerDir } from '../util/packageFiles.js';

/** Steers and their values for one call: a set loaded for this model, and values by name (defaults apply). */
export interface SteerChoice {
  steers?: SteerSet;
  values?: Record<string, number>;
}

export interface GenerateCallOptions extends SampleSettings, SteerChoice {
  /** Aborting stops generation between decoder steps (CANCELLED). */
  signal?: AbortSignal;
}

/** One prompt of a batched call, with its own steer values and sampling. */
export interface PromptRequest extends Omit<GenerateRequest, 'steerScale'> {
  values?: Record<string, number>;
}

export interface TrainSteerOptions extends Omit<
  TrainRunOptions,
  'model' | 'data' | 'loaded' | 'outDir' | 'dev' | 'onStep'
> {
  /**
   * Labelled texts (each label is the steer value the text stands for, e.g. −1 / +1; label map `identity`
   * unless `labelMap` says otherwise), or dataset files (`path` or `path:label`) as `lmsteer train --data`
   * reads them.
   */
  data: { text: string; label: number }[] | string[];
  /** The steer folder to write (and resume in). */
  outDir: string;
  /** Held-out labelled texts or files for the loss diagnostic at the end. */
  dev?: { text: string; label: number }[] | string[];
  /** After every training step. */
  onProgress?: (p: LossPoint & { steps: number }) => void;
}

export interface EvaluateOptions extends Partial<Omit<EvalOptions, 'promptsPath' | 'outDir' | 'values'>>, SteerChoice {
  /** Prompts as texts, or a prompts file (.jsonl with prompt.text, or .txt). */
  prompts: string[] | string;
  /** Where generations.jsonl, report.json/.md and plots go (resumable). */
  outDir: string;
  /** A scorer name (vader, offensive-linear, linear, onnx-classifier, perspective) or a Scorer. */
  scorer?: string | Scorer;
  scorerOptions?: ScorerOptions;
  /** The evaluator LM for perplexity (default: this model, unsteered). */
  pplModel?: Model;
}

export class Model {
  private constructor(
    /** The loaded model underneath (decoder, weights, tokenizer): the lower-level API. */
    readonly loaded: LoadedModel,
  ) {}

  /** Open a model: a Hugging Face folder, a llama2.c .bin, an ONNX export, or a hub id (default: stories260K). */
  static async open(spec: string = DEFAULT_MODEL, opts: LoadModelOptions = {}): Promise<Model> {
    return new Model(await loadModel(spec, opts));
  }

  get id(): string {
    return this.loaded.id;
  }

  get config(): DecoderConfig {
    return this.loaded.cfg;
  }

  get tokenizer(): Tokenizer {
    return this.loaded.tokenizer;
  }

  /**
   * Steers for this model: steer folders (or the names of steers shipped with lmsteer), checked against the
   * model, with default values every call starts from.
   */
  steers(
    dirs: string | string[],
    values: Record<string, number> = {},
    opts: SteerSetOptions & { force?: boolean } = {},
  ): SteerSet {
    const paths = (Array.isArray(dirs) ? dirs : [dirs]).map((d) => (existsSync(d) ? d : (shippedSteerDir(d) ?? d)));
    return SteerSet.load(this.loaded, paths, values, opts);
  }

  /** A view of this model that generates with `steers` at `values` unless a call says otherwise. */
  steered(steers: SteerSet, values: Record<string, number> = {}): SteeredModel {
    return new SteeredModel(this, { steers, values });
  }

  /** The continuation of one prompt. Sampling defaults: the model's generation_config.json, then lmsteer's. */
  async generate(prompt: string, opts: GenerateCallOptions = {}): Promise<string> {
    const [r] = await this.generateMany([{ prompt, values: opts.values }], opts);
    return r!.samples[0]!.text;
  }

  /** Many prompts in one batch, each with its own steer values, samples and sampling settings. */
  async generateMany(
    requests: PromptRequest[],
    opts: GenerateCallOptions = {},
    hooks: { onToken?: (request: number, sample: number, delta: string) => void } = {},
  ): Promise<GenerateResult[]> {
    const { steers, values, signal, ...settings } = opts;
    const rows = requests.map(({ values: own, ...req }) => ({
      ...req,
      steerScale: steers?.resolve({ ...values, ...own }).scale,
    }));
    if (!steers && requests.some((r) => r.values && Object.keys(r.values).length > 0)) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        'steer values were given but no steers',
        'pass { steers: model.steers(…) }',
      );
    }
    return generate(
      this.loaded.decoder,
      this.loaded.tokenizer,
      rows,
      {
        ...generationDefaults(this.loaded.generationConfig).settings,
        ...definedSettings(settings),
        maxPositions: this.loaded.cfg.maxPositions,
        steer: steers?.directions,
      },
      { signal, onToken: hooks.onToken && ((_row, delta, _id, o) => hooks.onToken!(o.request, o.sample, delta)) },
    );
  }

  /** The continuation of one prompt as it is generated, piece by piece (the pieces concatenate to the text). */
  async *stream(prompt: string, opts: GenerateCallOptions = {}): AsyncGenerator<string, void, undefined> {
    const pieces: string[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    let failure: unknown;
    const run = this.generateMany([{ prompt, values: opts.values }], opts, {
      onToken: (_r, _s, delta) => {
        if (delta) pieces.push(delta);
        wake?.();
      },
    }).then(
      () => void (done = true),
      (e) => void ((failure = e), (done = true)),
    );
    void run.then(() => wake?.());
    for (;;) {
      while (pieces.length > 0) yield pieces.shift()!;
      if (done) break;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
    while (pieces.length > 0) yield pieces.shift()!;
    if (failure) throw failure;
  }

  /** Per-token log-probabilities and likely next tokens of a text, steered or not. */
  inspect(text: string, opts: SteerChoice & { top?: number } = {}): Promise<Inspection> {
    return inspectIds(this.loaded, this.loaded.tokenizer.encode(text), opts);
  }

  /**
   * Train a steer on labelled texts (the reference recipe by default) into `outDir`; an interrupted run
   * resumes there. Returns the trained steer loaded for this model, and the run's record.
   */
  async trainSteer(opts: TrainSteerOptions): Promise<{ steers: SteerSet; run: TrainRunResult }> {
    const { data, dev, onProgress, outDir, ...rest } = opts;
    const steps = rest.train?.steps ?? 1000;
    const run = await runTraining({
      ...rest,
      model: this.loaded.id,
      loaded: this.loaded,
      outDir,
      data: dataFiles(outDir, 'train', data),
      dev: dev && dataFiles(outDir, 'dev', dev),
      labelMap: rest.labelMap ?? (typeof data[0] === 'object' ? 'identity' : undefined),
      progress: rest.progress ?? false,
      log: rest.log ?? (() => {}),
      onStep: onProgress && ((p) => onProgress({ ...p, steps })),
    });
    return { steers: SteerSet.load(this.loaded, [outDir]), run };
  }

  /** The paper's evaluation protocol on prompts: samples, attribute scores, perplexity, diversity, a report. */
  async evaluate(opts: EvaluateOptions): Promise<EvalResult> {
    const { prompts, outDir, scorer, scorerOptions, pplModel, steers, values, ...rest } = opts;
    mkdirSync(outDir, { recursive: true });
    const promptsPath = Array.isArray(prompts) ? promptFile(outDir, prompts) : prompts;
    const sc = typeof scorer === 'object' ? scorer : await createScorer(scorer ?? 'vader', scorerOptions);
    return runEval(
      {
        ...PAPER_SAMPLING, // the protocol's sampling, as `lmsteer eval` uses it
        progress: false,
        ...rest,
        outDir,
        promptsPath,
        values,
      },
      {
        model: this.loaded,
        steers,
        scorer: sc,
        fluency: fluencyModelOf((pplModel ?? this).loaded),
        log: () => {},
      },
    );
  }

  /** The words a steer slot moves: SVD directions of P1·P2ᵀ, tokens ranked along each. */
  explainDims(steers: SteerSet, name: string, opts: ExplainDimsOptions = {}): SteerDimsReport {
    return explainSteerDims(this.loaded, steerNamed(steers, name), opts);
  }

  /** Which tokens and spans of a text carry a steer's style, and which value fits the text best. */
  explainText(steers: SteerSet, name: string, text: string, opts: ExplainTextOptions = {}): Promise<TextExplanation> {
    return explainText(this.loaded, steerNamed(steers, name), text, opts);
  }

  close(): void {
    this.loaded.close();
  }
}

/** A model with steers and values bound (`model.steered(…)`); a call's own values override the bound ones. */
export class SteeredModel {
  constructor(
    readonly model: Model,
    readonly choice: Required<SteerChoice>,
  ) {}

  private merged<T extends SteerChoice>(opts: T): T {
    return { ...opts, steers: opts.steers ?? this.choice.steers, values: { ...this.choice.values, ...opts.values } };
  }

  generate(prompt: string, opts: GenerateCallOptions = {}): Promise<string> {
    return this.model.generate(prompt, this.merged(opts));
  }

  generateMany(requests: PromptRequest[], opts: GenerateCallOptions = {}): Promise<GenerateResult[]> {
    return this.model.generateMany(requests, this.merged(opts));
  }

  stream(prompt: string, opts: GenerateCallOptions = {}): AsyncGenerator<string, void, undefined> {
    return this.model.stream(prompt, this.merged(opts));
  }

  inspect(text: string, opts: SteerChoice & { top?: number } = {}): Promise<Inspection> {
    return this.model.inspect(text, this.merged(opts));
  }
}

function steerNamed(steers: SteerSet, name: string) {
  const e = steers.get(name);
  if (!e)
    throw new LmSteerError(
      'NOT_FOUND',
      `no steer named "${name}" in the set`,
      `its steers: ${steers.names().join(', ') || '(none)'}`,
    );
  return e.steer;
}

function definedSettings(s: SampleSettings): SampleSettings {
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as SampleSettings;
}

/**
 * In-memory labelled texts become a JSONL file in the steer folder (`train.jsonl` / `dev.jsonl`, written
 * atomically), so the run is resumable and the steer records what it was trained on, as with files.
 */
function dataFiles(outDir: string, name: string, data: { text: string; label: number }[] | string[]): string[] {
  if (data.length === 0 || typeof data[0] === 'string') return data as string[];
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, `${name}.jsonl`);
  const lines = (data as { text: string; label: number }[]).map((e) =>
    JSON.stringify({ text: e.text, label: e.label }),
  );
  writeFileAtomic(path, lines.join('\n') + '\n');
  return [`${path}`];
}

/** Prompt texts as the protocol's prompts file (`prompts.jsonl` in the output folder). */
function promptFile(outDir: string, prompts: string[]): string {
  const path = join(outDir, 'prompts.jsonl');
  writeFileAtomic(path, prompts.map((text) => JSON.stringify({ prompt: { text } })).join('\n') + '\n');
  return path;
}

/**
 * Move steer `name` of `steers` (loaded for `from`) to the model `to`, through a linear map between the two
 * models' output embeddings fitted on their shared tokens; saved in `outDir` and returned loaded for `to`,
 * with the fit's errors.
 */
export function transferSteer(
  steers: SteerSet,
  name: string,
  from: Model,
  to: Model,
  outDir: string,
  opts: TransferModelsOptions = {},
): { steers: SteerSet; report: TransferReport } {
  const entry = steers.get(name);
  if (!entry)
    throw new LmSteerError(
      'NOT_FOUND',
      `no steer named "${name}" in the set`,
      `its steers: ${steers.names().join(', ')}`,
    );
  const moved = transferSteerBetweenModels(entry.steer, from.loaded, to.loaded, { sourcePath: entry.path, ...opts });
  saveSteer(outDir, moved.steer);
  return { steers: SteerSet.load(to.loaded, [outDir]), report: moved.report };
}

/** An OpenAI-compatible server over `model` with `steers` (see `lmsteer serve`); `port: 0` picks a free port. */
export function serve(
  model: Model,
  steers: SteerSet = SteerSet.empty(),
  opts: ServerOptions = {},
): Promise<RunningServer> {
  return startServer(model.loaded, steers, opts);
}
