import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rngStream } from '../../src/runtime/rng.js';
import { LmSteerError } from '../../src/util/errors.js';

const draw = (seed: number, ...key: number[]) => {
  const r = rngStream(seed, ...key);
  return Array.from({ length: 8 }, () => r.uniform());
};

test('same (seed, key) gives the same stream; any change gives another', () => {
  assert.deepEqual(draw(7, 1, 2), draw(7, 1, 2));
  const base = draw(7, 1, 2);
  for (const other of [
    draw(8, 1, 2),
    draw(7, 2, 1),
    draw(7, 1, 3),
    draw(7, 1),
    draw(7, 1, 2, 0),
    draw(-7, 1, 2),
    draw(7 + 2 ** 32, 1, 2),
  ]) {
    assert.notDeepEqual(other, base);
  }
});

test('uniform() is in [0, 1) with mean ~1/2 and neighbouring keys are uncorrelated', () => {
  let sum = 0;
  let prod = 0;
  const n = 20000;
  for (let j = 0; j < n; j++) {
    const a = rngStream(0, 0, j).uniform();
    const b = rngStream(0, 0, j + 1).uniform();
    assert.ok(a >= 0 && a < 1);
    sum += a;
    prod += (a - 0.5) * (b - 0.5);
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
  assert.ok(Math.abs(prod / n) < 0.005, `covariance ${prod / n}`);
});

test('a non-integer seed is a BAD_ARGUMENT naming the seed', () => {
  for (const s of [NaN, 1.5, Infinity, 2 ** 60]) {
    assert.throws(
      () => rngStream(s, 0, 0),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT' && /seed/.test(e.message),
    );
  }
});
