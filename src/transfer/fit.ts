/**
 * A linear map between two models' output-embedding spaces, fit on their shared tokens.
 * H : [dTo, dFrom] with ETo[t]·H ≈ EFrom[t] — the orientation of the reference's `B_backward`
 * (Glaciohound/LM-Steer experiments/steer_transfer.py), which is the matrix it applies to the steer.
 *
 * The reference trains H with Adam from a random start (n_steps, lr flags). The problem is linear least
 * squares, so we solve it in closed form instead: no step size to tune, the optimum and not an approximation,
 * and deterministic. We use the ridge-regularised normal equations (XᵀX + λI)·H = XᵀY with a Cholesky solve
 * because they stream over token rows in O(d²) memory (X itself, 50k × d float64, would need ~0.5 GB).
 * Their weakness is conditioning — the error grows with κ(X)² rather than κ(X) — so `refineSteps` runs
 * classical iterative refinement (solve for the correction from the float64 residual Y − X·H), which recovers
 * the digits lost to κ² when embeddings are badly conditioned; λ keeps the system solvable when there are fewer
 * shared tokens than dimensions.
 */
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { LmSteerError } from '../util/errors.js';
import { cholesky, choleskySolve, mat, toTensor, type Mat } from '../util/linalg.js';
import type { Tensor } from '../util/tensor.js';

export interface FitOptions {
  /** Share of the shared tokens held out to measure the fit (default 0.1). */
  heldOutFraction?: number;
  /** Seed of the held-out split (default 0). */
  seed?: number;
  /** Ridge λ relative to the mean diagonal of XᵀX (default 1e-8: a guard against singularity, too small to bias
   * a well-posed fit, yet far above float64 round-off of XᵀX so Cholesky always succeeds). */
  ridge?: number;
  /** Iterative-refinement steps after the closed-form solve (default 0; each costs one pass over the tokens). */
  refineSteps?: number;
  /** Fit on at most this many training tokens, lowest target ids first (the reference uses its first 4000). */
  maxTrainTokens?: number;
}

export interface EmbeddingMap {
  /** H : [dTo, dFrom], ETo[t]·H ≈ EFrom[t]. */
  map: Tensor;
  /** ‖X·H − Y‖_F / ‖Y‖_F on the held-out tokens (NaN when heldOutFraction is 0). */
  heldOutError: number;
  /** The same on the tokens H was fit on. */
  trainError: number;
  trainTokens: number;
  heldOutTokens: number;
}

export function fitEmbeddingMap(
  eFrom: Tensor,
  eTo: Tensor,
  match: { from: Int32Array; to: Int32Array },
  options: FitOptions = {},
): EmbeddingMap {
  const { heldOutFraction = 0.1, seed = 0, ridge = 1e-8, refineSteps = 0, maxTrainTokens = Infinity } = options;
  if (eFrom.shape.length !== 2 || eTo.shape.length !== 2) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `embeddings have shapes [${eFrom.shape}] and [${eTo.shape}], expected [vocab, d] each`,
    );
  }
  if (!(heldOutFraction >= 0 && heldOutFraction < 1)) {
    throw new LmSteerError('BAD_ARGUMENT', `heldOutFraction must be in [0, 1), got ${heldOutFraction}`, 'e.g. 0.1');
  }
  if (!(ridge >= 0) || !Number.isInteger(refineSteps) || refineSteps < 0 || !(maxTrainTokens >= 1)) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `fit options ridge=${ridge}, refineSteps=${refineSteps}, maxTrainTokens=${maxTrainTokens} are invalid`,
      'use ridge ≥ 0, refineSteps ≥ 0, maxTrainTokens ≥ 1',
    );
  }
  const n = match.from.length;
  for (let i = 0; i < n; i++) {
    if (match.from[i]! >= eFrom.shape[0]! || match.to[i]! >= eTo.shape[0]! || match.from[i]! < 0 || match.to[i]! < 0) {
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `shared token pair (${match.from[i]}, ${match.to[i]}) is outside the embedding matrices`,
      );
    }
  }
  const nHeld = heldOutFraction > 0 ? Math.max(1, Math.round(n * heldOutFraction)) : 0;
  if (n - nHeld < 1) {
    throw new LmSteerError(
      'BAD_DATA',
      `only ${n} shared token(s): too few to fit and to hold out ${nHeld}`,
      'the models need a substantial shared vocabulary for a steer transfer',
    );
  }
  // Seeded Fisher–Yates over pair indices; the held-out tokens are the first nHeld.
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  const rng = xoroshiro128plus(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = uniformInt(rng, 0, i);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const held = perm.slice(0, nHeld);
  const train = perm
    .slice(nHeld)
    .sort()
    .slice(0, Math.min(n - nHeld, maxTrainTokens));
  const rows = (idx: Int32Array) => ({
    x: Int32Array.from(idx, (i) => match.to[i]!),
    y: Int32Array.from(idx, (i) => match.from[i]!),
  });
  const tr = rows(train);

  const dt = eTo.shape[1]!;
  const g = gramRows(eTo, tr.x);
  let trace = 0;
  for (let i = 0; i < dt; i++) trace += g.data[i * dt + i]!;
  const lambda = (ridge * trace) / dt;
  for (let i = 0; i < dt; i++) g.data[i * dt + i]! += lambda;
  const chol = cholesky(g);
  const h = choleskySolve(chol, crossRows(eTo, tr.x, eFrom, tr.y));
  for (let step = 0; step < refineSteps; step++) {
    // Correction Δ solves the same system for the residual of the ridge normal equations, XᵀR − λH.
    const rhs = residualCross(eTo, tr.x, eFrom, tr.y, h);
    for (let i = 0; i < rhs.data.length; i++) rhs.data[i]! -= lambda * h.data[i]!;
    const delta = choleskySolve(chol, rhs);
    for (let i = 0; i < h.data.length; i++) h.data[i]! += delta.data[i]!;
  }
  const ho = rows(held);
  return {
    map: toTensor(h),
    heldOutError: nHeld > 0 ? relativeError(eTo, ho.x, eFrom, ho.y, h) : NaN,
    trainError: relativeError(eTo, tr.x, eFrom, tr.y, h),
    trainTokens: train.length,
    heldOutTokens: nHeld,
  };
}

function row(e: Tensor, id: number): Float64Array {
  const d = e.shape[1]!;
  return Float64Array.from(e.data.subarray(id * d, (id + 1) * d));
}

/** Σ_t x_tᵀx_t over the rows `ids` of e (upper triangle, then mirrored). */
function gramRows(e: Tensor, ids: Int32Array): Mat {
  const d = e.shape[1]!;
  const g = mat(d, d);
  for (const id of ids) {
    const x = row(e, id);
    for (let i = 0; i < d; i++) {
      const xi = x[i]!;
      if (xi === 0) continue;
      const gi = i * d;
      for (let j = i; j < d; j++) g.data[gi + j] += xi * x[j]!;
    }
  }
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) g.data[i * d + j] = g.data[j * d + i]!;
  return g;
}

/** Σ_t x_tᵀ·y_t for x rows of ex and y rows of ey. */
function crossRows(ex: Tensor, xIds: Int32Array, ey: Tensor, yIds: Int32Array): Mat {
  const dx = ex.shape[1]!;
  const dy = ey.shape[1]!;
  const c = mat(dx, dy);
  for (let t = 0; t < xIds.length; t++) {
    const x = row(ex, xIds[t]!);
    const y = row(ey, yIds[t]!);
    for (let i = 0; i < dx; i++) {
      const xi = x[i]!;
      if (xi === 0) continue;
      const ci = i * dy;
      for (let j = 0; j < dy; j++) c.data[ci + j] += xi * y[j]!;
    }
  }
  return c;
}

/** y_t − x_t·H for one pair of rows. */
function residual(x: Float64Array, y: Float64Array, h: Mat): Float64Array {
  const r = Float64Array.from(y);
  const dy = h.cols;
  for (let i = 0; i < h.rows; i++) {
    const xi = x[i]!;
    if (xi === 0) continue;
    for (let j = 0; j < dy; j++) r[j]! -= xi * h.data[i * dy + j]!;
  }
  return r;
}

/** Σ_t x_tᵀ·(y_t − x_t·H). */
function residualCross(ex: Tensor, xIds: Int32Array, ey: Tensor, yIds: Int32Array, h: Mat): Mat {
  const c = mat(h.rows, h.cols);
  for (let t = 0; t < xIds.length; t++) {
    const x = row(ex, xIds[t]!);
    const r = residual(x, row(ey, yIds[t]!), h);
    for (let i = 0; i < h.rows; i++) {
      const xi = x[i]!;
      for (let j = 0; j < h.cols; j++) c.data[i * h.cols + j] += xi * r[j]!;
    }
  }
  return c;
}

/** ‖X·H − Y‖_F / ‖Y‖_F over the given rows. */
function relativeError(ex: Tensor, xIds: Int32Array, ey: Tensor, yIds: Int32Array, h: Mat): number {
  let num = 0;
  let den = 0;
  for (let t = 0; t < xIds.length; t++) {
    const y = row(ey, yIds[t]!);
    const r = residual(row(ex, xIds[t]!), y, h);
    for (let j = 0; j < y.length; j++) {
      num += r[j]! * r[j]!;
      den += y[j]! * y[j]!;
    }
  }
  return den > 0 ? Math.sqrt(num / den) : num > 0 ? Infinity : 0;
}
