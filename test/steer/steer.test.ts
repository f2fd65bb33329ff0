import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DUMMY_SLOT,
  embeddingFingerprint,
  knownValueNames,
  resolveValues,
  validateSteer,
} from '../../src/steer/steer.js';
import { f16ToF32, f32ToF16 } from '../../src/formats/halfFloat.js';
import { tensor } from '../../src/util/tensor.js';
import { randomSteer, randomTensor, rng } from './randomSteer.js';

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

test('validateSteer accepts a well-formed steer', () => {
  validateSteer(randomSteer({ d: 8, rank: 2, slots: ['pos', { name: DUMMY_SLOT, defaultValue: 1 }] }));
});

test('validateSteer names the tensor whose shape disagrees with the config', () => {
  const s = randomSteer({ d: 8, rank: 2, slots: ['a'] });
  s.config.rank = 3;
  assert.throws(
    () => validateSteer(s, 'x/steer'),
    (e: Error & { code?: string }) => e.code === 'SHAPE_MISMATCH' && /projector1.*rank=3/.test(e.message),
  );
});

test('validateSteer refuses NaN/Inf and bad configs', () => {
  const s = randomSteer({ d: 4, rank: 1, slots: ['a'] });
  s.p2.data[3] = NaN;
  assert.throws(
    () => validateSteer(s, 'f'),
    (e: Error & { code?: string }) => e.code === 'BAD_FILE' && /projector2.*NaN.*index 3/.test(e.message),
  );
  const t = randomSteer({ d: 4, rank: 1, slots: ['a', 'a'] });
  assert.throws(
    () => validateSteer(t),
    (e: Error & { code?: string }) => e.code === 'BAD_ARGUMENT' && /unique/.test(e.message),
  );
  const u = randomSteer({ d: 4, rank: 1, slots: ['a'] });
  u.config.eps = Infinity;
  assert.throws(() => validateSteer(u), /eps/);
});

test('embeddingFingerprint: an fp16 copy matches its fp32 original, another matrix does not', () => {
  const E = randomTensor([50, 16], rng(3), 0.1);
  const fp = embeddingFingerprint(E);
  assert.match(fp, /^emb1-[0-9a-f]{32}$/);
  assert.equal(embeddingFingerprint(tensor([50, 16], f16ToF32(f32ToF16(E.data)))), fp);
  const other = tensor([50, 16], E.data.slice());
  other.data[0]! += 0.01;
  assert.notEqual(embeddingFingerprint(other), fp);
  assert.notEqual(embeddingFingerprint(tensor([100, 8], E.data)), fp, 'the shape is part of the fingerprint');
});

test('embeddingFingerprint samples large matrices but still sees their values', () => {
  const E = randomTensor([3000, 8], rng(4)); // 24,000 values > 4,096 samples
  const other = tensor(
    E.shape,
    E.data.map((x) => x * 1.5),
  );
  assert.notEqual(embeddingFingerprint(E), embeddingFingerprint(other));
});

test('resolveValues: slot, steer.slot and one-slot steer names; defaults; dummy fixed', () => {
  const a = randomSteer({ d: 4, rank: 1, name: 'detox', slots: ['toxic', { name: DUMMY_SLOT, defaultValue: 1 }] });
  const b = randomSteer({ d: 4, rank: 1, name: 'mood', slots: ['positive', 'formal'] });
  assert.deepEqual(resolveValues([a, b], {}), [
    [0, 1],
    [0, 0],
  ]);
  assert.deepEqual(resolveValues([a, b], { toxic: -5, 'mood.formal': 2 }), [
    [-5, 1],
    [0, 2],
  ]);
  assert.deepEqual(
    resolveValues(
      [a, b],
      new Map([
        ['detox', 3],
        ['positive', 1.5],
      ]),
    ),
    [
      [3, 1],
      [1.5, 0],
    ],
  );
  assert.deepEqual(knownValueNames([a, b]), ['detox.toxic', 'mood.positive', 'mood.formal']);
  // 'mood' has two slots, so the steer name alone does not say which.
  assert.throws(
    () => resolveValues([a, b], { mood: 1 }),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === 'NOT_FOUND' && /detox\.toxic, mood\.positive, mood\.formal/.test(e.hint ?? ''),
  );
  assert.throws(() => resolveValues([a, b], { [DUMMY_SLOT]: 0 }), /dummy slot/);
  assert.throws(() => resolveValues([a, b], { 'detox.__dummy__': 0 }), code('NOT_FOUND'));
});

test('resolveValues refuses non-finite values, ambiguity, duplicates', () => {
  const a = randomSteer({ d: 4, rank: 1, name: 'x', slots: ['pos'] });
  const b = randomSteer({ d: 4, rank: 1, name: 'y', slots: ['pos'] });
  assert.throws(
    () => resolveValues([a], { pos: NaN }),
    (e: Error & { code?: string }) => e.code === 'BAD_ARGUMENT' && /"pos" is NaN/.test(e.message),
  );
  assert.throws(() => resolveValues([a], { pos: Infinity }), /Infinity/);
  assert.throws(
    () => resolveValues([a, b], { pos: 1 }),
    (e: Error) => /ambiguous.*x\.pos, y\.pos/.test(e.message),
  );
  assert.deepEqual(resolveValues([a, b], { 'y.pos': 1 }), [[0], [1]]);
  assert.throws(() => resolveValues([a], { pos: 1, 'x.pos': 2 }), /both set x\.pos/);
  assert.throws(() => resolveValues([a, a], {}), /both named "x"/);
  assert.deepEqual(resolveValues([a, a], { 'l.pos': 2 }, ['l', 'r']), [[2], [0]]);
});
