/**
 * Per-token evidence for a steer slot, and the steer value that best explains a text. Pure functions over
 * log-probabilities/losses the runtime computes; the formulas follow the reference's LMSteerBase
 * (Glaciohound/LM-Steer lm_steer/models/model_base.py: evidence_words and steer_analysis).
 */
import { LmSteerError } from '../util/errors.js';
import { bestSpans, type SpanOptions } from './spans.js';

/**
 * evidence[t] = log p(token | slot at +1) − log p(token | slot at −1), as the reference's
 * `token_evidence = -loss_token[0] + loss_token[1]` with steer values (+1, −1).
 */
export function tokenEvidence(logProbPlus: readonly number[], logProbMinus: readonly number[]): number[] {
  if (logProbPlus.length !== logProbMinus.length) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `${logProbPlus.length} log-probs at +1 but ${logProbMinus.length} at −1`,
      'score the same tokens under both steer values',
    );
  }
  return logProbPlus.map((p, i) => p - logProbMinus[i]!);
}

export interface EvidenceToken {
  text: string;
  /** null for the first token, which nothing predicts. */
  evidence: number | null;
}

export interface TextEvidence {
  tokens: EvidenceToken[];
  /** Half-open token ranges (indices into `tokens`). */
  spans: [number, number][];
  /** Summed evidence inside the spans. */
  total: number;
}

/**
 * Evidence for a whole text: `tokenTexts` has one entry per token of the encoded text; the log-prob arrays hold
 * log p(token t | tokens < t) for t = 1 … n−1 (length n − 1). Spans are found on that array and shifted by one,
 * as the reference does (`(_seg[0]+1, _seg[1]+1)`), so they index `tokens`.
 */
export function textEvidence(
  tokenTexts: readonly string[],
  logProbPlus: readonly number[],
  logProbMinus: readonly number[],
  spanOptions: Partial<SpanOptions> = {},
): TextEvidence {
  const ev = tokenEvidence(logProbPlus, logProbMinus);
  if (tokenTexts.length === 0 || ev.length !== tokenTexts.length - 1) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `${tokenTexts.length} tokens need ${Math.max(tokenTexts.length - 1, 0)} log-probs (one per predicted token), got ${ev.length}`,
      'pass log p(token t | tokens before t) for t = 1 … n−1',
    );
  }
  const { spans, total } = bestSpans(ev, spanOptions);
  return {
    tokens: tokenTexts.map((text, t) => ({ text, evidence: t === 0 ? null : ev[t - 1]! })),
    spans: spans.map(([a, b]) => [a + 1, b + 1]),
    total,
  };
}

/** The reference app's grid: 13 values from −3 to 3 (`bins=4*int(steer_range)+1`, step 0.5). */
export function valueGrid(min = -3, max = 3, steps = 13): number[] {
  if (!(Number.isFinite(min) && Number.isFinite(max) && max > min) || !Number.isInteger(steps) || steps < 2) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `value grid from ${min} to ${max} in ${steps} steps is invalid`,
      'use min < max and at least 2 steps, e.g. -3 3 13',
    );
  }
  return Array.from({ length: steps }, (_, i) => min + ((max - min) / (steps - 1)) * i);
}

export interface ValueFit {
  /** The grid value with the lowest mean loss (the first on ties, like torch's argmin). */
  best: number;
  bestIndex: number;
  /** softmax((mean(loss) − loss) · sharpness) over the grid; sums to 1. */
  distribution: number[];
}

/**
 * Which steer value fits a text best, given the mean token loss (−mean log-prob) at each grid value.
 * Exactly the reference's steer_analysis: `dist = ((- loss + loss.mean()) * 10).softmax(0)`,
 * `best_guess = loss.argmin(0)`. The ×10 (a temperature of 0.1 nats) is a display choice of the reference;
 * it is the default `sharpness` here.
 */
export function valueDistribution(values: readonly number[], meanLosses: readonly number[], sharpness = 10): ValueFit {
  if (values.length === 0 || values.length !== meanLosses.length) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `${values.length} steer values but ${meanLosses.length} losses`,
      'give one mean loss per grid value',
    );
  }
  const bad = meanLosses.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0)
    throw new LmSteerError('BAD_DATA', `loss at value ${values[bad]} is ${meanLosses[bad]}`, 'the text may be empty');
  const mean = meanLosses.reduce((a, b) => a + b, 0) / meanLosses.length;
  const logits = meanLosses.map((l) => (mean - l) * sharpness);
  const top = Math.max(...logits);
  const exps = logits.map((z) => Math.exp(z - top));
  const z = exps.reduce((a, b) => a + b, 0);
  let bestIndex = 0;
  meanLosses.forEach((l, i) => {
    if (l < meanLosses[bestIndex]!) bestIndex = i;
  });
  return { best: values[bestIndex]!, bestIndex, distribution: exps.map((x) => x / z) };
}
