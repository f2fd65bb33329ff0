/**
 * Gemma 2 / Gemma 3 (text): config.json parsing with transformers' defaults and refusals, and the family's
 * quirks in the reference and the graph: √d in the embedding's dtype (a bf16 checkpoint), (1 + w) norms, soft-
 * capping, layer types, and Gemma 3's local RoPE base.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensorsModel, writeSafetensors } from '../../../src/formats/safetensors.js';
import { MapWeightStore } from '../../../src/formats/weights.js';
import { embeddingScale, expectedWeights, parseConfig } from '../../../src/models/gemma/config.js';
import { checkWeights, parseDecoderConfig, referenceForward } from '../../../src/models/registry.js';
import { createDecoderSession } from '../../../src/runtime/session.js';
import { OrtDecoder } from '../../../src/runtime/ortDecoder.js';
import { tinyCheckpoint } from '../../helpers/tinyModels.js';
import type { Tensor } from '../../../src/util/tensor.js';

type Err = Error & { code?: string };
const SIZES = { vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 6, num_attention_heads: 4 };
const IDS = [1, 5, 9, 2, 7, 3, 11, 4];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('gemma2 defaults as Gemma2Config: caps 30 / 50, scalar 256, window 4096 on even layers, tied, bos 2 eos 1', () => {
  const cfg = parseConfig({ model_type: 'gemma2', ...SIZES }, 'c');
  assert.equal(cfg.arch, 'gemma');
  assert.equal(cfg.finalLogitSoftcap, 30);
  assert.deepEqual(cfg.attention, { scale: 1 / 16, softcap: 50 });
  assert.deepEqual(cfg.slidingWindow, { size: 4096, layers: [0, 2, 4] });
  assert.equal(cfg.maxPositions, 8192);
  assert.deepEqual([cfg.numKvHeads, cfg.headDim, cfg.rope!.theta, cfg.normEps], [4, 256, 10000, 1e-6]);
  assert.equal(cfg.activation, 'gelu_new'); // gelu_pytorch_tanh
  assert.equal(cfg.tiedEmbeddings, true);
  assert.deepEqual([cfg.bosTokenId, cfg.eosTokenIds], [2, [1]]);
  assert.equal(cfg.localRope, undefined);
  const names = expectedWeights(cfg).map((w) => w.name);
  for (const n of ['pre_feedforward_layernorm', 'post_feedforward_layernorm', 'post_attention_layernorm'])
    assert.ok(names.includes(`model.layers.0.${n}.weight`), n);
  assert.ok(!names.includes('lm_head.weight'));
  assert.ok(!names.some((n) => n.includes('q_norm')));
});

test('gemma2: null soft-caps and window turn them off; layer_types overrides the alternation', () => {
  const cfg = parseConfig(
    {
      model_type: 'gemma2',
      ...SIZES,
      final_logit_softcapping: null,
      attn_logit_softcapping: null,
      sliding_window: null,
    },
    'c',
  );
  assert.equal(cfg.finalLogitSoftcap, undefined);
  assert.deepEqual(cfg.attention, { scale: 1 / 16 });
  assert.equal(cfg.slidingWindow, undefined);
  const types = ['full_attention', 'sliding_attention', 'sliding_attention', 'full_attention', 'full_attention'];
  const typed = parseConfig({ model_type: 'gemma2', ...SIZES, num_hidden_layers: 5, layer_types: types }, 'c');
  assert.deepEqual(typed.slidingWindow!.layers, [1, 2]);
  assert.throws(
    () => parseConfig({ model_type: 'gemma2', ...SIZES, layer_types: ['full_attention'] }, 'c'),
    /layer_types/,
  );
});

test('gemma3_text defaults: 5 sliding layers then 1 global, local base 1e4 and global 1e6, no caps, window 4096', () => {
  const cfg = parseConfig({ model_type: 'gemma3_text', ...SIZES, num_hidden_layers: 12 }, 'c');
  const sliding = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10];
  assert.deepEqual(cfg.slidingWindow, { size: 4096, layers: sliding });
  assert.deepEqual(cfg.localRope, { theta: 10000, rotaryDim: 256, scaling: undefined, layers: sliding });
  assert.equal(cfg.rope!.theta, 1_000_000);
  assert.equal(cfg.finalLogitSoftcap, undefined);
  assert.deepEqual(cfg.attention, { scale: 1 / 16 });
  assert.equal(cfg.maxPositions, 131072);
  assert.ok(expectedWeights(cfg).some((w) => w.name === 'model.layers.0.self_attn.q_norm.weight'));
  // The 4B+ text configs: linear scaling on the global layers only; sliding_window_pattern as older files write it.
  const big = parseConfig(
    {
      model_type: 'gemma3_text',
      ...SIZES,
      rope_scaling: { rope_type: 'linear', factor: 8 },
      sliding_window: 1024,
      sliding_window_pattern: 3,
    },
    'c',
  );
  assert.deepEqual(big.rope!.scaling, { type: 'linear', factor: 8 });
  assert.equal(big.localRope!.scaling, undefined);
  assert.deepEqual(big.slidingWindow, { size: 1024, layers: [0, 1, 3, 4] });
});

test('gemma3_text: transformers 5 rope_parameters per layer type; a window as wide as the context keeps the local RoPE', () => {
  const cfg = parseConfig(
    {
      model_type: 'gemma3_text',
      ...SIZES,
      max_position_embeddings: 512,
      sliding_window: 512,
      rope_parameters: {
        full_attention: { rope_type: 'linear', factor: 4, rope_theta: 500000 },
        sliding_attention: { rope_type: 'default', rope_theta: 20000 },
      },
    },
    'c',
  );
  assert.deepEqual(cfg.rope, { theta: 500000, rotaryDim: 256, scaling: { type: 'linear', factor: 4 } });
  assert.equal(cfg.localRope!.theta, 20000);
  assert.deepEqual(cfg.localRope!.layers, [0, 1, 2, 3, 4]);
  assert.equal(cfg.slidingWindow, undefined); // 512 of 512 positions: nothing is cut
});

test('gemma: refused fields name themselves (UNSUPPORTED)', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ model_type: 'gemma3_text', use_bidirectional_attention: true }, /use_bidirectional_attention/],
    [{ model_type: 'gemma3_text', attn_logit_softcapping: 50 }, /attn_logit_softcapping.*does not apply it/],
    [{ model_type: 'gemma2', hidden_activation: 'gelu_fast' }, /hidden_activation/],
    [
      { model_type: 'gemma2', rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [1] } },
      /rope_scaling\.type.*longrope/,
    ],
    [{ model_type: 'gemma3_text', rope_scaling: { rope_type: 'mrope' } }, /rope_type.*mrope/],
    // dynamic NTK grows its base per call; the graph's one table would rotate short sequences differently
    [{ model_type: 'gemma2', rope_scaling: { type: 'dynamic', factor: 2 } }, /rope_scaling\.type.*dynamic/],
  ];
  for (const [fields, re] of cases) {
    assert.throws(
      () => parseDecoderConfig({ ...SIZES, ...fields }, 'cfg.json'),
      (e: Err) => e.code === 'UNSUPPORTED' && re.test(e.message) && e.message.includes('cfg.json'),
      JSON.stringify(fields),
    );
  }
});

test('embedding scale √d in the stored dtype: bf16 rounds it (√40 → 6.3125), float32 keeps it', async () => {
  const ck = tinyCheckpoint('gemma3', { seed: 3, d: 40 });
  const cfg = parseDecoderConfig(ck.config, 'tiny gemma3');
  assert.equal(embeddingScale(cfg, ck.weights), Math.fround(Math.sqrt(40)));
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-gemma-bf16-'));
  try {
    const tensors: Record<string, Tensor> = {};
    for (const n of ck.weights.names()) tensors[n] = ck.weights.get(n);
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { dtype: 'BF16' });
    const bf16 = openSafetensorsModel(dir);
    try {
      assert.equal(bf16.dtypeOf('model.embed_tokens.weight'), 'BF16');
      assert.equal(embeddingScale(cfg, bf16), 6.3125);
      // The same bf16-rounded values held as float32: only the scale differs.
      const asF32 = new MapWeightStore(new Map(bf16.names().map((n) => [n, bf16.get(n)])));
      const ref = referenceForward(cfg, bf16, IDS);
      const refF32 = referenceForward(cfg, asF32, IDS);
      const scaleEffect = maxAbsDiff(ref.logits.data, refF32.logits.data);
      assert.ok(scaleEffect > 1e-3, `the rounded scale should matter (|Δ| = ${scaleEffect})`);
      const dec = new OrtDecoder(await createDecoderSession(cfg, bf16, { cacheDir: false, threads: 1 }), cfg);
      const d = maxAbsDiff((await dec.forward([IDS])).logits.data as Float32Array, ref.logits.data);
      assert.ok(d <= 1e-4, `graph vs reference on the bf16 checkpoint: |Δ| = ${d}`);
      await dec.session.release();
    } finally {
      bf16.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('gemma2 soft-capping: final logits stay inside ±cap, and both caps change the output', () => {
  const ck = tinyCheckpoint('gemma2', { seed: 5 });
  const cfg = parseDecoderConfig(ck.config, 'tiny gemma2');
  const ref = referenceForward(cfg, ck.weights, IDS);
  assert.ok(ref.logits.data.every((z) => Math.abs(z) < cfg.finalLogitSoftcap!));
  const noFinal = referenceForward({ ...cfg, finalLogitSoftcap: undefined }, ck.weights, IDS);
  assert.ok(maxAbsDiff(ref.logits.data, noFinal.logits.data) > 1e-2, 'the final cap bites');
  assert.deepEqual(noFinal.hidden.data, ref.hidden.data, 'the final cap is after the hidden state');
  const noAttn = referenceForward({ ...cfg, attention: { scale: cfg.attention!.scale } }, ck.weights, IDS);
  assert.ok(maxAbsDiff(ref.hidden.data, noAttn.hidden.data) > 1e-3, 'the attention cap bites');
});

test('gemma norms are x·(1 + w): zero gains are plain RMSNorm, so shifting every gain by −1 is a different model', () => {
  const ck = tinyCheckpoint('gemma2', { seed: 6 });
  const cfg = parseDecoderConfig(ck.config, 'tiny gemma2');
  const shifted = new Map<string, Tensor>();
  for (const n of ck.weights.names()) {
    const t = ck.weights.get(n);
    shifted.set(n, /norm\.weight$/.test(n) ? { ...t, data: t.data.map((v) => v - 1) } : t);
  }
  const hidden = referenceForward(cfg, new MapWeightStore(shifted), IDS).hidden;
  // The final norm alone: with gains g − 1, hidden = x/rms(x)·g, i.e. rows of unit RMS times g.
  const g = ck.weights.get('model.norm.weight').data;
  const d = cfg.hiddenSize;
  for (let t = 0; t < IDS.length; t++) {
    let ms = 0;
    for (let j = 0; j < d; j++) ms += (hidden.data[t * d + j] / g[j]) ** 2;
    assert.ok(Math.abs(ms / d - 1) < 1e-4, `row ${t}: mean square ${ms / d}`);
  }
});

test('gemma3: the local RoPE base matters only in sliding layers', () => {
  const ck = tinyCheckpoint('gemma3', { seed: 8 });
  const cfg = parseDecoderConfig(ck.config, 'tiny gemma3');
  const other = parseDecoderConfig({ ...ck.config, rope_local_base_freq: 50 }, 'tiny gemma3');
  const a = referenceForward(cfg, ck.weights, IDS).logits.data;
  assert.ok(maxAbsDiff(a, referenceForward(other, ck.weights, IDS).logits.data) > 1e-3);
  const allFull = Array(cfg.numLayers).fill('full_attention');
  const fullA = parseDecoderConfig({ ...ck.config, layer_types: allFull }, 'c');
  const fullB = parseDecoderConfig({ ...ck.config, layer_types: allFull, rope_local_base_freq: 50 }, 'c');
  assert.equal(fullA.localRope, undefined);
  assert.deepEqual(
    referenceForward(fullA, ck.weights, IDS).logits.data,
    referenceForward(fullB, ck.weights, IDS).logits.data,
  );
});

test('multimodal gemma3 checkpoints: the text_config (sparse, class defaults) and the language_model.* tensors', async () => {
  // google/gemma-3-4b-it's config.json, text part (vision_config left out: never read).
  const cfg = parseDecoderConfig(
    {
      model_type: 'gemma3',
      eos_token_id: [1, 106],
      text_config: {
        hidden_size: 2560,
        intermediate_size: 10240,
        model_type: 'gemma3_text',
        num_hidden_layers: 34,
        rope_scaling: { factor: 8.0, rope_type: 'linear' },
        sliding_window: 1024,
      },
    },
    'config.json',
  );
  assert.deepEqual(
    [cfg.modelType, cfg.vocabSize, cfg.numHeads, cfg.numKvHeads, cfg.headDim, cfg.numLayers],
    ['gemma3', 262208, 8, 4, 256, 34],
  );
  assert.deepEqual([cfg.bosTokenId, cfg.eosTokenIds, cfg.tiedEmbeddings], [2, [1, 106], true]);
  assert.equal(cfg.slidingWindow!.layers.length, 34 - 5); // layers 5, 11, 17, 23, 29 are global
  assert.throws(() => parseDecoderConfig({ model_type: 'gemma3' }, 'config.json'), /text_config/);
  assert.throws(
    () => parseDecoderConfig({ model_type: 'gemma3', text_config: { num_hidden_layers: 1e9 } }, 'config.json'),
    /text_config.*num_hidden_layers.*limit/,
  );

  // The tiny gemma3_text checkpoint saved as Gemma3ForConditionalGeneration: same forward.
  const ck = tinyCheckpoint('gemma3', { seed: 2, tied: true });
  const text = parseDecoderConfig(ck.config, 'tiny gemma3');
  const mm = parseDecoderConfig({ model_type: 'gemma3', text_config: ck.config }, 'tiny gemma3 multimodal');
  for (const prefix of ['language_model.model.', 'model.language_model.']) {
    const renamed = new Map<string, Tensor>([
      ['vision_tower.vision_model.encoder.layers.0.w', ck.weights.get('model.norm.weight')],
    ]);
    for (const n of ck.weights.names()) renamed.set(prefix + n.slice('model.'.length), ck.weights.get(n));
    const store = new MapWeightStore(renamed);
    checkWeights(mm, store);
    assert.deepEqual(
      referenceForward(mm, store, IDS).logits.data,
      referenceForward(text, ck.weights, IDS).logits.data,
      prefix,
    );
  }
  // The graph reads the same view (hub layout), rows and all.
  const hub = new Map<string, Tensor>();
  for (const n of ck.weights.names()) hub.set('language_model.model.' + n.slice('model.'.length), ck.weights.get(n));
  const store = new MapWeightStore(hub);
  const dec = new OrtDecoder(await createDecoderSession(mm, store, { cacheDir: false, threads: 1 }), mm);
  const d = maxAbsDiff(
    (await dec.forward([IDS])).logits.data as Float32Array,
    referenceForward(mm, store, IDS).logits.data,
  );
  assert.ok(d <= 1e-4, `graph vs reference: |Δ| = ${d}`);
  await dec.session.release();
});
