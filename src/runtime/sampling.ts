/**
 * Choosing the next token from one row of logits: greedy, temperature, top-k, top-p (nucleus), in the order
 * Hugging Face's generate applies them (temperature → top-k → top-p, top-p over the renormalized top-k set).
 * Softmax is computed in float64 relative to the row's max, so large logits and tiny temperatures are safe.
 * Efficient for vocabularies of 50k–150k: top-k and top-p use quickselect (expected linear time), never a sort
 * of the vocabulary.
 */
import { LmSteerError } from '../util/errors.js';
import type { Rng } from './rng.js';

export interface SamplingParams {
  /** 0 = greedy (argmax, ties → lowest id); otherwise logits are divided by it. */
  temperature: number;
  /** Keep only the k most likely tokens (ties → lower ids first); 0 = off. */
  topK: number;
  /** Keep the smallest set of most likely tokens whose probability sums to ≥ topP (at least one); 1 = off. */
  topP: number;
  /**
   * transformers' repetition_penalty (> 0; 1 = off): the logit of every token already in the row (prompt and
   * new tokens) is divided by it when positive, multiplied when negative. Applied before temperature.
   */
  repetitionPenalty?: number;
  /** OpenAI's presence_penalty (−2..2; 0 = off): subtracted once from the logit of every token generated so far. */
  presencePenalty?: number;
  /** OpenAI's frequency_penalty (−2..2; 0 = off): subtracted per occurrence among the tokens generated so far. */
  frequencyPenalty?: number;
}

export const DEFAULT_SAMPLING: Readonly<SamplingParams> = { temperature: 1, topK: 0, topP: 1 };

/** Throw BAD_ARGUMENT naming the field unless the params are valid. `where` prefixes the field name. */
export function validateSamplingParams(p: SamplingParams, where = ''): void {
  const { temperature: t, topK: k, topP: q } = p;
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${where}temperature must be a finite number ≥ 0, got ${t}`,
      'use 0 for greedy decoding, 1 for plain sampling',
    );
  }
  if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 0) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${where}topK must be an integer ≥ 0, got ${k}`,
      'use 0 to turn top-k off, or e.g. 50',
    );
  }
  if (typeof q !== 'number' || !Number.isFinite(q) || q <= 0 || q > 1) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${where}topP must be in (0, 1], got ${q}`,
      'use 1 to turn top-p off, or e.g. 0.9',
    );
  }
  const r = p.repetitionPenalty;
  if (r !== undefined && !(typeof r === 'number' && Number.isFinite(r) && r > 0 && r <= 100)) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${where}repetitionPenalty must be a number in (0, 100], got ${r}`,
      'use 1 to turn it off; transformers models often suggest 1.1–1.3',
    );
  }
  for (const [name, v] of [
    ['presencePenalty', p.presencePenalty],
    ['frequencyPenalty', p.frequencyPenalty],
  ] as const) {
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= -2 && v <= 2)) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `${where}${name} must be a number from -2 to 2, got ${v}`,
        'use 0 to turn it off',
      );
    }
  }
}

/** Whether any penalty of `p` changes logits. */
export function hasPenalties(p: SamplingParams): boolean {
  return (p.repetitionPenalty ?? 1) !== 1 || (p.presencePenalty ?? 0) !== 0 || (p.frequencyPenalty ?? 0) !== 0;
}

/**
 * A copy of `logits` with the penalties of `p` applied: repetition over `seen` (every token in the row),
 * presence and frequency over `generated` (token → count among the new tokens), as transformers and OpenAI
 * define them.
 */
export function applyPenalties(
  logits: Float32Array,
  p: SamplingParams,
  seen: ReadonlySet<number>,
  generated: ReadonlyMap<number, number>,
): Float32Array {
  const out = logits.slice();
  const r = p.repetitionPenalty ?? 1;
  if (r !== 1) for (const id of seen) if (id < out.length) out[id] = out[id]! < 0 ? out[id]! * r : out[id]! / r;
  const pres = p.presencePenalty ?? 0;
  const freq = p.frequencyPenalty ?? 0;
  if (pres !== 0 || freq !== 0) {
    for (const [id, n] of generated) if (id < out.length) out[id] = out[id]! - pres - freq * n;
  }
  return out;
}

function nonFinite(i: number, v: number): LmSteerError {
  return new LmSteerError(
    'BAD_DATA',
    `logit of token ${i} is ${v}`,
    'the model produced non-finite values; a steer value far too large, or broken weights, can cause this',
  );
}

/** Max of the row, rejecting NaN and +Infinity (-Infinity is a legitimate mask). */
function rowMax(row: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (v > max) {
      if (v === Infinity) throw nonFinite(i, v);
      max = v;
    } else if (v !== v) throw nonFinite(i, v);
  }
  if (max === -Infinity) {
    throw new LmSteerError(
      'BAD_DATA',
      `every one of the ${row.length} logits is -Infinity`,
      'no token can be sampled; check the logits masks (EOS masking with a vocabulary of only EOS?)',
    );
  }
  return max;
}

/** Argmax, ties → lowest id (a strict `>` while scanning upwards). */
export function argmax(row: ArrayLike<number>): number {
  rowMax(row);
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** log-softmax of one row in float64 (-Infinity logits give -Infinity). */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  const max = rowMax(row);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}

// Scratch buffers reused across calls (sampling is synchronous, so no two calls interleave): at vocab 150k a
// fresh index + weight buffer per token per row would be ~2 MB of garbage each time.
let scratchIdx = new Int32Array(0);
let scratchW = new Float64Array(0);
let scratchKeepBuf = new Uint8Array(0);
/** All-zero flags of length ≥ V (callers reset what they set). */
function scratchKeep(V: number): Uint8Array {
  if (scratchKeepBuf.length < V) scratchKeepBuf = new Uint8Array(V);
  return scratchKeepBuf;
}
function scratch(V: number): { idx: Int32Array; w: Float64Array } {
  if (scratchIdx.length < V) {
    scratchIdx = new Int32Array(V);
    scratchW = new Float64Array(V);
  }
  for (let i = 0; i < V; i++) scratchIdx[i] = i;
  return { idx: scratchIdx, w: scratchW };
}

/**
 * Three-way partition of idx[lo, hi) by the value of a median-of-three pivot: [larger | equal | smaller].
 * Returns [lt, gt] with equal = [lt, gt).
 */
function partition3(idx: Int32Array, v: ArrayLike<number>, lo: number, hi: number): [number, number] {
  const a = v[idx[lo]];
  const b = v[idx[(lo + hi) >> 1]];
  const c = v[idx[hi - 1]];
  const pv = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
  let lt = lo;
  let i = lo;
  let gt = hi;
  while (i < gt) {
    const x = v[idx[i]];
    if (x > pv) {
      const t = idx[lt];
      idx[lt++] = idx[i];
      idx[i++] = t;
    } else if (x < pv) {
      const t = idx[--gt];
      idx[gt] = idx[i];
      idx[i] = t;
    } else i++;
  }
  return [lt, gt];
}

/**
 * Quickselect: reorder idx[0, n) so that idx[0, k) holds the k largest values (ties → lower ids), in no
 * particular order. Expected O(n), whatever k is.
 */
function selectTopK(idx: Int32Array, n: number, v: ArrayLike<number>, k: number): void {
  let lo = 0;
  let hi = n;
  let need = k;
  while (need > 0 && hi > lo) {
    const [lt, gt] = partition3(idx, v, lo, hi);
    const nG = lt - lo;
    if (need <= nG) {
      if (need === nG) return;
      hi = lt;
      continue;
    }
    if (need <= gt - lo) {
      idx.subarray(lt, gt).sort(); // equal values: lower ids first
      return;
    }
    need -= gt - lo;
    lo = gt;
  }
}

/**
 * Weighted quickselect for top-p: reorder idx[0, n) so that idx[0, returned) is the smallest set of largest
 * values whose weight reaches `target` (ties → lower ids). Expected O(n), where sorting would be O(n log n):
 * at T = 1 a real model's 0.9-nucleus often spans thousands of tokens.
 */
function selectNucleus(idx: Int32Array, n: number, v: ArrayLike<number>, w: Float64Array, target: number): number {
  let lo = 0;
  let hi = n;
  let need = target;
  while (hi > lo) {
    const [lt, gt] = partition3(idx, v, lo, hi);
    let massG = 0;
    for (let i = lo; i < lt; i++) massG += w[idx[i]];
    if (lt > lo && massG >= need) {
      hi = lt;
      continue;
    }
    let massE = 0;
    for (let i = lt; i < gt; i++) massE += w[idx[i]];
    if (massG + massE >= need) {
      idx.subarray(lt, gt).sort(); // equal values: lower ids first
      let cum = massG;
      for (let i = lt; i < gt; i++) {
        cum += w[idx[i]];
        if (cum >= need) return i + 1;
      }
      return gt;
    }
    need -= massG + massE;
    lo = gt;
  }
  return lo; // rounding left a little target unmet: everything up to here
}

/** Indices of the n largest values, largest first, ties → lower index first. */
export function topIndices(values: ArrayLike<number>, n: number): Int32Array {
  rowMax(values);
  const V = values.length;
  n = Math.max(0, Math.min(n, V));
  const idx = Int32Array.from({ length: V }, (_, i) => i);
  selectTopK(idx, V, values, n);
  return idx.slice(0, n).sort((a, b) => values[b] - values[a] || a - b);
}

/** A chosen token's log-probability and the most likely alternatives, as the server's `logprobs` report them. */
export interface TokenLogprob {
  /** log p(token) under softmax(logits). */
  logprob: number;
  /** The `top` most likely tokens with their log-probabilities, largest first (ties → lower id first). */
  top: { id: number; logprob: number }[];
}

/**
 * Log-probability of token `id` and the `top` most likely tokens under softmax(logits), in float64. The caller
 * passes the distribution it means: the row's raw logits (what vLLM reports by default, before penalties,
 * temperature and top-k/top-p), not the filtered one it sampled from.
 */
export function tokenLogprob(logits: ArrayLike<number>, id: number, top: number): TokenLogprob {
  const max = rowMax(logits);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  const alternatives = top > 0 ? Array.from(topIndices(logits, top), (t) => ({ id: t, logprob: logits[t] - lse })) : [];
  return { logprob: logits[id] - lse, top: alternatives };
}

/** The n largest entries of a row, largest first, ties → lower id first (used by `inspect`). */
export function topN(row: ArrayLike<number>, n: number): { id: number; value: number }[] {
  return Array.from(topIndices(row, n), (id) => ({ id, value: row[id] }));
}

/**
 * Choose the next token of one row. Uses one `rng.uniform()` per call when temperature > 0, none when greedy,
 * so a row's stream advances the same way whatever else happens in its batch.
 */
export function sampleToken(logits: Float32Array, params: SamplingParams, rng: Rng): number {
  validateSamplingParams(params);
  const { temperature: T, topK, topP } = params;
  if (T === 0) return argmax(logits);
  const V = logits.length;
  const max = rowMax(logits);
  const { idx, w } = scratch(V);
  let n = V; // candidates: idx[0, n)
  if (topK > 0 && topK < V) {
    selectTopK(idx, V, logits, topK);
    n = topK;
  }
  // (x - max) / T, not x/T - max/T: exactly 0 at the max, and no overflow for tiny T. Only candidates need it.
  for (let i = 0; i < n; i++) w[idx[i]] = Math.exp((logits[idx[i]] - max) / T);
  if (topP < 1) {
    let total = 0;
    for (let i = 0; i < n; i++) total += w[idx[i]];
    n = Math.max(1, selectNucleus(idx, n, logits, w, topP * total));
  }

  // Walk the candidates in token-id order, not in quickselect's order: that order depends on every comparison
  // with a pivot, so logits that differ by float noise (~1e-6 between batch sizes) would reshuffle it and
  // draw another token for the same u. In id order, a row draws the same token whatever shares its batch.
  if (n < V) {
    const keep = scratchKeep(V);
    for (let i = 0; i < n; i++) keep[idx[i]] = 1;
    let k = 0;
    for (let id = 0; id < V; id++) if (keep[id]) ((keep[id] = 0), (idx[k++] = id));
  }
  let mass = 0;
  for (let i = 0; i < n; i++) mass += w[idx[i]];
  const u = rng.uniform() * mass;
  let acc = 0;
  let last = idx[0];
  for (let i = 0; i < n; i++) {
    const wi = w[idx[i]];
    if (wi === 0) continue;
    acc += wi;
    last = idx[i];
    if (u < acc) return last;
  }
  return last; // rounding left u ≥ the accumulated mass: the last token with any weight
}
