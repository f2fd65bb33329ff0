/** Flags several commands share: which model, in which precision, which steers at which values, threads. */
import cliProgress from 'cli-progress';
import { Option, type Command } from 'commander';
import {
  HEAD_DTYPES,
  parseHeadDType,
  parseWeightDType,
  WEIGHT_DTYPES,
  type HeadDType,
  type WeightDType,
} from '../graph/buildOptions.js';
import { DEFAULT_MODEL, loadModel, type LoadedModel, type LoadModelOptions } from '../runtime/loadModel.js';
import { peakRssBytes, type SessionLoadInfo } from '../runtime/session.js';
import { SteerSet } from '../steer/steerSet.js';
import { formatBinaryBytes } from '../util/bytes.js';
import { collect, floatOption, intOption, parseValues } from './options.js';

export interface PrecisionFlags {
  dtype?: WeightDType;
  head?: HeadDType;
  /** false with --no-prepack. */
  prepack?: boolean;
  verbose?: boolean;
}
export interface ModelFlags extends PrecisionFlags {
  model: string;
  threads?: number;
  offline?: boolean;
}
export interface SteerFlags {
  steer: string[];
  value: string[];
  force?: boolean;
}

export function addModelFlags(cmd: Command): Command {
  cmd
    .option(
      '-m, --model <spec>',
      `model: a Hugging Face folder, a llama2.c .bin, or a hub id (gpt2, org/name@rev)`,
      DEFAULT_MODEL,
    )
    .option('--threads <n>', 'CPU threads for ONNX Runtime (default: all cores)', intOption('--threads', 1, 1024))
    .option('--offline', 'never touch the network; use the local Hugging Face cache only');
  return addPrecisionFlags(cmd);
}

/** --dtype, --head, --verbose: how a model is built and what its load cost (commands with their own model flags). */
export function addPrecisionFlags(cmd: Command): Command {
  return cmd
    .option(
      '--dtype <dtype>',
      `decoder weights: ${WEIGHT_DTYPES.join(' | ')} (default: fp32 when its float32 weights take under a quarter of this machine's memory, else q8 when its 8-bit weights take under 40%, else q4; printed)`,
      (v: string) => parseWeightDType(v),
    )
    .option(
      '--head <dtype>',
      `LM head: ${HEAD_DTYPES.join(' | ')} (default: fp32 for an fp32 body, the exact steer; q8 for q8 / q4 bodies: smaller and faster, the steering effect within ~1%; q4, never a default: smaller and faster still, the steering effect within ~10%)`,
      (v: string) => parseHeadDType(v),
    )
    .option(
      '--no-prepack',
      'fp32 only: leave the weights in the cached file instead of packing a copy for ONNX Runtime: ~4x faster warm loads, ~20% less memory; decoding ~8% slower at batch 1, prompts ~13%, batches ~27%',
    )
    .option('--verbose', 'print how the model loaded: graph built (cold) or cached (warm), times, peak memory');
}

/**
 * What loadModel gets from the flags. A cold load (the graph built: minutes for a multi-GB model) always shows
 * its progress on stderr, as a bar on a terminal, else as a line when it starts and one when it ends; with
 * --verbose every load is reported once the session is open.
 */
export function modelLoadOptions(flags: Omit<ModelFlags, 'model'>): LoadModelOptions {
  const t0 = performance.now();
  return {
    threads: flags.threads,
    hub: { offline: flags.offline || undefined },
    dtype: flags.dtype,
    head: flags.head,
    prepack: flags.prepack === false ? false : undefined,
    onBuildProgress: buildProgressReporter(),
    onLoaded: flags.verbose
      ? (i) => process.stderr.write(`lmsteer: ${describeLoad(i, performance.now() - t0)}\n`)
      : undefined,
  };
}

/** An onBuildProgress for the CLI: a bar of the weight bytes made on a terminal, else a start and an end line. */
export function buildProgressReporter(
  stream: NodeJS.WriteStream = process.stderr,
): NonNullable<LoadModelOptions['onBuildProgress']> {
  let bar: cliProgress.SingleBar | undefined;
  let t0: number | undefined; // set while a build is under way
  const GiB = 2 ** 30;
  return (done, total, dir) => {
    if (t0 === undefined) {
      t0 = performance.now();
      const what = `building the graph (${formatBinaryBytes(total)} of weights; first load of this model in this precision${dir ? `, kept in ${dir}` : ''})`;
      if (!stream.isTTY) {
        stream.write(`lmsteer: ${what} …\n`);
        return;
      }
      stream.write(`lmsteer: ${what}\n`);
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: 'lmsteer: building [{bar}] {percentage}% | {done} of {all} GiB | ETA {eta_formatted}',
          etaBuffer: 20,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, { done: '0.00', all: (total / GiB).toFixed(2) });
      return;
    }
    bar?.update(done, { done: (done / GiB).toFixed(2) });
    if (done >= total) {
      bar?.stop();
      bar = undefined;
      stream.write(`lmsteer: graph built in ${((performance.now() - t0) / 1000).toFixed(1)} s; opening it …\n`);
      t0 = undefined;
    }
  };
}

/** One line on a load: cold or warm, where the time went, the graph's bytes, peak memory after the build and now. */
export function describeLoad(i: SessionLoadInfo, totalMs: number): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const parts = [
    `load ${s(totalMs)}, ${i.cacheHit ? 'warm (graph from the cache)' : 'cold (graph built)'}`,
    `key ${s(i.keyMs)} + build ${s(i.buildMs)} + session ${s(i.sessionMs)}`,
  ];
  if (i.cacheBytes !== undefined) parts.push(`graph ${formatBinaryBytes(i.cacheBytes)} on disk`);
  if (i.buildPeakRssBytes !== undefined)
    parts.push(`peak RSS ${formatBinaryBytes(i.buildPeakRssBytes)} after the build`);
  parts.push(`peak RSS ${formatBinaryBytes(peakRssBytes())}`);
  return `${parts.join(', ')}${i.dir ? ` (${i.dir})` : ''}`;
}

/** The default precision's reason, once per model load, on stderr (when lmsteer chose it). */
export function announceModel(model: LoadedModel): void {
  if (model.buildNote) process.stderr.write(`lmsteer: ${model.id}: ${model.buildNote}\n`);
}

export function addSteerFlags(cmd: Command): Command {
  return cmd
    .option('--steer <dir>', 'a steer folder (steer.json + steer.safetensors); repeat to compose steers', collect, [])
    .option(
      '--value <name=v>',
      'a steer value, e.g. sentiment=3 (negative steers the other way); repeatable',
      collect,
      [],
    )
    .option('--force', 'use a steer even if it was trained for another base model');
}

/**
 * The sampling flags generate and eval both take, each with one spelling and one range, so the two commands
 * cannot drift apart. Help and default stay each command's own: generate defers to generation_config.json,
 * eval fixes the paper's protocol.
 */
const SAMPLING_FLAGS = {
  maxNewTokens: ['-n, --max-new-tokens <n>', intOption('--max-new-tokens', 1, 1_000_000)],
  temperature: ['-t, --temperature <t>', floatOption('--temperature', 0, 100)],
  topK: ['--top-k <k>', intOption('--top-k', 0, 10_000_000)],
  topP: ['--top-p <p>', floatOption('--top-p', Number.MIN_VALUE, 1)],
  seed: ['-s, --seed <s>', intOption('--seed', 0, 2 ** 32 - 1)],
} as const;

/** One of the shared sampling flags, for `cmd.addOption(...)` (where the command lists it, so its help order stays). */
export function samplingOption(name: keyof typeof SAMPLING_FLAGS, description: string, defaultValue?: number): Option {
  const [flags, parse] = SAMPLING_FLAGS[name];
  return new Option(flags, description).default(defaultValue).argParser(parse);
}

export async function openModel(flags: ModelFlags): Promise<LoadedModel> {
  const model = await loadModel(flags.model, modelLoadOptions(flags));
  announceModel(model);
  return model;
}

/** The --steer folders (checked against the model) with --value as their values, and that row's steer_scale. */
export function openSteers(model: LoadedModel, flags: SteerFlags): { steers: SteerSet; scale?: Float32Array } {
  const steers = SteerSet.load(model, flags.steer, parseValues(flags.value), { force: flags.force });
  return { steers, scale: steers.resolve().scale };
}
