import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  argmax,
  logSoftmax,
  sampleToken,
  topIndices,
  topN,
  validateSamplingParams,
  applyPenalties,
} from '../../src/runtime/sampling.js';
import { rngStream } from '../../src/runtime/rng.js';
import { LmSteerError } from '../../src/util/errors.js';
import { mulberry32 } from '../helpers/fakeDecoder.js';

const isErr = (code: string, re: RegExp) => (e: unknown) =>
  e instanceof LmSteerError && e.code === code && re.test(e.message) && !!e.hint;

function randomRow(n: number, seed: number, ties = false): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (ties ? Math.floor(r() * 50) : (r() - 0.5) * 20));
}

test('greedy is argmax with ties going to the lowest id, and draws no randomness', () => {
  const row = Float32Array.from([1, 5, 3, 5, -Infinity]);
  let draws = 0;
  const rng = { uniform: () => (draws++, 0.5) };
  assert.equal(sampleToken(row, { temperature: 0, topK: 0, topP: 1 }, rng), 1);
  assert.equal(draws, 0);
  assert.equal(argmax(Float32Array.from([-Infinity, -Infinity, 2])), 2);
});

test('topK = 1 and a tiny topP both equal greedy, even with ties', () => {
  for (let s = 0; s < 20; s++) {
    const row = randomRow(1000, s, s % 2 === 0);
    const greedy = argmax(row);
    const rng = rngStream(s, 0, 0);
    for (let k = 0; k < 5; k++) {
      assert.equal(sampleToken(row, { temperature: 1, topK: 1, topP: 1 }, rng), greedy);
      assert.equal(sampleToken(row, { temperature: 1.5, topK: 0, topP: 1e-9 }, rng), greedy);
      assert.equal(sampleToken(row, { temperature: 0.7, topK: 40, topP: 1e-9 }, rng), greedy);
    }
  }
});

test('topIndices equals a full stable sort (ties → lower id), on 50k values, for small and large n', () => {
  const row = randomRow(50000, 3, true); // heavy ties
  const full = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
  for (const n of [1, 7, 64, 1000, 50000, 60000]) assert.deepEqual(Array.from(topIndices(row, n)), full.slice(0, n));
  assert.deepEqual(topN(Float32Array.from([1, 3, 3, 2]), 3), [
    { id: 1, value: 3 },
    { id: 2, value: 3 },
    { id: 3, value: 2 },
  ]);
});

/** Pearson chi-square of observed counts against expected probabilities (cells with p = 0 must be empty). */
function chiSquare(counts: number[], probs: number[]): number {
  const n = counts.reduce((a, b) => a + b, 0);
  let x = 0;
  counts.forEach((c, i) => {
    if (probs[i] === 0) assert.equal(c, 0, `token ${i} has probability 0 but was sampled ${c} times`);
    else x += (c - n * probs[i]) ** 2 / (n * probs[i]);
  });
  return x;
}

function sampleCounts(row: Float32Array, p: { temperature: number; topK: number; topP: number }, n: number): number[] {
  const rng = rngStream(123, 0, 0);
  const counts = new Array(row.length).fill(0);
  for (let i = 0; i < n; i++) counts[sampleToken(row, p, rng)]++;
  return counts;
}

const softmax = (xs: number[]) => {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

test('sampling follows softmax(logits / T) on a 5-token vocabulary (chi-square, df 4, loose bound)', () => {
  const logits = [2, 1, 0.5, -1, 0];
  const n = 20000;
  for (const T of [1, 0.6, 2]) {
    const probs = softmax(logits.map((x) => x / T));
    const x = chiSquare(sampleCounts(Float32Array.from(logits), { temperature: T, topK: 0, topP: 1 }, n), probs);
    assert.ok(x < 25, `T=${T}: chi-square ${x.toFixed(2)} (df 4; p < 1e-4 beyond 25)`);
  }
  // A wrong distribution must fail the same bound (the test can fail).
  const wrong = softmax(logits.map((x) => x / 1.2));
  assert.ok(chiSquare(sampleCounts(Float32Array.from(logits), { temperature: 1, topK: 0, topP: 1 }, n), wrong) > 25);
});

test('top-k and top-p renormalize over the kept set (HF order: temperature → top-k → top-p)', () => {
  // probs ~ [0.5, 0.3, 0.15, 0.05]
  const logits = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
  const n = 20000;
  // topP 0.8: 0.5 + 0.3 = 0.8 ≥ 0.8 → {0, 1}
  let c = sampleCounts(logits, { temperature: 1, topK: 0, topP: 0.8 }, n);
  assert.ok(chiSquare(c, [0.625, 0.375, 0, 0]) < 20);
  // topP 0.5 keeps exactly the top token (cumulative reaches p with it)
  c = sampleCounts(logits, { temperature: 1, topK: 0, topP: 0.5 }, 200);
  assert.deepEqual(c, [200, 0, 0, 0]);
  // topK 3, then topP 0.9 over the renormalized {0.5, 0.3, 0.15}/0.95 = {0.526, 0.316, 0.158}: 0.842 < 0.9 → all 3
  c = sampleCounts(logits, { temperature: 1, topK: 3, topP: 0.9 }, n);
  assert.ok(chiSquare(c, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]) < 20);
  // topK 2 with temperature 0.5: probs² renormalized over {0, 1}
  c = sampleCounts(logits, { temperature: 0.5, topK: 2, topP: 1 }, n);
  assert.ok(chiSquare(c, [0.25 / 0.34, 0.09 / 0.34, 0, 0]) < 20);
});

test('top-p on a large flat vocabulary widens its candidate set until the nucleus is reached', () => {
  const row = new Float32Array(5000); // uniform: nucleus of 0.5 is 2500 tokens, ids 0..2499 (ties → lower ids)
  const c = sampleCounts(row, { temperature: 1, topK: 0, topP: 0.5 }, 2000);
  assert.equal(
    c.slice(2500).reduce((a, b) => a + b, 0),
    0,
  );
  assert.ok(c.slice(0, 2500).filter((v) => v > 0).length > 500);
});

test('-Infinity logits are never sampled; NaN / +Infinity / all -Infinity are BAD_DATA', () => {
  const row = Float32Array.from([0, -Infinity, 0, -Infinity]);
  const c = sampleCounts(row, { temperature: 1, topK: 0, topP: 1 }, 500);
  assert.equal(c[1] + c[3], 0);
  const rng = rngStream(0);
  for (const bad of [
    [0, NaN, 1],
    [0, Infinity],
    [-Infinity, -Infinity],
  ]) {
    for (const temperature of [0, 1]) {
      assert.throws(
        () => sampleToken(Float32Array.from(bad), { temperature, topK: 0, topP: 1 }, rng),
        isErr('BAD_DATA', /logit/),
      );
    }
  }
});

test('huge logits and tiny temperatures stay finite', () => {
  const row = Float32Array.from([3e38, 2.9e38, -3e38]);
  assert.equal(sampleToken(row, { temperature: 1e-30, topK: 0, topP: 1 }, rngStream(0)), 0);
  const lp = logSoftmax(row);
  assert.equal(lp[0], 0);
  assert.ok(Number.isFinite(lp[1]));
});

test('logSoftmax exponentiates to probabilities summing to 1', () => {
  const row = randomRow(1000, 9);
  const lp = logSoftmax(row);
  const s = lp.reduce((a, b) => a + Math.exp(b), 0);
  assert.ok(Math.abs(s - 1) < 1e-12);
  assert.equal(logSoftmax(Float32Array.from([0, -Infinity]))[1], -Infinity);
});

test('invalid sampling params are BAD_ARGUMENT errors naming the field and value', () => {
  const ok = { temperature: 1, topK: 0, topP: 1 };
  const cases: [object, RegExp][] = [
    [{ temperature: -0.1 }, /temperature .*-0\.1/],
    [{ temperature: NaN }, /temperature .*NaN/],
    [{ temperature: Infinity }, /temperature/],
    [{ topK: 1.5 }, /topK .*1\.5/],
    [{ topK: -1 }, /topK/],
    [{ topP: 0 }, /topP .*0/],
    [{ topP: 1.01 }, /topP/],
    [{ topP: NaN }, /topP/],
  ];
  for (const [patch, re] of cases) {
    assert.throws(() => validateSamplingParams({ ...ok, ...patch }), isErr('BAD_ARGUMENT', re));
    assert.throws(
      () => sampleToken(Float32Array.from([0, 1]), { ...ok, ...patch }, rngStream(0)),
      isErr('BAD_ARGUMENT', re),
    );
  }
});

test('top-k/top-p draws do not depend on the order a partial selection leaves candidates in', () => {
  // A row's logits differ by ~1e-6 with the batch it runs in; the token drawn for a given uniform number
  // must not change with that (the server returns a request's text as if it ran alone).
  const V = 2000;
  const base = Float32Array.from({ length: V }, (_, i) => Math.sin(i * 12.9898) * 4);
  const jitter = Float32Array.from(base, (x, i) => x + (((i * 7919) % 13) - 6) * 1e-7);
  for (const params of [
    { temperature: 1, topK: 50, topP: 1 },
    { temperature: 0.8, topK: 0, topP: 0.9 },
    { temperature: 1.2, topK: 200, topP: 0.95 },
  ]) {
    for (const u of [0.03, 0.21, 0.37, 0.5, 0.66, 0.81, 0.97]) {
      const fixed = { uniform: () => u };
      assert.equal(
        sampleToken(jitter, params, fixed),
        sampleToken(base, params, fixed),
        `${JSON.stringify(params)} u=${u}`,
      );
    }
  }
});

test('penalties: repetition over every token seen (÷ positive, × negative), presence and frequency over new tokens', () => {
  const logits = Float32Array.from([2, -2, 1, 3]);
  const seen = new Set([0, 1]);
  const generated = new Map([
    [1, 2],
    [3, 1],
  ]);
  const none = applyPenalties(logits, { temperature: 1, topK: 0, topP: 1 }, seen, generated);
  assert.deepEqual(Array.from(none), [2, -2, 1, 3]);
  const rep = applyPenalties(logits, { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 2 }, seen, generated);
  assert.deepEqual(Array.from(rep), [1, -4, 1, 3]);
  const pf = applyPenalties(
    logits,
    { temperature: 1, topK: 0, topP: 1, presencePenalty: 0.5, frequencyPenalty: 0.25 },
    seen,
    generated,
  );
  assert.deepEqual(Array.from(pf), [2, -2 - 0.5 - 0.5, 1, 3 - 0.5 - 0.25]);
  assert.equal(logits[0], 2, 'the input row is left alone');
  assert.throws(
    () => validateSamplingParams({ temperature: 1, topK: 0, topP: 1, repetitionPenalty: 0 }),
    /repetitionPenalty/,
  );
  assert.throws(
    () => validateSamplingParams({ temperature: 1, topK: 0, topP: 1, presencePenalty: 3 }),
    /presencePenalty/,
  );
});
