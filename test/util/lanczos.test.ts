import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import {
  applyQ,
  mat,
  matmul,
  matVec,
  matVecT,
  qrHouseholder,
  qrThin,
  svdTop,
  svdTopLanczos,
  transpose,
  type LinearOperator,
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
const dense = (a: Mat): LinearOperator => ({
  rows: a.rows,
  cols: a.cols,
  apply: (x) => matVec(a, x),
  applyT: (y) => matVecT(a, y),
});
const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

/** A = U·diag(s)·Vᵀ with orthonormal U (m×k), V (n×k). */
function withSpectrum(m: number, n: number, s: number[], seed: number): Mat {
  const U = qrThin(randMat(m, s.length, seed)).q;
  const V = qrThin(randMat(n, s.length, seed + 1)).q;
  const us = mat(
    m,
    s.length,
    U.data.map((x, i) => x * s[i % s.length]!),
  );
  return matmul(us, transpose(V));
}

function assertMatchesDense(a: Mat, k: number, what: string): void {
  const ref = svdTop(a, k);
  const got = svdTopLanczos(dense(a), k);
  assert.equal(got.values.length, ref.values.length, `${what}: count`);
  for (let i = 0; i < ref.values.length; i++) {
    assert.ok(
      Math.abs(got.values[i]! - ref.values[i]!) <= 1e-9 * ref.values[0]!,
      `${what}: σ${i} ${got.values[i]} vs ${ref.values[i]}`,
    );
    // Both follow svd_flip, so the vectors agree with sign.
    assert.ok(dot(got.v[i]!, ref.v[i]!) > 1 - 1e-8, `${what}: v${i}`);
    assert.ok(dot(got.u[i]!, ref.u[i]!) > 1 - 1e-8, `${what}: u${i}`);
  }
}

test('svdTopLanczos agrees with the dense SVD: random square, tall, wide', () => {
  assertMatchesDense(randMat(60, 60, 1), 5, 'square');
  assertMatchesDense(randMat(80, 30, 2), 4, 'tall');
  assertMatchesDense(randMat(25, 70, 3), 4, 'wide');
});

test('svdTopLanczos: repeated singular values, low rank, zero', () => {
  // σ = 5 twice: one start vector sees only one copy; the restart after the breakdown finds the other.
  const rep = withSpectrum(40, 40, [5, 5, 3, 1], 7);
  const r = svdTopLanczos(dense(rep), 3);
  assert.deepEqual(
    Array.from(r.values, (x) => x.toFixed(9)),
    ['5.000000000', '5.000000000', '3.000000000'],
  );
  // Vectors of a repeated σ are any orthonormal pair of its subspace: check A·v = σ·u and v0 ⟂ v1 instead.
  r.v.forEach((v, i) => matVec(rep, v).forEach((x, j) => assert.ok(Math.abs(x - r.values[i]! * r.u[i]![j]!) < 1e-9)));
  assert.ok(Math.abs(dot(r.v[0]!, r.v[1]!)) < 1e-9);
  const low = svdTopLanczos(dense(withSpectrum(50, 50, [4, 2], 9)), 5);
  assert.deepEqual(low.values.length, 2, 'rank 2 → two triplets');
  assert.ok(Math.abs(low.values[0]! - 4) < 1e-10 && Math.abs(low.values[1]! - 2) < 1e-10);
  assert.equal(svdTopLanczos(dense(mat(20, 20)), 3).values.length, 0);
});

test('svdTopLanczos is deterministic and meets its residual bound on a clustered spectrum', () => {
  const a = randMat(200, 200, 4); // top singular values of a random matrix are close together
  const r1 = svdTopLanczos(dense(a), 5);
  const r2 = svdTopLanczos(dense(a), 5);
  assert.deepEqual(r1.values, r2.values);
  for (let i = 0; i < 5; i++) {
    const res = matVecT(a, r1.u[i]!).map((x, j) => x - r1.values[i]! * r1.v[i]![j]!);
    assert.ok(Math.hypot(...res) <= 1e-9 * r1.values[0]!, `residual ${i}: ${Math.hypot(...res)}`);
  }
});

test('qrHouseholder + applyQ give the thin Q without forming it', () => {
  const a = randMat(30, 7, 5);
  const { reflectors, r } = qrHouseholder(a);
  const { q } = qrThin(a);
  const x = Float64Array.from([1, -2, 0.5, 3, 0, 1, -1]);
  const qx = applyQ(reflectors, x);
  assert.deepEqual(
    Array.from(qx).map((t) => t.toFixed(12)),
    Array.from(matVec(q, x)).map((t) => t.toFixed(12)),
  );
  // Q·R = A
  const qr = matmul(q, r);
  qr.data.forEach((t, i) => assert.ok(Math.abs(t - a.data[i]!) < 1e-12));
});
