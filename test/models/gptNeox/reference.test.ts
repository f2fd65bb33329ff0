/**
 * GPT-NeoX reference forward: a hand-checkable 1-layer model (per-head interleaved query_key_value, parallel and
 * sequential residual) and invariants on tiny random checkpoints (causality, final LayerNorm, heads).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyCheckpoint } from '../../helpers/tinyModels.js';
import { MapWeightStore } from '../../../src/formats/weights.js';
import { parseDecoderConfig } from '../../../src/models/registry.js';
import { referenceForward } from '../../../src/models/registry.js';
import { erf } from '../../../src/models/referenceOps.js';
import { tensor, type Tensor } from '../../../src/util/tensor.js';

const t = (shape: number[], v: number[]) => tensor(shape, Float32Array.from(v));
const zeros = (shape: number[]) => tensor(shape);
const ones = (n: number) => t([n], Array(n).fill(1));
const row = (x: Tensor, i: number) => x.data.subarray(i * x.shape[1], (i + 1) * x.shape[1]);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const norm = (x: number[]) => {
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const sd = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
  return x.map((v) => (v - mean) / sd);
};
const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
const plus = (...xs: number[][]) => xs[0].map((_, i) => xs.reduce((s, x) => s + x[i], 0));

/** d 4, 2 heads of 2, q = k = 0 (uniform attention), v = ln1(x) through the v rows only, dense = I, mlp = gelu(ln2(·)). */
function handModel(parallel: boolean) {
  const cfg = parseDecoderConfig(
    {
      model_type: 'gpt_neox',
      vocab_size: 2,
      hidden_size: 4,
      intermediate_size: 8,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      rotary_pct: 1,
      layer_norm_eps: 0,
      use_parallel_residual: parallel,
    },
    'hand',
  );
  // query_key_value rows are [head, (q|k|v), head_dim]: row h·6 + 2·2 + j is v of head h, channel j.
  const qkv = zeros([12, 4]);
  for (let h = 0; h < 2; h++) for (let j = 0; j < 2; j++) qkv.data[(h * 6 + 4 + j) * 4 + (h * 2 + j)] = 1;
  const eye = (r: number, c: number) => {
    const m = zeros([r, c]);
    for (let i = 0; i < Math.min(r, c); i++) m.data[i * c + i] = 1;
    return m;
  };
  const p = 'gpt_neox.layers.0';
  const w = new Map<string, Tensor>([
    ['gpt_neox.embed_in.weight', t([2, 4], [1, 2, 3, 5, -1, 0, 2, 0.5])],
    [`${p}.input_layernorm.weight`, ones(4)],
    [`${p}.input_layernorm.bias`, zeros([4])],
    [`${p}.post_attention_layernorm.weight`, ones(4)],
    [`${p}.post_attention_layernorm.bias`, zeros([4])],
    [`${p}.attention.query_key_value.weight`, qkv],
    [`${p}.attention.query_key_value.bias`, zeros([12])],
    [`${p}.attention.dense.weight`, eye(4, 4)],
    [`${p}.attention.dense.bias`, zeros([4])],
    [`${p}.mlp.dense_h_to_4h.weight`, eye(8, 4)],
    [`${p}.mlp.dense_h_to_4h.bias`, zeros([8])],
    [`${p}.mlp.dense_4h_to_h.weight`, eye(4, 8)],
    [`${p}.mlp.dense_4h_to_h.bias`, zeros([4])],
    ['gpt_neox.final_layer_norm.weight', ones(4)],
    ['gpt_neox.final_layer_norm.bias', zeros([4])],
    ['embed_out.weight', t([2, 4], [1, 0, 0, 0, 0, 0, 0, 1])],
  ]);
  return { cfg, weights: new MapWeightStore(w) };
}

for (const parallel of [true, false]) {
  test(`hand-checked 1-layer model, ${parallel ? 'parallel' : 'sequential'} residual`, () => {
    const { cfg, weights } = handModel(parallel);
    const out = referenceForward(cfg, weights, [0, 1]);
    const x0 = [1, 2, 3, 5];
    const x1 = [-1, 0, 2, 0.5];
    const mlp = (y: number[]) => norm(y).map(gelu);
    const layer = (x: number[], a: number[]) => (parallel ? plus(x, a, mlp(x)) : plus(plus(x, a), mlp(plus(x, a))));
    const a0 = norm(x0); // one key: attention returns its v
    const a1 = plus(norm(x0), norm(x1)).map((v) => v / 2); // q = k = 0: the mean of both v
    const want = [norm(layer(x0, a0)), norm(layer(x1, a1))];
    assert.ok(maxAbsDiff(out.hidden.data, want.flat()) < 1e-6, `${[...out.hidden.data]} vs ${want.flat()}`);
    assert.ok(maxAbsDiff(out.logits.data, [want[0][0], want[0][3], want[1][0], want[1][3]]) < 1e-6);
  });
}

for (const kind of ['gpt_neox', 'gpt_neox-sequential'] as const) {
  test(`${kind}: causal, hidden is the final LayerNorm output, head is embed_out (or embed_in when tied)`, () => {
    const { config, weights } = tinyCheckpoint(kind, { seed: 11 });
    const cfg = parseDecoderConfig(config, kind);
    assert.equal(cfg.rope!.rotaryDim, kind === 'gpt_neox' ? 4 : 8);
    const a = referenceForward(cfg, weights, [1, 2, 3, 4, 5, 6]);
    const b = referenceForward(cfg, weights, [1, 2, 3, 4, 50, 51]);
    for (let i = 0; i < 4; i++) assert.ok(maxAbsDiff(row(a.logits, i), row(b.logits, i)) < 1e-6);
    assert.ok(maxAbsDiff(row(a.logits, 4), row(b.logits, 4)) > 1e-3);
    const g = weights.get('gpt_neox.final_layer_norm.weight').data;
    const beta = weights.get('gpt_neox.final_layer_norm.bias').data;
    const z = [...row(a.hidden, 2)].map((h, j) => (h - beta[j]) / g[j]);
    assert.ok(maxAbsDiff(norm(z), z) < 1e-3);
    const E = weights.get('embed_out.weight').data;
    let s = 0;
    for (let j = 0; j < cfg.hiddenSize; j++) s += a.hidden.data[j] * E[3 * cfg.hiddenSize + j];
    assert.ok(Math.abs(s - a.logits.data[3]) < 1e-5);

    const tied = tinyCheckpoint(kind, { seed: 11, tied: true });
    const tiedCfg = parseDecoderConfig(tied.config, kind);
    assert.equal(tied.weights.has('embed_out.weight'), false);
    const c = referenceForward(tiedCfg, tied.weights, [1, 2]);
    const Ein = tied.weights.get('gpt_neox.embed_in.weight').data;
    let s2 = 0;
    for (let j = 0; j < cfg.hiddenSize; j++) s2 += c.hidden.data[j] * Ein[3 * cfg.hiddenSize + j];
    assert.ok(Math.abs(s2 - c.logits.data[3]) < 1e-5);
  });
}

test('parallel and sequential residual differ on the same weights', () => {
  const { config, weights } = tinyCheckpoint('gpt_neox', { seed: 1 });
  const par = referenceForward(parseDecoderConfig(config, 'p'), weights, [1, 2, 3]);
  const seq = referenceForward(
    parseDecoderConfig({ ...config, use_parallel_residual: false }, 's'),
    weights,
    [1, 2, 3],
  );
  assert.ok(maxAbsDiff(par.logits.data, seq.logits.data) > 1e-3);
});
