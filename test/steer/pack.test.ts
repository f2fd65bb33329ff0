import { test } from 'node:test';
import assert from 'node:assert/strict';
import { steeredHidden } from '../../src/steer/math.js';
import { packScale, packSteers, steerInputs } from '../../src/steer/pack.js';
import type { Tensor } from '../../src/util/tensor.js';
import { assertClose, randomSteer, randomTensor, rng } from './randomSteer.js';

/** What the graph computes: h + ((h·p1) ⊙ scale)·p2t, in float32 like ORT. */
function graphMath(h: Tensor, p1: Tensor, p2t: Tensor, scale: Tensor): Float32Array {
  const [n, d] = h.shape as [number, number];
  const K = p1.shape[1]!;
  const out = new Float32Array(n * d);
  for (let b = 0; b < n; b++) {
    const z = new Float32Array(K);
    for (let c = 0; c < K; c++) {
      let acc = 0;
      for (let i = 0; i < d; i++) acc += h.data[b * d + i]! * p1.data[i * K + c]!;
      z[c] = acc * scale.data[(scale.shape[0] === 1 ? 0 : b) * K + c]!;
    }
    for (let i = 0; i < d; i++) {
      let acc = 0;
      for (let c = 0; c < K; c++) acc += z[c]! * p2t.data[c * d + i]!;
      out[b * d + i] = Math.fround(h.data[b * d + i]! + Math.fround(acc));
    }
  }
  return out;
}

test("packed steers compute the same h' as the reference math (2 steers, different rank and eps)", () => {
  const a = randomSteer({ d: 7, rank: 2, slots: ['x', 'y'], eps: 0.01, seed: 11 });
  const b = randomSteer({ d: 7, rank: 4, slots: ['z'], eps: 0.003, seed: 12 });
  const h = randomTensor([3, 7], rng(13), 2);
  const rows = [
    [[1, -2], [3]],
    [[0, 0], [0]],
    [[-4, 0.5], [10]],
  ];
  const packed = packSteers([a, b]);
  assert.equal(packed.p1.shape.join(), '7,8'); // K = 2·2 + 1·4
  assert.equal(packed.p2t.shape.join(), '8,7');
  assert.deepEqual(
    packed.columns.map((c) => `${c.steer}.${c.slot}`),
    ['0.0', '0.0', '0.1', '0.1', '1.0', '1.0', '1.0', '1.0'],
  );
  const { p1, p2t, scale } = steerInputs(packed, rows);
  assert.equal(scale.shape.join(), '3,8');
  assertClose(scale.data.subarray(0, 8), [0.01, 0.01, -0.02, -0.02, 0.009, 0.009, 0.009, 0.009], 1e-6, 'scale');
  const got = graphMath(h, p1, p2t, scale);
  const want = steeredHidden(h, [a, b], rows).data;
  assertClose(got, want, 1e-5, "h'");
  // Row 1 has all values 0: the packed graph gives h bit for bit.
  assert.deepEqual(got.subarray(7, 14), h.data.subarray(7, 14));
  // The steer really moved rows 0 and 2 (so this test can fail).
  assert.ok(Math.abs(got[0]! - h.data[0]!) > 1e-4);
});

test('one row of values is broadcast to the batch', () => {
  const a = randomSteer({ d: 3, rank: 1, slots: ['x'], eps: 0.5 });
  const scale = packScale(packSteers([a]), [[[2]]], 4);
  assert.deepEqual([...scale.data], [1, 1, 1, 1]);
  assert.throws(() => packScale(packSteers([a]), [[[2]], [[1]]], 3), /2 rows but the batch has 3/);
});

test('packSteers refuses no steers and steers of different widths', () => {
  assert.throws(
    () => packSteers([]),
    (e: Error & { hint?: string }) => /no steer/.test(e.hint ?? ''),
  );
  const a = randomSteer({ d: 3, rank: 1, slots: ['x'] });
  const b = randomSteer({ d: 4, rank: 1, slots: ['x'] });
  assert.throws(
    () => packSteers([a, b]),
    (e: Error & { code?: string }) => e.code === 'SHAPE_MISMATCH',
  );
});
