/** Flags several commands share: which model, which steers at which values, threads. */
import type { Command } from 'commander';
import { DEFAULT_MODEL, loadModel, type LoadedModel } from '../runtime/loadModel.js';
import { SteerSet } from '../steer/steerSet.js';
import { collect, intOption, parseValues } from './options.js';

export interface ModelFlags {
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
  return cmd
    .option(
      '-m, --model <spec>',
      `model: a Hugging Face folder, a llama2.c .bin, or a hub id (gpt2, org/name@rev)`,
      DEFAULT_MODEL,
    )
    .option('--threads <n>', 'CPU threads for ONNX Runtime (default: all cores)', intOption('--threads', 1, 1024))
    .option('--offline', 'never touch the network; use the local Hugging Face cache only');
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

export async function openModel(flags: ModelFlags): Promise<LoadedModel> {
  return loadModel(flags.model, { threads: flags.threads, hub: { offline: flags.offline || undefined } });
}

/** The --steer folders (checked against the model) with --value as their values, and that row's steer_scale. */
export function openSteers(model: LoadedModel, flags: SteerFlags): { steers: SteerSet; scale?: Float32Array } {
  const steers = SteerSet.load(model, flags.steer, parseValues(flags.value), { force: flags.force });
  return { steers, scale: steers.resolve().scale };
}
