import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE_SLOT, embeddingFingerprint, validateSteer } from '../../src/steer/steer.js';
import { f16ToF32, f32ToF16 } from '../../src/formats/halfFloat.js';
import { tensor } from '../../src/util/tensor.js';
import { randomSteer, randomTensor, rng } from './randomSteer.js';

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

test('validateSteer accepts a well-formed steer', () => {
  validateSteer(randomSteer({ d: 8, rank: 2, slots: ['pos', { name: BASE_SLOT, defaultValue: 1 }] }));
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
