import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { matchVocab, type VocabSide } from '../../src/transfer/vocabMatch.js';
import { fitEmbeddingMap } from '../../src/transfer/fit.js';
import { applyEmbeddingMap, transferSteer, type SteerTensors } from '../../src/transfer/transferSteer.js';
import { mat, matmul, qrThin, type Mat } from '../../src/util/linalg.js';
import { tensor, type Tensor } from '../../src/util/tensor.js';

const rand = (n: number, seed: number) => {
  const rng = xoroshiro128plus(seed);
  return Array.from({ length: n }, () => uniformFloat64(rng) * 2 - 1);
};
const randMat = (r: number, c: number, seed: number) => mat(r, c, rand(r * c, seed));
const toT = (m: Mat): Tensor => tensor([m.rows, m.cols], Float32Array.from(m.data));
const asMat = (t: Tensor): Mat => mat(t.shape[0]!, t.shape[1]!, Array.from(t.data));
const vocab = (strings: string[], special: number[] = []): VocabSide => ({
  vocabSize: strings.length,
  tokenString: (id) => strings[id]!,
  isSpecial: (id) => special.includes(id),
});

const V = 120;
const D = 6;
const words = Array.from({ length: V }, (_, i) => ` w${i}`);
const eA = randMat(V, D, 1);
const steer: SteerTensors = {
  p1: tensor([2, D, 3], Float32Array.from(rand(36, 2))),
  p2: tensor([2, D, 3], Float32Array.from(rand(36, 3))),
};
const EPS = 0.5;

/** Steered logits h'·Eᵀ with h' = h + eps·s·(h·P1[k])·P2[k]ᵀ, in float64; `deltaOnly` drops h·Eᵀ. */
function logits(h: number[], e: Mat, s: SteerTensors, k: number, value: number, deltaOnly = false): number[] {
  const [, d, r] = s.p1.shape as [number, number, number];
  const p = (t: Tensor, i: number, j: number) => t.data[k * d * r + i * r + j]!;
  const hp = deltaOnly ? Array<number>(d).fill(0) : [...h];
  for (let j = 0; j < r; j++) {
    let c = 0;
    for (let i = 0; i < d; i++) c += h[i]! * p(s.p1, i, j);
    for (let i = 0; i < d; i++) hp[i]! += EPS * value * c * p(s.p2, i, j);
  }
  return Array.from({ length: e.rows }, (_, t) => hp.reduce((acc, x, i) => acc + x * e.data[t * e.cols + i]!, 0));
}
const vecMat = (h: number[], m: Mat) =>
  Array.from({ length: m.cols }, (_, j) => h.reduce((a, x, i) => a + x * m.data[i * m.cols + j]!, 0));
function assertClose(a: number[], b: number[], rel = 1e-4): void {
  const scale = Math.max(...b.map(Math.abs));
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= rel * scale, `[${i}] ${x} vs ${b[i]}`));
}

test('matchVocab pairs decoded strings, skipping specials, duplicates and byte fragments', () => {
  const m = matchVocab(
    vocab([' a', ' b', '<s>', ' c', ' c', '\uFFFD']),
    vocab(['<s>', ' c', ' b', ' a', ' d', '\uFFFD'], [0]),
    6,
    6,
  );
  assert.deepEqual([...m.to], [2, 3]);
  assert.deepEqual([...m.from], [1, 0]);
  assert.equal(m.duplicates, 1);
  assert.throws(() => matchVocab(vocab([' x']), vocab([' y'])), { code: 'MODEL_MISMATCH', message: /share no tokens/ });
});

test('a model transferred to itself gives back the steer', () => {
  const side = { embeddings: toT(eA), tokenizer: vocab(words) };
  const r = transferSteer(steer, side, side);
  assert.equal(r.sharedTokens, V);
  assert.ok(r.heldOutError < 1e-5 && r.trainError < 1e-5);
  assertClose([...r.p1.data], [...steer.p1.data], 1e-4);
  assertClose([...r.p2.data], [...steer.p2.data], 1e-4);
});

test('E_A = E_B·H for invertible H: the steer term on B at h_B equals A at h_A = h_B·H (reference rule, no normalisation)', () => {
  // E_B = E_A·M, so H = M⁻¹ maps B's space to A's; take h_B = h_A·M so that h_B·H = h_A.
  const m = randMat(D, D, 5);
  for (let i = 0; i < D; i++) m.data[i * D + i]! += 2;
  const eB = matmul(eA, m);
  const r = transferSteer(
    steer,
    { embeddings: toT(eA), tokenizer: vocab(words) },
    { embeddings: toT(eB), tokenizer: vocab(words) },
    { normalizeRows: false },
  );
  assert.ok(r.heldOutError < 1e-5, `held-out error ${r.heldOutError}`);
  const hA = rand(D, 6);
  const hB = vecMat(hA, m);
  for (const k of [0, 1]) assertClose(logits(hB, eB, r, k, 1.5, true), logits(hA, eA, steer, k, 1.5, true));
  // The full logits differ here: M is not orthogonal.
  const full = logits(hB, eB, r, 0, 1.5);
  assert.ok(full.some((x, i) => Math.abs(x - logits(hA, eA, steer, 0, 1.5)[i]!) > 1e-2));
});

test('orthogonal map: full steered logits agree, with the reference row normalisation on (a no-op here)', () => {
  const q = qrThin(randMat(D, D, 7)).q;
  const eB = matmul(eA, q);
  const r = transferSteer(
    steer,
    { embeddings: toT(eA), tokenizer: vocab(words) },
    { embeddings: toT(eB), tokenizer: vocab(words) },
  );
  const hA = rand(D, 8);
  const hB = vecMat(hA, q);
  for (const v of [-2, 1]) assertClose(logits(hB, eB, r, 1, v), logits(hA, eA, steer, 1, v));
});

test("'dual' map: a reparametrised model (E_B = E_A·M, h_B = h_A·M⁻ᵀ) gets exactly the same steered logits", () => {
  const m = randMat(D, D, 9);
  for (let i = 0; i < D; i++) m.data[i * D + i]! += 2;
  const eB = matmul(eA, m);
  const r = transferSteer(
    steer,
    { embeddings: toT(eA), tokenizer: vocab(words) },
    { embeddings: toT(eB), tokenizer: vocab(words) },
    { hiddenMap: 'dual' },
  );
  const hB = rand(D, 10);
  const mt = mat(
    D,
    D,
    Array.from({ length: D * D }, (_, i) => m.data[(i % D) * D + Math.floor(i / D)]!),
  );
  const hA = vecMat(hB, mt); // h_A = h_B·Mᵀ
  assertClose(logits(hB, eB, r, 0, 2), logits(hA, eA, steer, 0, 2));
});

test('different hidden sizes and partial vocabularies', () => {
  const dB = 9;
  const eB = matmul(eA, randMat(D, dB, 11)); // B is wider; E_B·H = E_A has an exact solution
  const wordsB = words.map((w, i) => (i % 10 === 0 ? ` other${i}` : w));
  const r = transferSteer(
    steer,
    { embeddings: toT(eA), tokenizer: vocab(words) },
    { embeddings: toT(eB), tokenizer: vocab(wordsB) },
    { seed: 3 },
  );
  assert.equal(r.sharedTokens, V - V / 10);
  assert.deepEqual(r.p1.shape, [2, dB, 3]);
  assert.deepEqual(r.map.shape, [dB, D]);
  assert.ok(r.heldOutError < 1e-3, `held-out error ${r.heldOutError}`);
});

test('fit: held-out error is honest, seeded, and refinement does not hurt', () => {
  const eB = randMat(V, D, 12); // unrelated: no linear map fits
  const match = { from: Int32Array.from({ length: V }, (_, i) => i), to: Int32Array.from({ length: V }, (_, i) => i) };
  const a = fitEmbeddingMap(toT(eA), toT(eB), match, { seed: 1 });
  const b = fitEmbeddingMap(toT(eA), toT(eB), match, { seed: 1, refineSteps: 2 });
  assert.equal(a.heldOutTokens, 12);
  assert.equal(a.trainTokens, 108);
  assert.ok(a.heldOutError > 0.5 && a.trainError < a.heldOutError);
  assert.ok(Math.abs(a.heldOutError - b.heldOutError) < 1e-6);
  assert.deepEqual(fitEmbeddingMap(toT(eA), toT(eB), match, { seed: 1 }).map.data, a.map.data);
  assert.throws(() => fitEmbeddingMap(toT(eA), toT(eB), { from: Int32Array.of(0), to: Int32Array.of(0) }), {
    code: 'BAD_DATA',
  });
  assert.throws(() => fitEmbeddingMap(toT(eA), toT(eB), match, { heldOutFraction: 1 }), { code: 'BAD_ARGUMENT' });
});

test('applyEmbeddingMap checks the steer against the map', () => {
  assert.throws(() => applyEmbeddingMap(steer, tensor([4, D + 1])), { code: 'MODEL_MISMATCH' });
  const side = { embeddings: toT(randMat(V, D + 1, 13)), tokenizer: vocab(words) };
  assert.throws(() => transferSteer(steer, side, side), { code: 'MODEL_MISMATCH' });
});
