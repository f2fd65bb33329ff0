/**
 * GPT-2 reference forward: a hand-checkable 1-layer d = 2 model (Conv1D orientation, q|k|v split, learned
 * positions, causal averaging, tied head) and invariants on a tiny random checkpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyCheckpoint } from '../../helpers/tinyModels.js';
import { MapWeightStore } from '../../../src/formats/weights.js';
import { parseDecoderConfig } from '../../../src/models/registry.js';
import { referenceForward } from '../../../src/models/registry.js';
import { tensor, type Tensor } from '../../../src/util/tensor.js';

const t = (shape: number[], v: number[]) => tensor(shape, Float32Array.from(v));
const zeros = (shape: number[]) => tensor(shape);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const row = (x: Tensor, i: number) => x.data.subarray(i * x.shape[1], (i + 1) * x.shape[1]);

test('1 layer, d = 2, 1 head: the numbers by hand', () => {
  const cfg = parseDecoderConfig(
    { model_type: 'gpt2', vocab_size: 3, n_embd: 2, n_layer: 1, n_head: 1, n_positions: 4, layer_norm_epsilon: 0 },
    'hand',
  );
  // q = k = 0 (uniform attention), v = ln_1(x) (the third block of c_attn's columns), c_proj: out = [0, in_0]
  // (asymmetric, so a transposed Conv1D shows), MLP zero. LayerNorm of a 2-vector [a, b] is ±[1, −1].
  const cAttn = zeros([2, 6]);
  cAttn.data[0 * 6 + 4] = 1;
  cAttn.data[1 * 6 + 5] = 1;
  const w = new Map<string, Tensor>([
    ['wte.weight', t([3, 2], [3, 1, 0, 2, 5, 5.5])],
    ['wpe.weight', t([4, 2], [0, 0, 1, 0, 0, 0, 0, 0])],
    ['h.0.ln_1.weight', t([2], [1, 1])],
    ['h.0.ln_1.bias', zeros([2])],
    ['h.0.attn.c_attn.weight', cAttn],
    ['h.0.attn.c_attn.bias', zeros([6])],
    ['h.0.attn.c_proj.weight', t([2, 2], [0, 1, 0, 0])],
    ['h.0.attn.c_proj.bias', zeros([2])],
    ['h.0.ln_2.weight', t([2], [1, 1])],
    ['h.0.ln_2.bias', zeros([2])],
    ['h.0.mlp.c_fc.weight', zeros([2, 8])],
    ['h.0.mlp.c_fc.bias', zeros([8])],
    ['h.0.mlp.c_proj.weight', zeros([8, 2])],
    ['h.0.mlp.c_proj.bias', t([2], [0, 0.25])],
    ['ln_f.weight', t([2], [1, 2])],
    ['ln_f.bias', t([2], [0, 1])],
  ]);
  const out = referenceForward(cfg, new MapWeightStore(w), [0, 1]);
  // t=0: x = [3,1] (+wpe[0] = 0); v0 = ln_1 = [1,−1]; att = v0; c_proj → [0, 1]; mlp bias → [0, .25]
  //      x = [3, 2.25] → ln_f: [1, −1]·[1, 2] + [0, 1] = [1, −1]
  // t=1: x = [0,2] + wpe[1] [1,0] = [1,2]; v1 = [−1, 1]; att = (v0 + v1)/2 = [0, 0] → x = [1, 2.25] → [−1, 3]
  assert.deepEqual([...out.hidden.data], [1, -1, -1, 3]);
  // tied head: logits = hidden · wteᵀ
  assert.deepEqual([...out.logits.data], [3 - 1, 0 - 2, 5 - 5.5, -3 + 3, 0 + 6, -5 + 16.5]);
});

test('tiny gpt2: causal, hidden is ln_f output, head tied to wte; the transformer. prefix is accepted', () => {
  const { config, weights } = tinyCheckpoint('gpt2', { seed: 9 });
  const cfg = parseDecoderConfig(config, 'gpt2');
  const a = referenceForward(cfg, weights, [1, 2, 3, 4, 5]);
  const b = referenceForward(cfg, weights, [1, 2, 3, 60, 61]);
  for (let i = 0; i < 3; i++) assert.ok(maxAbsDiff(row(a.logits, i), row(b.logits, i)) < 1e-6);
  assert.ok(maxAbsDiff(row(a.logits, 3), row(b.logits, 3)) > 1e-3);

  // (hidden − b)/w is a standardized row: mean 0, variance 1 (up to eps)
  const g = weights.get('ln_f.weight').data;
  const beta = weights.get('ln_f.bias').data;
  for (let i = 0; i < 5; i++) {
    const z = [...row(a.hidden, i)].map((h, j) => (h - beta[j]) / g[j]);
    const mean = z.reduce((s, v) => s + v, 0) / z.length;
    const variance = z.reduce((s, v) => s + (v - mean) ** 2, 0) / z.length;
    assert.ok(Math.abs(mean) < 1e-5 && Math.abs(variance - 1) < 1e-3, `row ${i}: mean ${mean}, var ${variance}`);
  }
  const wte = weights.get('wte.weight').data;
  let s = 0;
  for (let j = 0; j < cfg.hiddenSize; j++) s += a.hidden.data[j] * wte[7 * cfg.hiddenSize + j];
  assert.ok(Math.abs(s - a.logits.data[7]) < 1e-5);

  const prefixed = tinyCheckpoint('gpt2', { seed: 9, transformerPrefix: true });
  assert.ok(prefixed.weights.has('transformer.h.0.attn.c_attn.weight'));
  assert.deepEqual(referenceForward(cfg, prefixed.weights, [1, 2, 3, 4, 5]).logits.data, a.logits.data);
});

test('untied gpt2 uses lm_head.weight; positions past n_positions are refused', () => {
  const { config, weights } = tinyCheckpoint('gpt2', { seed: 2, tied: false, maxPositions: 8 });
  const cfg = parseDecoderConfig(config, 'gpt2');
  assert.ok(weights.has('lm_head.weight'));
  const out = referenceForward(cfg, weights, [1, 2]);
  const E = weights.get('lm_head.weight').data;
  let s = 0;
  for (let j = 0; j < cfg.hiddenSize; j++) s += out.hidden.data[j] * E[5 * cfg.hiddenSize + j];
  assert.ok(Math.abs(s - out.logits.data[5]) < 1e-5);
  assert.throws(() => referenceForward(cfg, weights, Array(9).fill(1)), { code: 'LIMIT' });
});
