import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compoundToScore, vaderCompound, VaderScorer } from '../../../src/eval/scorers/vader.js';

test('vader mapping: > 0.5 exactly when compound ≥ 0.05, monotone, ends at 0 and 1', () => {
  assert.ok(compoundToScore(0.05) > 0.5);
  assert.ok(compoundToScore(0.0499) < 0.5);
  assert.equal(compoundToScore(1), 1);
  assert.equal(compoundToScore(-1), 0);
  const cs = [-1, -0.5, 0, 0.0499, 0.05, 0.0501, 0.5, 1];
  const ps = cs.map(compoundToScore);
  for (let i = 1; i < ps.length; i++) assert.ok(ps[i]! > ps[i - 1]!, `not increasing at ${cs[i]}`);
});

test('vader scorer: clear positive / negative / empty texts', async () => {
  const s = new VaderScorer();
  const [pos, neg, empty] = await s.score(['I love this movie, it is wonderful!', 'This is awful and I hate it.', '']);
  assert.ok(pos! > 0.9);
  assert.ok(neg! < 0.3);
  assert.equal(vaderCompound(''), 0);
  assert.ok(empty! < 0.5); // compound 0 is neutral, not positive
  assert.match(s.version, /^vader-sentiment@\d+\.\d+\.\d+/);
  assert.equal(s.attribute, 'positive-sentiment');
});
