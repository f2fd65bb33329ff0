/**
 * Training checkpoints in `<out>/checkpoint/`: everything a resumed run needs to continue exactly where the
 * last one stopped — P1/P2 (packed, as trained), Adam's moments and step, the loss history, the sampler
 * position, and the options that shaped the run (so a changed option is noticed, not silently mixed in).
 *
 *   tensors-<step>.safetensors   p1 [d,K], p2t [K,d], adam.m.p1, adam.v.p1, adam.m.p2t, adam.v.p2t
 *   checkpoint.json              step, the tensors file name + sha256, sampler, options, history
 * The tensors file is written first (atomically), then checkpoint.json (atomically) pointing at it, then older
 * tensors files are deleted; a run killed at any moment leaves a json that points at a complete file.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { makeDir } from '../formats/outDir.js';
import { join } from 'node:path';
import { writeJsonAtomic } from '../formats/atomicWrite.js';
import { readAllSafetensors, writeSafetensors } from '../formats/safetensors.js';
import { LmSteerError } from '../util/errors.js';
import { tensor, type Tensor } from '../util/tensor.js';
import type { AdamState } from './adam.js';

export const CHECKPOINT_DIR = 'checkpoint';
const JSON_NAME = 'checkpoint.json';
const FORMAT = 'lmsteer-train-checkpoint-v1';

export interface LossPoint {
  step: number;
  /** Mean next-token cross-entropy of the batch (without the regularizer). */
  loss: number;
  /** Token positions in the loss. */
  tokens: number;
}

/** Where the seeded batch sampler is: epoch e's order is a permutation drawn from (seed, e). */
export interface SamplerState {
  seed: number;
  epoch: number;
  batchInEpoch: number;
}

export interface Checkpoint {
  step: number;
  p1: Tensor; // [d, K]
  p2t: Tensor; // [K, d]
  adam: AdamState; // parameter order: p1, p2t
  history: LossPoint[];
  sampler: SamplerState;
  /** The options that must match to resume (trainLoop's resumeKey). */
  options: Record<string, unknown>;
}

export function checkpointDir(outDir: string): string {
  return join(outDir, CHECKPOINT_DIR);
}

export function hasCheckpoint(outDir: string): boolean {
  return existsSync(join(checkpointDir(outDir), JSON_NAME));
}

export function saveCheckpoint(outDir: string, ck: Checkpoint): void {
  const dir = checkpointDir(outDir);
  makeDir(dir, 'checkpoint folder');
  const name = `tensors-${String(ck.step).padStart(7, '0')}.safetensors`;
  const [d, K] = ck.p1.shape as [number, number];
  writeSafetensors(
    join(dir, name),
    {
      p1: ck.p1,
      p2t: ck.p2t,
      'adam.m.p1': tensor([d, K], ck.adam.m[0]),
      'adam.v.p1': tensor([d, K], ck.adam.v[0]),
      'adam.m.p2t': tensor([K, d], ck.adam.m[1]),
      'adam.v.p2t': tensor([K, d], ck.adam.v[1]),
    },
    { metadata: { format: FORMAT, step: String(ck.step) } },
  );
  writeJsonAtomic(join(dir, JSON_NAME), {
    format: FORMAT,
    step: ck.step,
    adamStep: ck.adam.step,
    tensors: name,
    sha256: sha256File(join(dir, name)),
    sampler: ck.sampler,
    options: ck.options,
    history: ck.history,
  });
  // Older tensors files and temp files of writes a killed run left behind.
  for (const f of readdirSync(dir)) {
    if (
      (f.startsWith('tensors-') && f.endsWith('.safetensors') && f !== name) ||
      (f.startsWith('.tensors-') && f.endsWith('.tmp'))
    ) {
      try {
        unlinkSync(join(dir, f));
      } catch {
        // another process may have removed it; nothing to do
      }
    }
  }
}

/** The checkpoint in `outDir`, or undefined when there is none; BAD_FILE when it is damaged. */
export function loadCheckpoint(outDir: string): Checkpoint | undefined {
  const dir = checkpointDir(outDir);
  const jsonPath = join(dir, JSON_NAME);
  if (!existsSync(jsonPath)) return undefined;
  const damaged = (why: string): never => {
    throw new LmSteerError('BAD_FILE', `checkpoint ${jsonPath}: ${why}`, `delete ${dir} to start training over`);
  };
  let j: Record<string, any>;
  try {
    j = JSON.parse(readFileSync(jsonPath, 'utf8'));
  } catch (e) {
    return damaged(`not valid JSON (${(e as Error).message})`);
  }
  if (j.format !== FORMAT) damaged(`unknown format ${JSON.stringify(j.format)}`);
  if (!Number.isInteger(j.step) || j.step < 0 || typeof j.tensors !== 'string' || !Array.isArray(j.history))
    damaged('missing step, tensors or history');
  const tpath = join(dir, j.tensors);
  if (!existsSync(tpath)) damaged(`its tensors file ${j.tensors} is missing`);
  if (sha256File(tpath) !== j.sha256) damaged(`its tensors file ${j.tensors} does not match the recorded sha256`);
  const { tensors } = readAllSafetensors(tpath);
  const get = (n: string): Tensor => tensors[n] ?? damaged(`tensor ${n} missing from ${j.tensors}`);
  return {
    step: j.step,
    p1: get('p1'),
    p2t: get('p2t'),
    adam: {
      step: j.adamStep,
      m: [get('adam.m.p1').data, get('adam.m.p2t').data],
      v: [get('adam.v.p1').data, get('adam.v.p2t').data],
    },
    history: j.history,
    sampler: j.sampler,
    options: j.options ?? {},
  };
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}
