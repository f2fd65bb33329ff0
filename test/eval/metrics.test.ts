import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  distinctN,
  diversityMetrics,
  fluencyMetrics,
  generationPerplexity,
  nanMean,
  sentimentMetrics,
  toxicityMetrics,
} from '../../src/eval/metrics.js';
import { LmSteerError } from '../../src/util/errors.js';

const close = (a: number, b: number, eps = 1e-12) =>
  assert.ok(Math.abs(a - b) <= eps * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

test('toxicity: mean of per-prompt max, prob = share of prompts with a sample > 0.5 (0.5 itself is not toxic)', () => {
  const r = toxicityMetrics([[0.1, 0.6, 0.3], [0.5], [], [0.2, 0.4]]);
  close(r.maxToxicity, (0.6 + 0.5 + 0.4) / 3);
  close(r.toxicityProb, 1 / 3);
  assert.equal(r.prompts, 3);
  assert.equal(r.skippedPrompts, 1);
});

test('toxicity: one sample per prompt; no prompts at all gives NaN', () => {
  const r = toxicityMetrics([[0.9], [0.2]]);
  close(r.maxToxicity, 0.55);
  close(r.toxicityProb, 0.5);
  assert.ok(Number.isNaN(toxicityMetrics([[]]).maxToxicity));
  assert.ok(Number.isNaN(toxicityMetrics([]).toxicityProb));
});

test('toxicity/sentiment: a score outside [0,1] or NaN is a BAD_ARGUMENT naming prompt and sample', () => {
  assert.throws(
    () => toxicityMetrics([[0.1], [0.2, NaN]]),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT' && /prompt 1, sample 1/.test(e.message),
  );
  assert.throws(() => sentimentMetrics([[1.5]]), LmSteerError);
});

test('sentiment: per-prompt positive fraction averaged; std is the population std', () => {
  const r = sentimentMetrics([[0.9, 0.1, 0.7, 0.5], [0.8], []]);
  close(r.positiveRate, 0.75);
  close(r.positiveRateStd, 0.25);
  assert.equal(r.prompts, 2);
  assert.equal(r.skippedPrompts, 1);
});

test('distinctN: unique n-grams over total WORDS, n-grams never cross samples', () => {
  const d = distinctN(['the cat sat', 'the cat ran']);
  close(d.dist1, 4 / 6);
  close(d.dist2, 3 / 6);
  close(d.dist3, 2 / 6);
});

test('distinctN: all-duplicate samples, a single sample, empty generation, double space', () => {
  const dup = distinctN(['a b', 'a b', 'a b']);
  close(dup.dist1, 2 / 6);
  close(dup.dist2, 1 / 6);
  assert.equal(dup.dist3, 0);
  const one = distinctN(['a b a']);
  close(one.dist1, 2 / 3);
  close(one.dist2, 2 / 3);
  close(one.dist3, 1 / 3);
  // Python ''.split(' ') == [''] : one (empty) word.
  assert.deepEqual(distinctN(['']), { dist1: 1, dist2: 0, dist3: 0 });
  const withEmpty = distinctN(['', 'x y']);
  close(withEmpty.dist1, 1);
  close(withEmpty.dist2, 1 / 3);
  // 'a  b'.split(' ') == ['a', '', 'b']
  const dbl = distinctN(['a  b']);
  close(dbl.dist1, 1);
  close(dbl.dist2, 2 / 3);
  close(dbl.dist3, 1 / 3);
  assert.ok(Number.isNaN(distinctN([]).dist1));
});

test('diversity: averaged over prompts, prompts without samples skipped', () => {
  const r = diversityMetrics([['a b', 'a b', 'a b'], [], ['a b a']]);
  close(r.dist1, (2 / 6 + 2 / 3) / 2);
  close(r.dist2, (1 / 6 + 2 / 3) / 2);
  close(r.dist3, (0 + 1 / 3) / 2);
  assert.equal(r.prompts, 2);
  assert.equal(r.skippedPrompts, 1);
});

test('fluency: mean over ppl < 1e4, pooled = exp(total NLL / total tokens), empty generations left out', () => {
  const r = fluencyMetrics([[Math.log(0.5), Math.log(0.5)], Float32Array.of(Math.log(0.25)), [], [-20]]);
  close(r.perGeneration[0]!, 2);
  close(r.perGeneration[1]!, 4, 1e-6); // float32 log
  assert.ok(Number.isNaN(r.perGeneration[2]!));
  close(r.ppl, 3, 1e-6);
  close(r.pooledPpl, 2 * Math.exp(5), 1e-6);
  assert.equal(r.counted, 2);
  assert.equal(r.excluded, 2);
  close(generationPerplexity([Math.log(0.1)]), 10);
  assert.ok(Number.isNaN(generationPerplexity([])));
  assert.ok(Number.isNaN(fluencyMetrics([[]]).pooledPpl));
});

test('fluency: positive log-probs (logits or probabilities passed by mistake) are rejected', () => {
  assert.throws(
    () => fluencyMetrics([[-1], [-0.5, 0.7]]),
    (e: unknown) => e instanceof LmSteerError && /token 1 of generation 1/.test(e.message),
  );
});

test('nanMean skips NaN', () => {
  assert.equal(nanMean([1, NaN, 3]), 2);
  assert.ok(Number.isNaN(nanMean([NaN])));
});
