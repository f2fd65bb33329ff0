/**
 * A reference LM-Steer checkpoint (.pt from Glaciohound/LM-Steer's train.py) → an lmsteer steer folder bound
 * to the base model it will run on. The .pt holds no model identity, so the model given is recorded as the
 * base (its embedding fingerprint, so loadSteer's check matches) and its hidden size is checked.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { importReferenceCheckpoint, referenceCheckpointToSteer } from '../formats/torchPt.js';
import { LmSteerError } from '../util/errors.js';
import type { Steer } from './steer.js';
import { saveSteer, STEER_JSON } from './steerFile.js';

export interface ImportTarget {
  id: string;
  cfg: { vocabSize: number; hiddenSize: number };
  fingerprint(): string;
}

export interface ImportSteerOptions {
  name?: string;
  slotNames?: string[];
  /** Replace a steer already in outDir. */
  overwrite?: boolean;
}

export function importReferenceSteer(
  ptPath: string,
  model: ImportTarget,
  outDir: string,
  opts: ImportSteerOptions = {},
): Steer {
  if (existsSync(join(outDir, STEER_JSON)) && !opts.overwrite) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${outDir} already holds a steer (steer.json)`,
      'choose another --out folder, or pass --overwrite',
    );
  }
  const ckpt = importReferenceCheckpoint(ptPath);
  const steer = referenceCheckpointToSteer(
    ckpt,
    {
      id: model.id,
      embeddingFingerprint: model.fingerprint(),
      vocabSize: model.cfg.vocabSize,
      hiddenSize: model.cfg.hiddenSize,
    },
    { name: opts.name, slotNames: opts.slotNames },
  );
  saveSteer(outDir, steer);
  return steer;
}
