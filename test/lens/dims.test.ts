import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainDims, isWordLike } from '../../src/lens/dims.js';
import type { SteerSvd } from '../../src/lens/svd.js';
import { tensor } from '../../src/util/tensor.js';

test('isWordLike keeps whole words with an optional space marker', () => {
  for (const w of [' love', 'hate', 'Ġgreat', '▁bien', ' Straße', ' привет']) assert.ok(isWordLike(w), w);
  for (const w of ['a', ' a', '  two', '123', ' don’t', '<|endoftext|>', ' ing!', '', ' '])
    assert.ok(!isWordLike(w), w);
});

test('explainDims ranks tokens by E·v (not E·u) and filters non-words and specials', () => {
  // d = 2; v = e0 (what the steer writes), u = e1 (what it reads).
  const svd: SteerSvd = { values: [2], u: [Float64Array.of(0, 1)], v: [Float64Array.of(1, 0)] };
  const tokens = [' good', ' bad', '!!', ' fine', '<s>', ' meh'];
  const e = tensor([6, 2], Float32Array.of(3, -9, -2, 9, 10, 0, 1, 5, 20, 0, 0, 0));
  const [dim] = explainDims(svd, e, tokens, { top: 2, wordLike: true, isSpecial: (id) => id === 4 });
  assert.equal(dim!.singularValue, 2);
  assert.equal(dim!.alignment, 0);
  assert.deepEqual(
    dim!.positive.map((t) => t.token),
    [' good', ' fine'],
  );
  assert.deepEqual(
    dim!.negative.map((t) => t.token),
    [' bad', ' meh'],
  );
  assert.deepEqual(dim!.positive[0], { token: ' good', id: 0, score: 3 });
  const [all] = explainDims(svd, e, tokens, { top: 1, wordLike: false });
  assert.deepEqual(
    all!.positive.map((t) => t.token),
    ['<s>'],
  );
});

test('explainDims rejects mismatched sizes', () => {
  const svd: SteerSvd = { values: [1], u: [Float64Array.of(1, 0, 0)], v: [Float64Array.of(1, 0, 0)] };
  assert.throws(() => explainDims(svd, tensor([2, 2]), ['a', 'b'], { top: 1, wordLike: false }), {
    code: 'MODEL_MISMATCH',
  });
  const svd2: SteerSvd = { values: [1], u: [Float64Array.of(1, 0)], v: [Float64Array.of(1, 0)] };
  assert.throws(() => explainDims(svd2, tensor([3, 2]), ['a', 'b'], { top: 1, wordLike: false }), {
    code: 'SHAPE_MISMATCH',
  });
  assert.throws(() => explainDims(svd2, tensor([2, 2]), ['a', 'b'], { top: 0, wordLike: false }), {
    code: 'BAD_ARGUMENT',
  });
});
