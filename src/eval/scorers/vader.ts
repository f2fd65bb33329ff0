/**
 * vader: the VADER lexicon sentiment model (npm vader-sentiment, a port of Hutto & Gilbert 2014). No model
 * file, no network; useful as a fast, dependency-free positive-sentiment scorer.
 *
 * VADER's own convention calls a text positive when its compound score c ≥ 0.05. The metrics call a text
 * positive when its score is > 0.5, so c is mapped monotonically onto [0, 1] with that boundary preserved:
 *   c ≥ 0.05 → 0.5 + 0.5·(c − 0.05)/0.95, at least the next double above 0.5   (positive: (0.5, 1])
 *   c < 0.05 → 0.5·(c + 1)/1.05                                               (not positive: [0, 0.5))
 * The value is probability-like (ordered, in [0, 1]), not a calibrated probability.
 */
import { createRequire } from 'node:module';
import type { Scorer } from './scorer.js';

interface VaderModule {
  SentimentIntensityAnalyzer: {
    polarity_scores(text: string): { neg: number; neu: number; pos: number; compound: number };
  };
}
// The package is CommonJS without type declarations; require() it and describe the one call we use.
const require = createRequire(import.meta.url);
const vader = require('vader-sentiment') as VaderModule;
const VADER_VERSION = (require('vader-sentiment/package.json') as { version: string }).version;

/** VADER's conventional positive threshold on the compound score. */
export const VADER_POSITIVE_COMPOUND = 0.05;
const ABOVE_HALF = 0.5 + Number.EPSILON / 2; // the next double above 0.5

/** The compound score of one text, in [-1, 1]. */
export function vaderCompound(text: string): number {
  return vader.SentimentIntensityAnalyzer.polarity_scores(text).compound;
}

/** The mapping described above: > 0.5 exactly when c ≥ 0.05. */
export function compoundToScore(c: number): number {
  if (c >= VADER_POSITIVE_COMPOUND)
    return Math.max(ABOVE_HALF, 0.5 + (0.5 * (c - VADER_POSITIVE_COMPOUND)) / (1 - VADER_POSITIVE_COMPOUND));
  return Math.max(0, (0.5 * (c + 1)) / (1 + VADER_POSITIVE_COMPOUND));
}

export class VaderScorer implements Scorer {
  readonly name = 'vader';
  readonly attribute = 'positive-sentiment';
  readonly version = `vader-sentiment@${VADER_VERSION} compound>=${VADER_POSITIVE_COMPOUND}`;
  async score(texts: readonly string[]): Promise<number[]> {
    return texts.map((t) => compoundToScore(vaderCompound(t)));
  }
}
