/**
 * Small dense float64 linear algebra for the lens (SVD of a steer) and transfer (least-squares embedding maps).
 * Hand-written rather than a package: we need five routines on matrices of at most a few thousand rows/cols,
 * in float64, on plain typed arrays that convert to/from `Tensor` without copies through nested JS arrays
 * (ml-matrix stores number[][] and would double memory and time on [V, d] embedding matrices).
 *
 * `Mat` is row-major: element (i, j) is data[i * cols + j].
 */
import { LmSteerError } from './errors.js';
import type { Tensor } from './tensor.js';

export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function mat(rows: number, cols: number, data?: Float64Array | number[]): Mat {
  const d = data === undefined ? new Float64Array(rows * cols) : Float64Array.from(data);
  if (d.length !== rows * cols) throw new Error(`mat: ${d.length} values for ${rows}x${cols}`);
  return { rows, cols, data: d };
}

export function identity(n: number): Mat {
  const m = mat(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

/** Widen a 2-D float32 tensor to float64. */
export function fromTensor(t: Tensor): Mat {
  if (t.shape.length !== 2) {
    throw new LmSteerError('SHAPE_MISMATCH', `expected a 2-D tensor, got shape [${t.shape}]`);
  }
  return { rows: t.shape[0]!, cols: t.shape[1]!, data: Float64Array.from(t.data) };
}

export function toTensor(m: Mat): Tensor {
  return { dtype: 'float32', shape: [m.rows, m.cols], data: Float32Array.from(m.data) };
}

export function transpose(a: Mat): Mat {
  const t = mat(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) t.data[j * a.rows + i] = a.data[i * a.cols + j]!;
  return t;
}

/** A·B. The i-k-j loop order keeps the inner loop on contiguous rows of B and C. */
export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new Error(`matmul: ${a.rows}x${a.cols} · ${b.rows}x${b.cols}`);
  const c = mat(a.rows, b.cols);
  const n = b.cols;
  for (let i = 0; i < a.rows; i++) {
    const ci = i * n;
    for (let k = 0; k < a.cols; k++) {
      const aik = a.data[i * a.cols + k]!;
      if (aik === 0) continue;
      const bk = k * n;
      for (let j = 0; j < n; j++) c.data[ci + j] += aik * b.data[bk + j]!;
    }
  }
  return c;
}

/** Aᵀ·B without forming Aᵀ (sums outer products of matching rows). */
export function matmulTN(a: Mat, b: Mat): Mat {
  if (a.rows !== b.rows) throw new Error(`matmulTN: (${a.rows}x${a.cols})ᵀ · ${b.rows}x${b.cols}`);
  const c = mat(a.cols, b.cols);
  const n = b.cols;
  for (let r = 0; r < a.rows; r++) {
    const ar = r * a.cols;
    const br = r * n;
    for (let i = 0; i < a.cols; i++) {
      const x = a.data[ar + i]!;
      if (x === 0) continue;
      const ci = i * n;
      for (let j = 0; j < n; j++) c.data[ci + j] += x * b.data[br + j]!;
    }
  }
  return c;
}

/** AᵀA, filling the upper triangle only and mirroring (half the work of matmulTN(a, a)). */
export function gram(a: Mat): Mat {
  const n = a.cols;
  const g = mat(n, n);
  for (let r = 0; r < a.rows; r++) {
    const ar = r * n;
    for (let i = 0; i < n; i++) {
      const x = a.data[ar + i]!;
      if (x === 0) continue;
      const gi = i * n;
      for (let j = i; j < n; j++) g.data[gi + j] += x * a.data[ar + j]!;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) g.data[i * n + j] = g.data[j * n + i]!;
  return g;
}

export function frobenius(a: Mat): number {
  let s = 0;
  for (const x of a.data) s += x * x;
  return Math.sqrt(s);
}

/** Householder reflectors of a QR: Q = H_0 … H_{n−1}·[I_n; 0] with H_k = I − 2·v_k·v_kᵀ acting on rows k… . */
export interface Reflectors {
  rows: number;
  vs: Float64Array[];
}

/**
 * Householder QR of A (m×n, m ≥ n) kept in factored form: R (n×n upper triangular) and the reflectors of Q.
 * Forming Q costs as much again as the factorisation; callers that only need Q·x for a few x use applyQ.
 */
export function qrHouseholder(a: Mat): { reflectors: Reflectors; r: Mat } {
  const { rows: m, cols: n } = a;
  if (m < n) throw new Error(`qrHouseholder needs rows ≥ cols, got ${m}x${n}`);
  // Work column-major so each reflector touches contiguous memory.
  const w = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) w[j * m + i] = a.data[i * n + j]!;
  const vs: Float64Array[] = [];
  const r = mat(n, n);
  for (let k = 0; k < n; k++) {
    const col = k * m;
    let norm = 0;
    for (let i = k; i < m; i++) norm += w[col + i]! * w[col + i]!;
    norm = Math.sqrt(norm);
    const v = new Float64Array(m - k);
    if (norm > 0) {
      // Sign chosen to avoid cancellation in v[0].
      const alpha = w[col + k]! >= 0 ? -norm : norm;
      for (let i = k; i < m; i++) v[i - k] = w[col + i]!;
      v[0]! -= alpha;
      let vn = 0;
      for (const x of v) vn += x * x;
      vn = Math.sqrt(vn);
      if (vn > 0) for (let i = 0; i < v.length; i++) v[i]! /= vn;
      // Apply H = I − 2vvᵀ to the remaining columns.
      for (let j = k; j < n; j++) {
        const cj = j * m;
        let dot = 0;
        for (let i = k; i < m; i++) dot += v[i - k]! * w[cj + i]!;
        dot *= 2;
        for (let i = k; i < m; i++) w[cj + i]! -= dot * v[i - k]!;
      }
    }
    vs.push(v);
    for (let i = 0; i <= k; i++) r.data[i * n + k] = w[col + i]!;
  }
  return { reflectors: { rows: m, vs }, r };
}

/** Q·x for the thin Q of qrHouseholder (x of length n → length m), in O(m·n) without forming Q. */
export function applyQ(q: Reflectors, x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(q.rows);
  for (let i = 0; i < x.length; i++) y[i] = x[i]!;
  for (let k = q.vs.length - 1; k >= 0; k--) {
    const v = q.vs[k]!;
    let dot = 0;
    for (let i = 0; i < v.length; i++) dot += v[i]! * y[k + i]!;
    dot *= 2;
    if (dot !== 0) for (let i = 0; i < v.length; i++) y[k + i]! -= dot * v[i]!;
  }
  return y;
}

/**
 * Thin Householder QR of A (m×n, m ≥ n): A = Q·R with Q m×n orthonormal columns, R n×n upper triangular.
 * Householder (not Gram–Schmidt) so Q stays orthonormal to machine precision even when A is ill-conditioned.
 */
export function qrThin(a: Mat): { q: Mat; r: Mat } {
  const { rows: m, cols: n } = a;
  const { reflectors, r } = qrHouseholder(a);
  const qm = mat(m, n);
  const e = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    e.fill(0);
    e[j] = 1;
    const col = applyQ(reflectors, e);
    for (let i = 0; i < m; i++) qm.data[i * n + j] = col[i]!;
  }
  return { q: qm, r };
}

/**
 * Eigendecomposition of a symmetric matrix: Householder tridiagonalisation + implicit QL (the EISPACK
 * tred2/tql2 pair, as in JAMA). O(n³) with small constants, so n ≈ 1000 (a rank-1000 steer core) takes seconds.
 * Returns eigenvalues in descending order and the matching unit eigenvectors as the rows of `vectors`.
 */
export function symEig(a: Mat): { values: Float64Array; vectors: Float64Array[] } {
  const n = a.rows;
  if (a.cols !== n) throw new Error(`symEig needs a square matrix, got ${a.rows}x${a.cols}`);
  if (n === 0) return { values: new Float64Array(0), vectors: [] };
  const V = Float64Array.from(a.data); // V[i*n+j]
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(n, V, d, e);
  // tql2 rotates pairs of columns of V; transpose so those are contiguous rows.
  const Z = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Z[j * n + i] = V[i * n + j]!;
  tql2(n, Z, d, e);
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[y]! - d[x]!);
  return {
    values: Float64Array.from(order, (i) => d[i]!),
    vectors: order.map((i) => Z.slice(i * n, (i + 1) * n)),
  };
}

function tred2(n: number, V: Float64Array, d: Float64Array, e: Float64Array): void {
  for (let j = 0; j < n; j++) d[j] = V[(n - 1) * n + j]!;
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = V[(i - 1) * n + j]!;
        V[i * n + j] = 0;
        V[j * n + i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k]! /= scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        V[j * n + i] = f;
        g = e[j]! + V[j * n + j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k * n + j]! * d[k]!;
          e[k]! += V[k * n + j]! * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j]! /= h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j]! -= hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) V[k * n + j]! -= f * e[k]! + g * d[k]!;
        d[j] = V[(i - 1) * n + j]!;
        V[i * n + j] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    V[(n - 1) * n + i] = V[i * n + i]!;
    V[i * n + i] = 1;
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k * n + i + 1]! / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k * n + i + 1]! * V[k * n + j]!;
        for (let k = 0; k <= i; k++) V[k * n + j]! -= g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) V[k * n + i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[(n - 1) * n + j]!;
    V[(n - 1) * n + j] = 0;
  }
  V[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

/** Implicit QL on the tridiagonal (d, e); Z holds the eigenvectors as rows (Z = Vᵀ). */
function tql2(n: number, Z: Float64Array, d: Float64Array, e: Float64Array): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]!) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 100) throw new Error('symEig: QL iteration did not converge');
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i]! -= h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          const zi = i * n;
          const zi1 = (i + 1) * n;
          for (let k = 0; k < n; k++) {
            const hk = Z[zi1 + k]!;
            Z[zi1 + k] = s * Z[zi + k]! + c * hk;
            Z[zi + k] = c * Z[zi + k]! - s * hk;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
}

export interface SvdResult {
  /** Singular values, descending. */
  values: Float64Array;
  /** Left singular vectors (length a.rows each), u[i] pairs with values[i]. */
  u: Float64Array[];
  /** Right singular vectors (length a.cols each). */
  v: Float64Array[];
}

/**
 * The top-`k` singular triplets of A via the eigendecomposition of the smaller Gram matrix (AᵀA or AAᵀ).
 * Squaring the matrix costs accuracy only for singular values below ~1e-7·σ_max, which the lens never shows;
 * triplets with σ that small (numerically zero, e.g. beyond A's rank) are dropped, so fewer than k may come back.
 * Signs are fixed as in scikit-learn's svd_flip (largest-|·| entry of each v is positive) so output is
 * deterministic; u and v always flip together, so A = Σ σ u vᵀ holds either way.
 */
export function svdTop(a: Mat, k: number): SvdResult {
  const { rows: m, cols: n } = a;
  const wide = n > m; // eigen-decompose the min(m, n) Gram matrix
  const g = wide ? gram(transpose(a)) : gram(a);
  const eig = symEig(g);
  const sMax = Math.sqrt(Math.max(eig.values[0] ?? 0, 0));
  const values: number[] = [];
  const us: Float64Array[] = [];
  const vs: Float64Array[] = [];
  for (let i = 0; i < Math.min(k, eig.values.length); i++) {
    const sigma = Math.sqrt(Math.max(eig.values[i]!, 0));
    // √(machine eps)·σ_max is the noise floor of a σ computed through σ².
    if (!(sigma > sMax * 1e-7)) break;
    const x = eig.vectors[i]!;
    // Recover the other side: A v = σ u (or Aᵀ u = σ v when the Gram was AAᵀ).
    const y = wide ? matVecT(a, x) : matVec(a, x);
    let yn = 0;
    for (const t of y) yn += t * t;
    yn = Math.sqrt(yn);
    for (let j = 0; j < y.length; j++) y[j]! /= yn;
    let u = wide ? x : y;
    let v = wide ? y : x;
    let big = 0;
    for (let j = 1; j < v.length; j++) if (Math.abs(v[j]!) > Math.abs(v[big]!)) big = j;
    if (v[big]! < 0) {
      u = u.map((t) => -t);
      v = v.map((t) => -t);
    }
    values.push(sigma);
    us.push(u);
    vs.push(v);
  }
  return { values: Float64Array.from(values), u: us, v: vs };
}

/** A matrix known only by its products: apply(x) = A·x (x of length cols), applyT(y) = Aᵀ·y (y of length rows). */
export interface LinearOperator {
  rows: number;
  cols: number;
  apply(x: Float64Array): Float64Array;
  applyT(y: Float64Array): Float64Array;
}

export interface LanczosOptions {
  /** Stop when every kept triplet has ‖Aᵀu − σv‖ ≤ tol·σ_max (default 1e-11). */
  tol?: number;
  /** Seed of the start vector (default 1); the result is deterministic for a given seed. */
  seed?: number;
}

/**
 * The top-`k` singular triplets of an operator A by Golub–Kahan–Lanczos bidiagonalisation with full
 * reorthogonalisation (Golub & Van Loan §10.4; Baglama & Reichel's IRLBA without the restarts): m steps cost 2m
 * products with A/Aᵀ plus O(m²·(rows + cols)), against O(n³) for a dense SVD, so the top 5 directions of a
 * 768×768 steer matrix given as P1·P2ᵀ take about a hundred products rather than seconds.
 * After m steps A·V_m = U_m·B_m with B_m upper bidiagonal; the SVD of B_m gives Ritz triplets whose residual
 * ‖Aᵀu_i − σ_i v_i‖ is exactly β_m·|last entry of B_m's i-th left vector|, which is the stopping test.
 * A breakdown (α or β ≈ 0: an invariant subspace was found) restarts from a fresh random vector orthogonal to
 * the basis, so singular values the start vector missed (exact repeats, rank deficiency) are still found.
 * Same conventions as svdTop: σ ≤ 1e-7·σ_max dropped, signs as svd_flip.
 */
export function svdTopLanczos(a: LinearOperator, k: number, options: LanczosOptions = {}): SvdResult {
  const { rows: m, cols: n } = a;
  const tol = options.tol ?? 1e-11;
  const maxSteps = Math.min(m, n);
  const empty: SvdResult = { values: new Float64Array(0), u: [], v: [] };
  if (maxSteps === 0 || k < 1) return empty;
  let seed = (options.seed ?? 1) >>> 0 || 1;
  // xorshift32 → uniform(−1, 1): only the start directions need to be random.
  const random = (len: number) => {
    const x = new Float64Array(len);
    for (let i = 0; i < len; i++) {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      x[i] = (seed >>> 0) / 2147483648 - 1;
    }
    return x;
  };
  const U: Float64Array[] = [];
  const V: Float64Array[] = [];
  const alpha: number[] = [];
  const beta: number[] = []; // beta[j] couples v_{j+1} to u_j
  let scale = 0; // running estimate of ‖A‖ for the breakdown threshold
  const tiny = () => 1e-13 * scale;

  /** x minus its projection on `basis`, twice ("twice is enough", Kahan/Parlett); returns x. */
  const orthogonalize = (x: Float64Array, basis: Float64Array[]) => {
    for (let pass = 0; pass < 2; pass++) {
      for (const b of basis) {
        let dot = 0;
        for (let i = 0; i < x.length; i++) dot += x[i]! * b[i]!;
        if (dot !== 0) for (let i = 0; i < x.length; i++) x[i]! -= dot * b[i]!;
      }
    }
    return x;
  };
  const norm = (x: Float64Array) => Math.sqrt(x.reduce((s, t) => s + t * t, 0));
  const unit = (x: Float64Array, len: number) => x.map((t) => t / len);
  /** A fresh unit vector orthogonal to `basis` (dimension `dim`), or undefined when the basis spans it all. */
  const fresh = (dim: number, basis: Float64Array[]) => {
    for (let tries = 0; tries < 3 && basis.length < dim; tries++) {
      const x = orthogonalize(random(dim), basis);
      const len = norm(x);
      if (len > 1e-8) return unit(x, len);
    }
    return undefined;
  };

  let v: Float64Array | undefined = fresh(n, V);
  let restarts = 0;
  let nextCheck = Math.min(maxSteps, k + 8);
  let best = empty;
  while (v && V.length < maxSteps) {
    V.push(v);
    const j = V.length - 1;
    const p = a.apply(v);
    if (j > 0) for (let i = 0; i < m; i++) p[i]! -= beta[j - 1]! * U[j - 1]![i]!;
    orthogonalize(p, U);
    let al = norm(p);
    scale = Math.max(scale, al, j > 0 ? beta[j - 1]! : 0);
    let u: Float64Array | undefined;
    if (al > tiny() && al > 0) u = unit(p, al);
    else {
      al = 0;
      u = fresh(m, U);
      restarts++;
      if (!u) break; // U spans the whole column space
    }
    U.push(u);
    alpha.push(al);
    const r = a.applyT(u);
    for (let i = 0; i < n; i++) r[i]! -= al * v[i]!;
    orthogonalize(r, V);
    const be = norm(r);
    scale = Math.max(scale, be);
    const breakdown = !(be > tiny() && be > 0);
    beta.push(breakdown ? 0 : be);
    const steps = V.length;
    if (steps >= maxSteps || steps >= nextCheck || (breakdown && restarts > 0)) {
      const res = ritz(U, V, alpha, beta, k);
      best = res.triplets;
      const sMax = res.triplets.values[0] ?? 0;
      const converged = res.lastLeft.every((x) => beta[steps - 1]! * Math.abs(x) <= tol * sMax);
      if (steps >= maxSteps || (converged && res.triplets.values.length > 0) || (sMax === 0 && restarts > 2)) break;
      // Checks get rarer as the basis grows, so their O(steps³) cost stays a fraction of the products'.
      nextCheck = steps + Math.max(4, Math.ceil(steps / 4));
    }
    if (breakdown) {
      restarts++;
      v = fresh(n, V);
    } else v = unit(r, be);
  }
  return best;
}

/** Ritz triplets of the bidiagonal B (diag alpha, superdiag beta) lifted to U, V; plus B's left vectors' last entries. */
function ritz(
  U: Float64Array[],
  V: Float64Array[],
  alpha: number[],
  beta: number[],
  k: number,
): { triplets: SvdResult; lastLeft: number[] } {
  const s = alpha.length;
  const b = mat(s, s);
  for (let i = 0; i < s; i++) {
    b.data[i * s + i] = alpha[i]!;
    if (i + 1 < s) b.data[i * s + i + 1] = beta[i]!;
  }
  const small = svdTop(b, k);
  const lift = (basis: Float64Array[], x: Float64Array) => {
    const y = new Float64Array(basis[0]!.length);
    x.forEach((c, j) => {
      if (c !== 0) for (let i = 0; i < y.length; i++) y[i]! += c * basis[j]![i]!;
    });
    return y;
  };
  const u = small.u.map((x) => lift(U, x));
  const v = small.v.map((x) => lift(V, x));
  // svdTop already applied svd_flip to the small vectors; redo it on the lifted v (same flip for u).
  for (let i = 0; i < v.length; i++) {
    const vi = v[i]!;
    let big = 0;
    for (let j = 1; j < vi.length; j++) if (Math.abs(vi[j]!) > Math.abs(vi[big]!)) big = j;
    if (vi[big]! < 0) {
      v[i] = vi.map((t) => -t);
      u[i] = u[i]!.map((t) => -t);
    }
  }
  return { triplets: { values: small.values, u, v }, lastLeft: small.u.map((x) => x[s - 1]!) };
}

export function matVec(a: Mat, x: Float64Array): Float64Array {
  const y = new Float64Array(a.rows);
  for (let i = 0; i < a.rows; i++) {
    let s = 0;
    const r = i * a.cols;
    for (let j = 0; j < a.cols; j++) s += a.data[r + j]! * x[j]!;
    y[i] = s;
  }
  return y;
}

/** Aᵀx. */
export function matVecT(a: Mat, x: Float64Array): Float64Array {
  const y = new Float64Array(a.cols);
  for (let i = 0; i < a.rows; i++) {
    const xi = x[i]!;
    if (xi === 0) continue;
    const r = i * a.cols;
    for (let j = 0; j < a.cols; j++) y[j]! += xi * a.data[r + j]!;
  }
  return y;
}

/** Lower-triangular L with A = L·Lᵀ; throws (code BAD_DATA) when A is not numerically positive definite. */
export function cholesky(a: Mat): Mat {
  const n = a.rows;
  const l = mat(n, n);
  for (let j = 0; j < n; j++) {
    let s = a.data[j * n + j]!;
    for (let k = 0; k < j; k++) s -= l.data[j * n + k]! ** 2;
    if (!(s > 0)) {
      throw new LmSteerError(
        'BAD_DATA',
        `matrix is not positive definite (pivot ${j} is ${s})`,
        'the least-squares system is singular: add a ridge term or use more shared tokens',
      );
    }
    const ljj = Math.sqrt(s);
    l.data[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let t = a.data[i * n + j]!;
      for (let k = 0; k < j; k++) t -= l.data[i * n + k]! * l.data[j * n + k]!;
      l.data[i * n + j] = t / ljj;
    }
  }
  return l;
}

/** Solve (L·Lᵀ)·X = B for X, B with any number of columns. */
export function choleskySolve(l: Mat, b: Mat): Mat {
  const n = l.rows;
  const m = b.cols;
  const x = Float64Array.from(b.data);
  for (let i = 0; i < n; i++) {
    // forward: L y = b
    for (let k = 0; k < i; k++) {
      const lik = l.data[i * n + k]!;
      if (lik !== 0) for (let j = 0; j < m; j++) x[i * m + j]! -= lik * x[k * m + j]!;
    }
    const lii = l.data[i * n + i]!;
    for (let j = 0; j < m; j++) x[i * m + j]! /= lii;
  }
  for (let i = n - 1; i >= 0; i--) {
    // backward: Lᵀ x = y
    for (let k = i + 1; k < n; k++) {
      const lki = l.data[k * n + i]!;
      if (lki !== 0) for (let j = 0; j < m; j++) x[i * m + j]! -= lki * x[k * m + j]!;
    }
    const lii = l.data[i * n + i]!;
    for (let j = 0; j < m; j++) x[i * m + j]! /= lii;
  }
  return { rows: n, cols: m, data: x };
}

/**
 * argmin_X ‖A·X − B‖_F via thin QR (A m×n, m ≥ n, full column rank): X = R⁻¹·Qᵀ·B. Backward stable, i.e.
 * the error grows with κ(A), not κ(A)² as with the normal equations; use it when A is small enough to factor.
 */
export function lstsqQR(a: Mat, b: Mat): Mat {
  if (a.rows !== b.rows) throw new Error(`lstsqQR: A ${a.rows}x${a.cols}, B ${b.rows}x${b.cols}`);
  const { q, r } = qrThin(a);
  const n = a.cols;
  const x = matmulTN(q, b);
  const m = b.cols;
  for (let i = n - 1; i >= 0; i--) {
    for (let k = i + 1; k < n; k++) {
      const rik = r.data[i * n + k]!;
      for (let j = 0; j < m; j++) x.data[i * m + j]! -= rik * x.data[k * m + j]!;
    }
    const rii = r.data[i * n + i]!;
    if (rii === 0) {
      throw new LmSteerError('BAD_DATA', `least squares: matrix is rank deficient (column ${i})`, 'add a ridge term');
    }
    for (let j = 0; j < m; j++) x.data[i * m + j]! /= rii;
  }
  return x;
}
