import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adamInit, adamStep, ADAM_DEFAULTS } from '../../src/train/adam.js';

const cfg = { lr: 0.01, ...ADAM_DEFAULTS };

test('defaults are torch.optim.Adam’s', () => {
  assert.deepEqual(ADAM_DEFAULTS, { beta1: 0.9, beta2: 0.999, eps: 1e-8 });
});

test('first step moves every parameter by lr against the sign of its gradient', () => {
  const p = Float32Array.from([1, -2, 0.5]);
  const s = adamInit([3]);
  adamStep(cfg, s, [p], [Float32Array.from([3, -0.001, 0])]);
  assert.ok(Math.abs(p[0]! - (1 - 0.01)) < 1e-6);
  assert.ok(Math.abs(p[1]! - (-2 + 0.01 * (0.001 / (0.001 + 1e-8)))) < 1e-6);
  assert.equal(p[2], 0.5);
  assert.equal(s.step, 1);
});

test('two steps follow the bias-corrected formula (float64 hand computation)', () => {
  const p = Float32Array.from([0.3]);
  const s = adamInit([1]);
  const g1 = 0.5;
  const g2 = -0.2;
  adamStep(cfg, s, [p], [Float32Array.of(g1)]);
  adamStep(cfg, s, [p], [Float32Array.of(g2)]);
  let x = 0.3;
  let m = 0;
  let v = 0;
  [g1, g2].forEach((g, i) => {
    const t = i + 1;
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    x -= ((0.01 / (1 - 0.9 ** t)) * m) / (Math.sqrt(v) / Math.sqrt(1 - 0.999 ** t) + 1e-8);
  });
  assert.ok(Math.abs(p[0]! - x) < 1e-6, `${p[0]} vs ${x}`);
});

test('a non-finite gradient is refused and leaves the state untouched', () => {
  const p = Float32Array.from([1, 2]);
  const s = adamInit([2]);
  assert.throws(() => adamStep(cfg, s, [p], [Float32Array.from([1, NaN])]), /gradient is NaN at step 1/);
  assert.deepEqual([...p], [1, 2]);
  assert.equal(s.step, 0);
  assert.deepEqual([...s.m[0]!], [0, 0]);
});
