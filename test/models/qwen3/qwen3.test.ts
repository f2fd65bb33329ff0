/** Qwen3: config.json parsing with Qwen3Config's defaults, and the per-head q/k norms in the reference forward. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MapWeightStore } from '../../../src/formats/weights.js';
import { expectedWeights, parseConfig } from '../../../src/models/qwen3/config.js';
import { parseDecoderConfig, referenceForward } from '../../../src/models/registry.js';
import type { Tensor } from '../../../src/util/tensor.js';
import { tinyCheckpoint } from '../../helpers/tinyModels.js';

const SIZES = {
  vocab_size: 64,
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};
const IDS = [1, 5, 9, 2, 7, 3, 11, 4];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('qwen3 defaults as Qwen3Config: head_dim 128 (not hidden/heads), 32 kv heads, untied, no biases, no window', () => {
  const { num_key_value_heads: _, ...mha } = SIZES;
  const cfg = parseConfig({ model_type: 'qwen3', ...mha, num_attention_heads: 32 }, 'c');
  assert.equal(cfg.arch, 'qwen3');
  assert.deepEqual([cfg.headDim, cfg.numKvHeads, cfg.maxPositions, cfg.normEps], [128, 32, 32768, 1e-6]);
  assert.deepEqual([cfg.qkvBias, cfg.outBias, cfg.tiedEmbeddings], [false, false, false]);
  assert.equal(cfg.slidingWindow, undefined);
  assert.equal(cfg.bosTokenId, undefined);
  const names = expectedWeights(cfg).map((w) => w.name);
  assert.ok(names.includes('model.layers.3.self_attn.q_norm.weight'));
  assert.ok(names.includes('lm_head.weight'));
  assert.ok(!names.some((n) => n.endsWith('.bias')));
  // head_dim null: hidden_size / heads, as the modeling code's fallback.
  assert.equal(parseConfig({ model_type: 'qwen3', ...SIZES, head_dim: null }, 'c').headDim, 16);
});

test('qwen3: attention_bias puts biases on q, k, v and o; use_sliding_window windows the layers from max_window_layers', () => {
  const biased = parseConfig({ model_type: 'qwen3', ...SIZES, head_dim: 16, attention_bias: true }, 'c');
  const names = expectedWeights(biased).map((w) => w.name);
  for (const p of ['q', 'k', 'v', 'o']) assert.ok(names.includes(`model.layers.0.self_attn.${p}_proj.bias`), p);
  const windowed = parseConfig(
    { model_type: 'qwen3', ...SIZES, use_sliding_window: true, sliding_window: 64, max_window_layers: 2 },
    'c',
  );
  assert.deepEqual(windowed.slidingWindow, { size: 64, layers: [2, 3] });
  // sliding_window alone does nothing (Qwen3Config drops it without use_sliding_window).
  assert.equal(parseConfig({ model_type: 'qwen3', ...SIZES, sliding_window: 64 }, 'c').slidingWindow, undefined);
  for (const rope_type of ['longrope', 'dynamic'])
    assert.throws(
      () => parseDecoderConfig({ model_type: 'qwen3', ...SIZES, rope_scaling: { rope_type, factor: 2 } }, 'c'),
      (e: Error & { code?: string }) => e.code === 'UNSUPPORTED' && e.message.includes(`"${rope_type}"`),
    );
  const yarn = { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 }; // Qwen3's long context
  assert.equal(parseConfig({ model_type: 'qwen3', ...SIZES, rope_scaling: yarn }, 'c').rope!.scaling!.type, 'yarn');
});

test('qwen3 q/k norms: scaling a head of q_proj / k_proj changes nothing (RMSNorm per head), unlike llama', () => {
  const ck = tinyCheckpoint('qwen3', { seed: 4 });
  const cfg = parseDecoderConfig(ck.config, 'tiny qwen3');
  const hd = cfg.headDim;
  const scaled = new Map<string, Tensor>();
  for (const n of ck.weights.names()) {
    const t = ck.weights.get(n);
    // Rows of head 1 of every q_proj and k_proj times 5.
    const rowsOfHead1 = (i: number) => Math.floor(i / t.shape[1]!) >= hd && Math.floor(i / t.shape[1]!) < 2 * hd;
    scaled.set(
      n,
      /self_attn\.[qk]_proj\.weight$/.test(n) ? { ...t, data: t.data.map((v, i) => (rowsOfHead1(i) ? 5 * v : v)) } : t,
    );
  }
  const a = referenceForward(cfg, ck.weights, IDS).logits.data;
  const b = referenceForward(cfg, new MapWeightStore(scaled), IDS).logits.data;
  assert.ok(maxAbsDiff(a, b) < 1e-4, `per-head norm should cancel the scale (|Δ| = ${maxAbsDiff(a, b)})`);
  // The q_norm gains themselves do matter.
  const gains = new Map(scaled);
  const qn = 'model.layers.0.self_attn.q_norm.weight';
  gains.set(qn, { ...ck.weights.get(qn), data: ck.weights.get(qn).data.map((v, i) => (i === 0 ? v * 3 : v)) });
  assert.ok(maxAbsDiff(a, referenceForward(cfg, new MapWeightStore(gains), IDS).logits.data) > 1e-3);
});
