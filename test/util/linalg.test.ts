import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import {
  cholesky,
  choleskySolve,
  gram,
  identity,
  lstsqQR,
  mat,
  matmul,
  matmulTN,
  qrThin,
  svdTop,
  symEig,
  transpose,
  type Mat,
} from '../../src/util/linalg.js';

function randMat(rows: number, cols: number, seed: number): Mat {
  const rng = xoroshiro128plus(seed);
  return mat(
    rows,
    cols,
    Array.from({ length: rows * cols }, () => uniformFloat64(rng) * 2 - 1),
  );
}

function maxAbsDiff(a: Mat, b: Mat): number {
  assert.equal(a.rows, b.rows);
  assert.equal(a.cols, b.cols);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

test('matmul, matmulTN and gram agree with a hand-computed product', () => {
  const a = mat(2, 3, [1, 2, 3, 4, 5, 6]);
  const b = mat(3, 2, [7, 8, 9, 10, 11, 12]);
  assert.deepEqual([...matmul(a, b).data], [58, 64, 139, 154]);
  assert.deepEqual([...matmulTN(transpose(a), b).data], [58, 64, 139, 154]);
  assert.deepEqual([...gram(a).data], [...matmul(transpose(a), a).data]);
});

test('qrThin: Q orthonormal, R upper triangular, QR = A', () => {
  for (const [m, n] of [
    [7, 3],
    [5, 5],
    [40, 12],
  ] as const) {
    const a = randMat(m, n, m * 100 + n);
    const { q, r } = qrThin(a);
    assert.ok(maxAbsDiff(matmul(q, r), a) < 1e-12);
    assert.ok(maxAbsDiff(matmulTN(q, q), identity(n)) < 1e-12);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(r.data[i * n + j], 0);
  }
});

test('symEig reconstructs a random symmetric matrix, eigenvalues descending', () => {
  for (const n of [1, 2, 5, 30]) {
    const b = randMat(n, n, n);
    const a = matmul(b, transpose(b));
    for (let i = 0; i < n; i++) a.data[i * n + i]! -= 1; // make some eigenvalues negative
    const { values, vectors } = symEig(a);
    const rec = mat(n, n);
    for (let k = 0; k < n; k++) {
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) rec.data[i * n + j]! += values[k]! * vectors[k]![i]! * vectors[k]![j]!;
      if (k > 0) assert.ok(values[k - 1]! >= values[k]!);
    }
    assert.ok(maxAbsDiff(rec, a) < 1e-10, `n=${n}`);
  }
});

test('svdTop recovers known singular values and vectors (tall and wide)', () => {
  // A = Q1 · diag(5, 3, 1) · Q2ᵀ with orthonormal Q1 (8×3), Q2 (6×3).
  const q1 = qrThin(randMat(8, 3, 1)).q;
  const q2 = qrThin(randMat(6, 3, 2)).q;
  const s = [5, 3, 1];
  const a = mat(8, 6);
  for (let k = 0; k < 3; k++)
    for (let i = 0; i < 8; i++)
      for (let j = 0; j < 6; j++) a.data[i * 6 + j]! += s[k]! * q1.data[i * 3 + k]! * q2.data[j * 3 + k]!;
  for (const m of [a, transpose(a)]) {
    const r = svdTop(m, 5);
    assert.equal(r.values.length, 3, 'rank-3 matrix gives 3 triplets');
    r.values.forEach((v, i) => assert.ok(Math.abs(v - s[i]!) < 1e-10));
    const [left, right] = m === a ? [q1, q2] : [q2, q1];
    for (let k = 0; k < 3; k++) {
      let du = 0;
      let dv = 0;
      for (let i = 0; i < left.rows; i++) du += r.u[k]![i]! * left.data[i * 3 + k]!;
      for (let j = 0; j < right.rows; j++) dv += r.v[k]![j]! * right.data[j * 3 + k]!;
      assert.ok(Math.abs(Math.abs(du) - 1) < 1e-9 && Math.abs(Math.abs(dv) - 1) < 1e-9);
      assert.ok(Math.abs(du - dv) < 1e-9, 'u and v flip together');
    }
  }
});

test('cholesky solve and QR least squares', () => {
  const b = randMat(6, 6, 9);
  const spd = matmul(b, transpose(b));
  for (let i = 0; i < 6; i++) spd.data[i * 6 + i]! += 0.5;
  const x = randMat(6, 2, 10);
  assert.ok(maxAbsDiff(choleskySolve(cholesky(spd), matmul(spd, x)), x) < 1e-9);
  // Overdetermined consistent system: exact recovery; and residual orthogonal to range for a noisy one.
  const a = randMat(20, 4, 11);
  const xt = randMat(4, 3, 12);
  assert.ok(maxAbsDiff(lstsqQR(a, matmul(a, xt)), xt) < 1e-10);
  const y = randMat(20, 3, 13);
  const xs = lstsqQR(a, y);
  const resid = matmul(a, xs);
  for (let i = 0; i < resid.data.length; i++) resid.data[i] = y.data[i]! - resid.data[i]!;
  assert.ok(Math.max(...matmulTN(a, resid).data.map(Math.abs)) < 1e-10);
  assert.throws(() => cholesky(mat(2, 2, [1, 2, 2, 1])), { code: 'BAD_DATA' });
});
