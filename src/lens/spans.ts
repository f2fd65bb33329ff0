/**
 * The text spans that most support a steer: the ≤ maxSpans disjoint spans of ≤ maxLen tokens, ≥ minGap tokens
 * apart, with the largest summed evidence. Exact dynamic programming, as the reference's find_max_subspans
 * (Glaciohound/LM-Steer lm_steer/models/model_utils.py; called with 4 spans of ≤ 10 tokens by evidence_words
 * in model_base.py). Like the reference, the empty choice scores 0, so all-negative evidence gives no span,
 * and spans there can never touch (a new one starts only after an untaken token), i.e. minGap = 1.
 */
import { LmSteerError } from '../util/errors.js';

export interface SpanOptions {
  maxSpans: number;
  maxLen: number;
  minGap: number;
}

export interface SpanResult {
  /** Half-open [start, end) token ranges, in order. */
  spans: [number, number][];
  /** Summed evidence inside the spans (0 when there are none). */
  total: number;
}

export const DEFAULT_SPAN_OPTIONS: SpanOptions = { maxSpans: 4, maxLen: 10, minGap: 1 };

export function bestSpans(evidence: readonly number[], options: Partial<SpanOptions> = {}): SpanResult {
  const { maxSpans: K, maxLen: L, minGap: G } = { ...DEFAULT_SPAN_OPTIONS, ...options };
  const intOk = (x: number, min: number) => Number.isInteger(x) && x >= min;
  if (!intOk(K, 0) || !intOk(L, 1) || !intOk(G, 0)) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `span options maxSpans=${K}, maxLen=${L}, minGap=${G} are invalid`,
      'use integers: maxSpans ≥ 0, maxLen ≥ 1, minGap ≥ 0',
    );
  }
  const bad = evidence.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) {
    throw new LmSteerError(
      'BAD_DATA',
      `evidence[${bad}] is ${evidence[bad]}`,
      'evidence must be finite log-probability differences',
    );
  }
  const n = evidence.length;
  // States after a token: O(j, c) = outside, j spans used, c = min(tokens since the last span, G) (before the
  // first span c = G, i.e. free to start); I(j, l) = inside span number j, which has l tokens so far.
  const nO = (K + 1) * (G + 1);
  const nStates = nO + K * L;
  const oIdx = (j: number, c: number) => j * (G + 1) + c;
  const iIdx = (j: number, l: number) => nO + (j - 1) * L + (l - 1);
  let score = new Float64Array(nStates).fill(-Infinity);
  score[oIdx(0, G)] = 0;
  const pred = new Int32Array(n * nStates).fill(-1);

  for (let t = 0; t < n; t++) {
    const x = evidence[t]!;
    const next = new Float64Array(nStates).fill(-Infinity);
    const p = t * nStates;
    // Strict '>' with "outside" moves tried first: on ties the DP prefers fewer highlighted tokens.
    const relax = (to: number, from: number, value: number) => {
      if (value > next[to]!) {
        next[to] = value;
        pred[p + to] = from;
      }
    };
    for (let j = 0; j <= K; j++) {
      for (let c = 0; c <= G; c++) {
        const from = oIdx(j, c);
        if (score[from] === -Infinity) continue;
        relax(oIdx(j, Math.min(c + 1, G)), from, score[from]!);
      }
      for (let l = 1; j >= 1 && l <= L; l++) {
        const from = iIdx(j, l);
        if (score[from] === -Infinity) continue;
        relax(oIdx(j, Math.min(1, G)), from, score[from]!);
      }
    }
    for (let j = 0; j <= K; j++) {
      for (let c = G; j < K && c <= G; c++) {
        const from = oIdx(j, c);
        if (score[from] !== -Infinity) relax(iIdx(j + 1, 1), from, score[from]! + x);
      }
      for (let l = 1; j >= 1 && l <= L; l++) {
        const from = iIdx(j, l);
        if (score[from] === -Infinity) continue;
        if (l < L) relax(iIdx(j, l + 1), from, score[from]! + x);
        if (G === 0 && j < K) relax(iIdx(j + 1, 1), from, score[from]! + x);
      }
    }
    score = next;
  }

  let best = 0;
  for (let s = 1; s < nStates; s++) if (score[s]! > score[best]!) best = s;
  // Walk back, collecting which tokens are inside, and where a new span starts (I(j+1,1) after anything).
  const spans: [number, number][] = [];
  let end = -1;
  for (let t = n - 1, s = best; t >= 0; t--) {
    const inside = s >= nO;
    const from = pred[t * nStates + s]!;
    if (inside && end < 0) end = t + 1;
    const startsHere = inside && (s - nO) % L === 0; // l = 1
    if (startsHere) {
      spans.push([t, end]);
      end = -1;
    } else if (!inside) {
      end = -1;
    }
    s = from;
  }
  spans.reverse();
  let total = 0;
  for (const [a, b] of spans) for (let t = a; t < b; t++) total += evidence[t]!;
  return { spans, total };
}
