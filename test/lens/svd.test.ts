import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { slotMatrix, steerSvd } from '../../src/lens/svd.js';
import { mat, matmul, qrThin, svdTop, transpose, type Mat } from '../../src/util/linalg.js';
import { tensor, type Tensor } from '../../src/util/tensor.js';

function randMat(rows: number, cols: number, seed: number): Mat {
  const rng = xoroshiro128plus(seed);
  return mat(
    rows,
    cols,
    Array.from({ length: rows * cols }, () => uniformFloat64(rng) * 2 - 1),
  );
}
const toT = (m: Mat): Tensor => tensor([m.rows, m.cols], Float32Array.from(m.data));
const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

test('steerSvd (r < d) recovers constructed singular values and vectors', () => {
  // P1 = U·diag(s), P2 = V with orthonormal U, V (d=12, r=3): W = U diag(s) Vᵀ.
  const d = 12;
  const U = qrThin(randMat(d, 3, 1)).q;
  const V = qrThin(randMat(d, 3, 2)).q;
  const s = [4, 2, 0.5];
  const p1 = mat(d, 3);
  for (let i = 0; i < d; i++) for (let k = 0; k < 3; k++) p1.data[i * 3 + k] = U.data[i * 3 + k]! * s[k]!;
  const res = steerSvd(toT(p1), toT(V), 10);
  assert.equal(res.values.length, 3);
  res.values.forEach((x, i) => assert.ok(Math.abs(x - s[i]!) < 1e-5, `σ${i} = ${x}`));
  for (let k = 0; k < 3; k++) {
    const col = (m: Mat) => Float64Array.from({ length: d }, (_, i) => m.data[i * 3 + k]!);
    const du = dot(res.u[k]!, col(U));
    const dv = dot(res.v[k]!, col(V));
    assert.ok(Math.abs(Math.abs(dv) - 1) < 1e-5 && Math.abs(du - dv) < 1e-5);
  }
});

test('steerSvd agrees with a direct SVD of W, for r < d and r ≥ d', () => {
  for (const [d, r] of [
    [10, 4],
    [6, 9],
  ] as const) {
    const p1 = toT(randMat(d, r, d + r));
    const p2 = toT(randMat(d, r, d * r));
    const w = matmul(mat(d, r, p1.data as unknown as number[]), transpose(mat(d, r, p2.data as unknown as number[])));
    const direct = svdTop(w, 3);
    const res = steerSvd(p1, p2, 3);
    for (let k = 0; k < 3; k++) {
      assert.ok(Math.abs(res.values[k]! - direct.values[k]!) < 1e-9 * direct.values[0]!);
      assert.ok(Math.abs(Math.abs(dot(res.v[k]!, direct.v[k]!)) - 1) < 1e-8);
      // W·v = σ·u holds for whichever sign was picked.
      const wv = Float64Array.from({ length: d }, (_, i) =>
        dot(Float64Array.from(w.data.subarray(i * d, i * d + d)), res.v[k]!),
      );
      wv.forEach((x, i) => assert.ok(Math.abs(x - res.values[k]! * res.u[k]![i]!) < 1e-9));
    }
  }
});

test('steerSvd and slotMatrix reject bad input', () => {
  const p = tensor([2, 4, 3]);
  assert.deepEqual(slotMatrix(p, 1).shape, [4, 3]);
  assert.throws(() => slotMatrix(p, 2), { code: 'NOT_FOUND' });
  assert.throws(() => steerSvd(tensor([4, 3]), tensor([4, 2]), 2), { code: 'SHAPE_MISMATCH' });
  assert.throws(() => steerSvd(tensor([4, 3]), tensor([4, 3]), 0), { code: 'BAD_ARGUMENT' });
  assert.equal(steerSvd(tensor([4, 3]), tensor([4, 3]), 2).values.length, 0, 'zero steer → no directions');
});
