/**
 * Move a steer between two loaded models (the CLI's `transfer` and the server call this): match their
 * vocabularies, fit the embedding map, apply it (transferSteer.ts), and bind the result to the target model —
 * its steer.json names model B's embedding fingerprint and records where the steer came from and how well the
 * map fit, so a reader can judge the transfer later.
 */
import type { LoadedModel } from '../runtime/loadModel.js';
import type { Steer, SteerConfig } from '../steer/steer.js';
import { LmSteerError } from '../util/errors.js';
import type { FitOptions } from './fit.js';
import { transferSteer } from './transferSteer.js';

export type TransferModel = Pick<LoadedModel, 'id' | 'tokenizer' | 'outputEmbeddings' | 'fingerprint'>;

export interface TransferModelsOptions extends FitOptions {
  /** Scale each row of the map to unit norm, as the reference does (default true). */
  normalizeRows?: boolean;
  /** Transfer even when the steer's fingerprint is not model A's (the hidden size must still match). */
  force?: boolean;
  /** The source steer's folder, recorded in the new steer.json. */
  sourcePath?: string;
}

export interface TransferReport {
  from: { id: string; embeddingFingerprint: string };
  to: { id: string; embeddingFingerprint: string };
  sharedTokens: number;
  /** ‖E_B·H − E_A‖/‖E_A‖ on held-out shared tokens (null when none were held out). */
  heldOutError: number | null;
  trainError: number;
  normalizeRows: boolean;
}

export function transferSteerBetweenModels(
  steer: Steer,
  from: TransferModel,
  to: TransferModel,
  opts: TransferModelsOptions = {},
): { steer: Steer; report: TransferReport } {
  const { normalizeRows = true, force = false, sourcePath, ...fit } = opts;
  const eA = from.outputEmbeddings();
  const eB = to.outputEmbeddings();
  const base = steer.config.baseModel;
  const name = steer.config.name ?? 'steer';
  if (base.hiddenSize !== eA.shape[1]) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `steer ${name} has hidden size ${base.hiddenSize} but the source model ${from.id} has ${eA.shape[1]}`,
      'pass as --from the model the steer was trained for',
    );
  }
  const fpA = from.fingerprint();
  if (base.embeddingFingerprint !== fpA && !force) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `steer ${name} was trained for ${base.id} (embeddings ${base.embeddingFingerprint}), not for the source model ${from.id} (embeddings ${fpA})`,
      'pass as --from the model the steer was trained for, or --force to transfer it anyway',
    );
  }
  const moved = transferSteer(
    steer,
    { embeddings: eA, tokenizer: from.tokenizer },
    { embeddings: eB, tokenizer: to.tokenizer },
    { ...fit, normalizeRows },
  );
  const report: TransferReport = {
    from: { id: from.id, embeddingFingerprint: fpA },
    to: { id: to.id, embeddingFingerprint: to.fingerprint() },
    sharedTokens: moved.sharedTokens,
    heldOutError: Number.isFinite(moved.heldOutError) ? moved.heldOutError : null,
    trainError: moved.trainError,
    normalizeRows,
  };
  // Metrics measured on model A do not hold on B: they move into `source`, not `metrics`.
  const { metrics, source, ...rest } = steer.config;
  const config: SteerConfig = {
    ...rest,
    baseModel: {
      id: to.id,
      embeddingFingerprint: report.to.embeddingFingerprint,
      vocabSize: eB.shape[0]!,
      hiddenSize: eB.shape[1]!,
    },
    source: {
      kind: 'transfer',
      ...(sourcePath !== undefined ? { path: sourcePath } : {}),
      steer: name,
      fromModel: { ...report.from, vocabSize: base.vocabSize, hiddenSize: base.hiddenSize },
      sharedTokens: report.sharedTokens,
      heldOutError: report.heldOutError,
      trainError: report.trainError,
      normalizeRows,
      ...(source ? { previousSource: source } : {}),
      ...(metrics ? { sourceMetrics: metrics } : {}),
    },
  };
  return { steer: { config, p1: moved.p1, p2: moved.p2 }, report };
}
