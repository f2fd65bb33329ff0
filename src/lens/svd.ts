/**
 * SVD of one steer slot's matrix W = P1k·P2kᵀ (d×d). Since h' = h + eps·s·h·W (row vectors), the steer adds
 * eps·s·Σ_i σ_i (h·u_i)·v_i to the hidden state: u_i is what it reads from h, v_i what it writes, and
 * E·v_i (the logit change per unit) is what the lens ranks tokens by (see dims.ts).
 */
import { LmSteerError } from '../util/errors.js';
import {
  applyQ,
  fromTensor,
  matmul,
  matVec,
  matVecT,
  qrHouseholder,
  svdTop,
  svdTopLanczos,
  transpose,
  type LinearOperator,
} from '../util/linalg.js';
import type { Tensor } from '../util/tensor.js';

export interface SteerSvd {
  /** Singular values of W, descending (at most `top`, fewer when W's rank is lower). */
  values: number[];
  /** u[i] (length d): the input direction of component i. */
  u: Float64Array[];
  /** v[i] (length d): the output direction of component i; W = Σ values[i]·u[i]·v[i]ᵀ. */
  v: Float64Array[];
}

/** Up to this rank the exact QR route is cheap (O(d·r²)); above it, Lanczos on the operator is faster. */
const QR_MAX_RANK = 64;

/**
 * Top-`top` singular triplets of W = P1k·P2kᵀ for P1k, P2k : [d, r], never forming the d×d matrix.
 * Small r (≤ 64, < d): with Householder QRs P1k = Q1R1, P2k = Q2R2, W = Q1·(R1R2ᵀ)·Q2ᵀ, so the SVD of the r×r
 * core C = R1R2ᵀ = Uc·Σ·Vcᵀ gives u = Q1Uc, v = Q2Vc (Q applied as reflectors, only to the kept vectors).
 * Larger r (the reference trains rank 1000 on d = 768): Golub–Kahan–Lanczos on x ↦ P1k·(P2kᵀx), which needs
 * only the top few directions' worth of products (svdTopLanczos); a dense SVD of W took ~5 s there.
 * Signs follow svd_flip (largest-|·| entry of each v positive); u and v flip together.
 */
export function steerSvd(p1k: Tensor, p2k: Tensor, top: number): SteerSvd {
  if (
    p1k.shape.length !== 2 ||
    p2k.shape.length !== 2 ||
    p1k.shape[0] !== p2k.shape[0] ||
    p1k.shape[1] !== p2k.shape[1]
  ) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `steer projectors have shapes [${p1k.shape}] and [${p2k.shape}], expected two equal [d, r] matrices`,
      'pass one slot of projector1 and projector2 (shape [S, d, r] each), e.g. via slotMatrix()',
    );
  }
  if (!Number.isInteger(top) || top < 1) {
    throw new LmSteerError('BAD_ARGUMENT', `top must be a positive integer, got ${top}`, 'e.g. top = 10');
  }
  const [d, r] = p1k.shape as [number, number];
  const a = fromTensor(p1k);
  const b = fromTensor(p2k);
  let u: Float64Array[];
  let v: Float64Array[];
  let values: Float64Array;
  if (r < d && r <= QR_MAX_RANK) {
    const qa = qrHouseholder(a);
    const qb = qrHouseholder(b);
    const core = svdTop(matmul(qa.r, transpose(qb.r)), top);
    values = core.values;
    u = core.u.map((x) => applyQ(qa.reflectors, x));
    v = core.v.map((x) => applyQ(qb.reflectors, x));
  } else {
    // W·x = P1k·(P2kᵀ·x), Wᵀ·y = P2k·(P1kᵀ·y): 2·d·r each.
    const op: LinearOperator = {
      rows: d,
      cols: d,
      apply: (x) => matVec(a, matVecT(b, x)),
      applyT: (y) => matVec(b, matVecT(a, y)),
    };
    ({ values, u, v } = svdTopLanczos(op, top));
  }
  for (let i = 0; i < v.length; i++) {
    const vi = v[i]!;
    let big = 0;
    for (let j = 1; j < d; j++) if (Math.abs(vi[j]!) > Math.abs(vi[big]!)) big = j;
    if (vi[big]! < 0) {
      v[i] = vi.map((x) => -x);
      u[i] = u[i]!.map((x) => -x);
    }
  }
  return { values: [...values], u, v };
}

/** Slot `k` of a projector tensor [S, d, r] as a [d, r] tensor (a view-free copy-less subarray). */
export function slotMatrix(p: Tensor, k: number): Tensor {
  if (p.shape.length !== 3) {
    throw new LmSteerError('SHAPE_MISMATCH', `steer projector has shape [${p.shape}], expected [S, d, r]`);
  }
  const [s, d, r] = p.shape as [number, number, number];
  if (!Number.isInteger(k) || k < 0 || k >= s) {
    throw new LmSteerError(
      'NOT_FOUND',
      `steer slot ${k} does not exist (the steer has ${s} slots)`,
      `use a slot index from 0 to ${s - 1}`,
    );
  }
  return { dtype: 'float32', shape: [d, r], data: p.data.subarray(k * d * r, (k + 1) * d * r) };
}
