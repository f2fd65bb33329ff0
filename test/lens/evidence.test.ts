import { test } from 'node:test';
import assert from 'node:assert/strict';
import { textEvidence, tokenEvidence, valueDistribution, valueGrid } from '../../src/lens/evidence.js';

test('tokenEvidence is log p(+1) − log p(−1)', () => {
  assert.deepEqual(tokenEvidence([-1, -2], [-3, -1]), [2, -1]);
  assert.throws(() => tokenEvidence([1], [1, 2]), { code: 'SHAPE_MISMATCH' });
});

test('textEvidence aligns evidence to tokens and shifts spans by one', () => {
  const r = textEvidence(['<s>', ' I', ' love', ' it', ' but', ' no'], [-1, -1, -1, -5, -5], [-1, -3, -2, -1, -1]);
  assert.deepEqual(
    r.tokens.map((t) => t.evidence),
    [null, 0, 2, 1, -4, -4],
  );
  assert.deepEqual(r.spans, [[2, 4]]);
  assert.equal(r.total, 3);
  assert.deepEqual(textEvidence(['only'], [], []).spans, [], 'a one-token text has no evidence');
  assert.throws(() => textEvidence(['a', 'b'], [1, 2], [1, 2]), { code: 'SHAPE_MISMATCH' });
});

test('valueGrid defaults to the reference app grid', () => {
  const g = valueGrid();
  assert.equal(g.length, 13);
  assert.deepEqual([g[0], g[6], g[12], g[1]], [-3, 0, 3, -2.5]);
  assert.throws(() => valueGrid(1, 1, 3), { code: 'BAD_ARGUMENT' });
});

test('valueDistribution = softmax(10·(mean − loss)), best = argmin', () => {
  const losses = [3.0, 2.9, 2.95];
  const r = valueDistribution([-1, 0, 1], losses);
  assert.equal(r.best, 0);
  assert.equal(r.bestIndex, 1);
  const w = losses.map((l) => Math.exp(-10 * l));
  const z = w.reduce((a, b) => a + b);
  r.distribution.forEach((p, i) => assert.ok(Math.abs(p - w[i]! / z) < 1e-12));
  assert.equal(valueDistribution([1, 2], [5, 5]).best, 1, 'first on ties');
  assert.ok(Math.abs(valueDistribution([1, 2], [1000, 0]).distribution[1]! - 1) < 1e-12, 'no overflow');
  assert.throws(() => valueDistribution([1], [NaN]), { code: 'BAD_DATA' });
});
