/**
 * A steer on disk is a folder:
 *   steer.safetensors  projector1, projector2 : [S, d, r] float32
 *   steer.json         the SteerConfig (base model + fingerprint, eps, rank, slots, training info, metrics)
 * Both are written atomically, tensors first and json last, so a folder that has steer.json is complete.
 */
import { existsSync, statSync } from 'node:fs';
import { makeDir } from '../formats/outDir.js';
import { basename, dirname, join, resolve } from 'node:path';
import { writeJsonAtomic } from '../formats/atomicWrite.js';
import { readAllSafetensors, writeSafetensors } from '../formats/safetensors.js';
import { checkInside, readJsonFile } from '../formats/safeRead.js';
import { LmSteerError } from '../util/errors.js';
import {
  describeIssues,
  STEER_FORMAT_VERSION,
  steerConfigSchema,
  validateSteer,
  withCurrentSlotNames,
  type Steer,
  type SteerConfig,
} from './steer.js';

export const STEER_JSON = 'steer.json';
export const STEER_TENSORS = 'steer.safetensors';

export function saveSteer(dir: string, steer: Steer): void {
  validateSteer(steer);
  makeDir(dir, 'steer folder');
  writeSafetensors(
    join(dir, STEER_TENSORS),
    { projector1: steer.p1, projector2: steer.p2 },
    { metadata: { format: 'lmsteer', formatVersion: String(STEER_FORMAT_VERSION) } },
  );
  writeJsonAtomic(join(dir, STEER_JSON), steer.config);
}

export interface LoadSteerOptions {
  /** The fingerprint of the model the steer will run on; a different one is refused unless `force`. */
  expectFingerprint?: string;
  /** That model's id, for the message. */
  expectModelId?: string;
  /** That model's hidden size: a steer of another width cannot run at all, even with `force`. */
  expectHiddenSize?: number;
  force?: boolean;
}

/**
 * Load a steer folder (a path to its steer.json or steer.safetensors works too). The steer's name defaults to
 * the folder name when steer.json has none.
 */
export function loadSteer(path: string, opts: LoadSteerOptions = {}): Steer {
  const dir = resolveSteerDir(path);
  const jsonPath = join(dir, STEER_JSON);
  const tensorPath = join(dir, STEER_TENSORS);
  const config = readConfig(jsonPath);
  if (!existsSync(tensorPath)) {
    throw new LmSteerError(
      'NOT_FOUND',
      `steer folder ${dir} has ${STEER_JSON} but no ${STEER_TENSORS}`,
      'the folder is incomplete; copy the whole steer folder',
    );
  }
  checkInside(tensorPath, dir, 'steer tensors'); // a link out of the folder is not part of the steer
  const { tensors } = readAllSafetensors(tensorPath);
  const p1 = tensors.projector1;
  const p2 = tensors.projector2;
  for (const [name, t] of [
    ['projector1', p1],
    ['projector2', p2],
  ] as const) {
    if (!t)
      throw new LmSteerError(
        'BAD_FILE',
        `${tensorPath} has no tensor "${name}" (it has: ${Object.keys(tensors).join(', ') || 'none'})`,
        'this is not an lmsteer steer file',
      );
  }
  const steer: Steer = {
    config: withCurrentSlotNames({ ...config, name: config.name ?? basename(dir) }),
    p1: p1!,
    p2: p2!,
  };
  validateSteer(steer, dir);

  const base = config.baseModel;
  if (opts.expectHiddenSize !== undefined && opts.expectHiddenSize !== base.hiddenSize) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `steer ${dir} was trained for ${base.id} (hidden size ${base.hiddenSize}), but ${opts.expectModelId ?? 'this model'} has hidden size ${opts.expectHiddenSize}`,
      'a steer cannot run on a model of another width: load the model it was trained for, or map the steer to this model with a transfer',
    );
  }
  if (opts.expectFingerprint !== undefined && opts.expectFingerprint !== base.embeddingFingerprint && !opts.force) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `steer ${dir} was trained for ${base.id} (embeddings ${base.embeddingFingerprint}), not for ${opts.expectModelId ?? 'this model'} (embeddings ${opts.expectFingerprint})`,
      'load the model it was trained for, or pass --force to apply it anyway (the same architecture fine-tuned may still work)',
    );
  }
  return steer;
}

function resolveSteerDir(path: string): string {
  const p = resolve(path);
  if (!existsSync(p))
    throw new LmSteerError(
      'NOT_FOUND',
      `steer ${path} does not exist`,
      'pass a steer folder (one holding steer.json and steer.safetensors)',
    );
  if (statSync(p).isDirectory()) return p;
  if (p.endsWith('.pt')) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${path} is a PyTorch checkpoint, not a steer folder`,
      'convert it to a steer folder first with the reference-checkpoint import (see `lmsteer --help`)',
    );
  }
  const name = basename(p);
  if (name === STEER_JSON || name === STEER_TENSORS) return dirname(p);
  throw new LmSteerError(
    'BAD_ARGUMENT',
    `${path} is a file, not a steer folder`,
    'pass a steer folder (one holding steer.json and steer.safetensors)',
  );
}

function readConfig(jsonPath: string): SteerConfig {
  if (!existsSync(jsonPath)) {
    const dir = dirname(jsonPath);
    const partial = existsSync(join(dir, STEER_TENSORS));
    throw new LmSteerError(
      'NOT_FOUND',
      `${dir} is not a steer folder: ${STEER_JSON} is missing`,
      partial
        ? 'the steer was not completely saved (steer.json is written last); save or train it again'
        : 'pass a folder written by lmsteer (steer.json + steer.safetensors)',
    );
  }
  // Only a regular file inside the folder: a steer.json linked to /etc/passwd is refused, and parse errors
  // never quote the bytes.
  const raw = readJsonFile(jsonPath, { within: dirname(jsonPath), hint: 'restore the file from the original steer' });
  const version = (raw as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof version === 'number' && version > STEER_FORMAT_VERSION) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${jsonPath} has formatVersion ${version}; this lmsteer reads version ${STEER_FORMAT_VERSION}`,
      'upgrade lmsteer',
    );
  }
  const parsed = steerConfigSchema.safeParse(raw);
  if (!parsed.success)
    throw new LmSteerError(
      'BAD_FILE',
      `${jsonPath}: ${describeIssues(parsed.error)}`,
      'fix the field named, or re-create the steer',
    );
  return parsed.data;
}
