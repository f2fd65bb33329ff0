import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matmulTransposed, steeredHidden, steeredLogits } from '../../src/steer/math.js';
import type { Steer } from '../../src/steer/steer.js';
import { tensor } from '../../src/util/tensor.js';
import { assertClose, randomSteer, randomTensor, rng } from './randomSteer.js';

test("a hand-computed example: h=[3,4], P1=e1, P2=e2, eps=0.5, v=2 → h'=[3, 4+0.5·2·3]", () => {
  const steer: Steer = {
    config: {
      formatVersion: 1,
      baseModel: { id: 't', embeddingFingerprint: 'f', vocabSize: 2, hiddenSize: 2 },
      eps: 0.5,
      rank: 1,
      slots: [{ name: 'a', defaultValue: 0 }],
    },
    p1: tensor([1, 2, 1], new Float32Array([1, 0])),
    p2: tensor([1, 2, 1], new Float32Array([0, 1])),
  };
  const h = tensor([1, 2], new Float32Array([3, 4]));
  assert.deepEqual([...steeredHidden(h, [steer], [[[2]]]).data], [3, 7]);
  const E = tensor([2, 2], new Float32Array([1, 0, 1, 1])); // logits = [h0, h0+h1]
  assert.deepEqual([...steeredLogits(h, E, [steer], [[[2]]]).data], [3, 10]);
});

test('all values 0 give exactly the base model', () => {
  const rand = rng(5);
  const s = randomSteer({ d: 6, rank: 3, slots: ['a', 'b'] });
  const h = randomTensor([4, 6], rand);
  const E = randomTensor([9, 6], rand);
  assert.deepEqual(steeredHidden(h, [s], [[[0, 0]]]).data, h.data);
  assert.deepEqual(steeredLogits(h, E, [s], [[[0, 0]]]).data, matmulTransposed(h, E).data);
});

test('steers compose by summing their terms, each row with its own values', () => {
  const rand = rng(6);
  const a = randomSteer({ d: 5, rank: 2, slots: ['x', 'y'], eps: 0.01, seed: 1 });
  const b = randomSteer({ d: 5, rank: 3, slots: ['z'], eps: 0.002, seed: 2 });
  const h = randomTensor([2, 5], rand);
  const both = steeredHidden(
    h,
    [a, b],
    [
      [[1, -2], [3]],
      [[0.5, 0], [-1]],
    ],
  );
  const onlyA = steeredHidden(h, [a], [[[1, -2]], [[0.5, 0]]]);
  const onlyB = steeredHidden(h, [b], [[[3]], [[-1]]]);
  const sum = both.data.map((_, i) => onlyA.data[i]! + onlyB.data[i]! - h.data[i]!);
  assertClose(both.data, sum, 1e-6);
  // And the delta is not zero (the test can fail).
  assert.ok(Math.abs(both.data[0]! - h.data[0]!) > 1e-5);
});

test('values for the wrong number of rows, steers or slots are refused', () => {
  const a = randomSteer({ d: 3, rank: 1, slots: ['x'] });
  const h = tensor([3, 3]);
  assert.throws(() => steeredHidden(h, [a], [[[1]], [[1]]]), /2 rows but the batch has 3/);
  assert.throws(() => steeredHidden(h, [a], [[[1, 2]]]), /2 values for 1 slots/);
  assert.throws(() => steeredHidden(h, [a], [[]]), /0 steers/);
  assert.throws(
    () => steeredHidden(tensor([1, 4]), [a], [[[1]]]),
    (e: Error & { code?: string }) => e.code === 'SHAPE_MISMATCH',
  );
});
