/**
 * Phi-3: config.json parsing (fused weights, partial rotary, sliding window, su/longrope), LongRoPE's
 * frequencies and attention factor, and the graph's per-row choice of the short or long table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectedWeights, parseConfig } from '../../../src/models/phi3/config.js';
import { parseDecoderConfig, referenceForward } from '../../../src/models/registry.js';
import { ropeAttentionScaling, ropeInvFreq } from '../../../src/models/rope.js';
import { createDecoderSession } from '../../../src/runtime/session.js';
import { OrtDecoder } from '../../../src/runtime/ortDecoder.js';
import type { Tensor } from '../../../src/util/tensor.js';
import { decodeSteps } from '../../helpers/decodeSteps.js';
import { tinyCheckpoint } from '../../helpers/tinyModels.js';

type Err = Error & { code?: string };
const SIZES = { vocab_size: 64, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4 };
const factors = (n: number, base: number) => Array.from({ length: n }, (_, i) => base + i / n);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('phi3 defaults as Phi3Config: fused qkv_proj and gate_up_proj, MHA, eps 1e-5, 4096 positions, untied', () => {
  const cfg = parseConfig({ model_type: 'phi3', ...SIZES }, 'c');
  assert.equal(cfg.arch, 'phi3');
  assert.deepEqual([cfg.numKvHeads, cfg.headDim, cfg.rope!.rotaryDim, cfg.normEps], [4, 16, 16, 1e-5]);
  assert.deepEqual([cfg.maxPositions, cfg.tiedEmbeddings, cfg.bosTokenId, cfg.eosTokenIds], [4096, false, 1, [32000]]);
  assert.equal(cfg.slidingWindow, undefined);
  const shapes = Object.fromEntries(expectedWeights(cfg).map((w) => [w.name, w.shape]));
  assert.deepEqual(shapes['model.layers.0.self_attn.qkv_proj.weight'], [3 * 64, 64]);
  assert.deepEqual(shapes['model.layers.0.mlp.gate_up_proj.weight'], [2 * 96, 64]);
  assert.ok(!('model.layers.0.self_attn.q_proj.weight' in shapes));
  // GQA rows: q, then k, then v.
  const gqa = parseConfig({ model_type: 'phi3', ...SIZES, num_key_value_heads: 2 }, 'c');
  assert.deepEqual(expectedWeights(gqa).find((w) => w.name.endsWith('qkv_proj.weight'))!.shape, [(4 + 2 * 2) * 16, 64]);
});

test('phi3: sliding_window windows every layer (Phi-3-mini-4k: 2047); partial_rotary_factor (Phi-4-mini: 0.75)', () => {
  const cfg = parseConfig({ model_type: 'phi3', ...SIZES, sliding_window: 2047 }, 'c');
  assert.deepEqual(cfg.slidingWindow, { size: 2047, layers: [0, 1] });
  assert.equal(parseConfig({ model_type: 'phi3', ...SIZES, sliding_window: 262144 }, 'c').slidingWindow, undefined);
  assert.equal(parseConfig({ model_type: 'phi3', ...SIZES, partial_rotary_factor: 0.75 }, 'c').rope!.rotaryDim, 12);
  assert.throws(() => parseConfig({ model_type: 'phi3', ...SIZES, partial_rotary_factor: 0.1 }, 'c'), /partial_rotary/);
});

test('longrope: su and yarn are its old names; short factors up to the original context, long beyond; √(1 + ln s / ln L)', () => {
  for (const type of ['longrope', 'su', 'yarn']) {
    const cfg = parseDecoderConfig(
      {
        model_type: 'phi3',
        ...SIZES,
        max_position_embeddings: 131072,
        original_max_position_embeddings: 4096,
        rope_scaling: { type, short_factor: factors(8, 1), long_factor: factors(8, 4) },
      },
      'c',
    );
    const s = cfg.rope!.scaling!;
    assert.equal(s.type, 'longrope', type);
    assert.equal(s.originalMaxPositions, 4096);
    assert.equal(cfg.maxPositions, 131072);
    assert.ok(Math.abs(ropeAttentionScaling(cfg) - Math.sqrt(1 + Math.log(32) / Math.log(4096))) < 1e-15);
    const plain = (i: number) => 1 / Math.pow(10000, (2 * i) / 16);
    ropeInvFreq(cfg, 4096).forEach((f, i) => assert.ok(Math.abs(f - plain(i) / (1 + i / 8)) < 1e-15));
    ropeInvFreq(cfg, 4097).forEach((f, i) => assert.ok(Math.abs(f - plain(i) / (4 + i / 8)) < 1e-15));
  }
  // An explicit attention_factor wins; no extension (max = original) means factor 1.
  const given = parseDecoderConfig(
    {
      model_type: 'phi3',
      ...SIZES,
      rope_scaling: {
        type: 'longrope',
        short_factor: factors(8, 1),
        long_factor: factors(8, 1),
        attention_factor: 1.2,
      },
    },
    'c',
  );
  assert.equal(ropeAttentionScaling(given), 1.2);
  const wrongLength = { type: 'longrope', short_factor: factors(7, 1), long_factor: factors(8, 1) };
  assert.throws(
    () => parseDecoderConfig({ model_type: 'phi3', ...SIZES, rope_scaling: wrongLength }, 'c'),
    (e: Err) => e.code === 'BAD_FILE' && /short_factor.*8 factors/.test(e.message),
  );
  for (const type of ['dynamic2', 'dynamic'])
    assert.throws(
      () => parseDecoderConfig({ model_type: 'phi3', ...SIZES, rope_scaling: { type, factor: 2 } }, 'c'),
      (e: Err) => e.code === 'UNSUPPORTED' && e.message.includes(`"${type}"`),
    );
});

test('phi3 longrope graph: each row picks its table by its own length, batched, incremental and alone agree', async () => {
  const ck = tinyCheckpoint('phi3-longrope', { seed: 9 }); // original context 16
  const cfg = parseDecoderConfig(ck.config, 'tiny phi3-longrope');
  const dec = new OrtDecoder(await createDecoderSession(cfg, ck.weights, { cacheDir: false, threads: 1 }), cfg);
  try {
    const long = Array.from({ length: 20 }, (_, i) => (i * 5 + 1) % 64);
    const short = [3, 1, 4, 1, 5, 9, 2, 6];
    const V = cfg.vocabSize;
    const row = (t: Tensor, b: number, T: number, i: number) =>
      (t.data as Float32Array).subarray((b * T + i) * V, (b * T + i + 1) * V);
    // The long row uses the long factors and the short one the short factors, in one batch.
    const both = await dec.forward([long, short]);
    for (const [b, ids] of [long, short].entries()) {
      const ref = referenceForward(cfg, ck.weights, ids).logits;
      for (let t = 0; t < ids.length; t++) {
        const d = maxAbsDiff(row(both.logits, b, 20, t), ref.data.subarray(t * V, (t + 1) * V));
        assert.ok(d <= 1e-4, `row ${b} position ${t}: |Δ| = ${d}`);
      }
    }
    const shortAsLong = referenceForward(
      {
        ...cfg,
        rope: { ...cfg.rope!, scaling: { ...cfg.rope!.scaling!, shortFactor: cfg.rope!.scaling!.longFactor } },
      },
      ck.weights,
      short,
    ).logits;
    assert.ok(maxAbsDiff(row(both.logits, 1, 20, 7), shortAsLong.data.subarray(7 * V)) > 1e-3, 'the tables differ');
    // Past the original context from the prefill on: decoding equals recomputing.
    const prompt = long.slice(0, 17);
    const steps = await decodeSteps(dec, [prompt], 3, (s) => [long[17 + s]!]);
    const full = referenceForward(cfg, ck.weights, long).logits;
    for (let s = 0; s <= 3; s++) {
      const d = maxAbsDiff(steps[s]!, full.data.subarray((16 + s) * V, (17 + s) * V));
      assert.ok(d <= 1e-4, `step ${s}: |Δ| = ${d}`);
    }
  } finally {
    await dec.session.release();
  }
});
