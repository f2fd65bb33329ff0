/**
 * The Llama reference forward: the real stories260K checkpoint (GQA, tied head, rotate_half RoPE) against the
 * known outputs in ../shared, and invariants on tiny random llama / mistral / qwen2 checkpoints.
 */
import { test } from 'node:test';
import { LmSteerError } from '../../../src/util/errors.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sharedPath, skipUnlessShared } from '../../helpers/shared.js';
import { tinyCheckpoint } from '../../helpers/tinyModels.js';
import { MapWeightStore } from '../../../src/formats/weights.js';
import { checkWeights, parseDecoderConfig } from '../../../src/models/registry.js';
import { referenceForward } from '../../../src/models/registry.js';
import { tensor, type Tensor } from '../../../src/util/tensor.js';

const STORIES = 'models/stories260K';

async function stories() {
  const dir = join(sharedPath(STORIES)!, 'hf');
  const { openSafetensorsModel } = await import('../../../src/formats/safetensors.js');
  const cfg = parseDecoderConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), join(dir, 'config.json'));
  const weights = openSafetensorsModel(dir);
  const expected = JSON.parse(readFileSync(join(sharedPath(STORIES)!, 'expected.json'), 'utf8'));
  return { cfg, weights, expected };
}

function row(t: Tensor, i: number): Float32Array {
  const n = t.shape[1];
  return (t.data as Float32Array).subarray(i * n, (i + 1) * n);
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test(
  'stories260K: all 512 logits at positions 0..2 of "Once upon a time" match expected.json',
  { skip: skipUnlessShared(STORIES) },
  async () => {
    const { cfg, weights, expected } = await stories();
    checkWeights(cfg, weights);
    const { ids, positions, logits, argmax: wantArgmax } = expected.prompt_logits;
    const out = referenceForward(cfg, weights, ids);
    assert.deepEqual(out.logits.shape, [ids.length, 512]);
    positions.forEach((p: number, i: number) => {
      // The README: a float32 implementation matches the float64 expected values to ~2e-5; this one is float64.
      const d = maxAbsDiff(row(out.logits, p), logits[i]);
      assert.ok(d < 2e-5, `position ${p}: max |Δ logit| ${d}`);
      assert.equal(argmax(row(out.logits, p)), wantArgmax[i]);
    });
  },
);

test(
  'stories260K: greedy decoding from BOS reproduces the first 24 ids of greedy_from_bos',
  { skip: skipUnlessShared(STORIES) },
  async () => {
    const { cfg, weights, expected } = await stories();
    const ids: number[] = [...expected.greedy_from_bos.prompt_ids];
    const want: number[] = expected.greedy_from_bos.ids.slice(0, 24);
    while (ids.length < 1 + want.length) {
      const out = referenceForward(cfg, weights, ids);
      ids.push(argmax(row(out.logits, ids.length - 1)));
    }
    assert.deepEqual(ids.slice(1), want);
  },
);

for (const kind of [
  'llama',
  'llama-bias',
  'mistral',
  'qwen2',
  'llama-rope-scaled',
  'llama-rope-linear',
  'llama-rope-yarn',
] as const) {
  test(`${kind}: causal (logits at t ignore later tokens), hidden is the final RMSNorm output, logits = hidden·Eᵀ`, () => {
    const { config, weights } = tinyCheckpoint(kind, { seed: 3 });
    const cfg = parseDecoderConfig(config, kind);
    const a = referenceForward(cfg, weights, [5, 9, 2, 7, 3, 11]);
    const b = referenceForward(cfg, weights, [5, 9, 2, 40, 41, 42]);
    for (let t = 0; t < 3; t++)
      assert.ok(maxAbsDiff(row(a.logits, t), row(b.logits, t)) < 1e-6, `position ${t} changed`);
    assert.ok(maxAbsDiff(row(a.logits, 3), row(b.logits, 3)) > 1e-3, 'a changed token must change its logits');

    // RMSNorm output / gain has mean square 1 (up to eps).
    const g = weights.get('model.norm.weight').data;
    for (let t = 0; t < 6; t++) {
      const h = row(a.hidden, t);
      let ms = 0;
      for (let j = 0; j < h.length; j++) ms += (h[j] / g[j]) ** 2;
      assert.ok(Math.abs(ms / h.length - 1) < 1e-3, `row ${t}: mean square ${ms / h.length}`);
    }
    const E = cfg.tiedEmbeddings ? weights.get('model.embed_tokens.weight') : weights.get('lm_head.weight');
    const h0 = row(a.hidden, 0);
    for (const v of [0, 17, cfg.vocabSize - 1]) {
      let s = 0;
      for (let j = 0; j < cfg.hiddenSize; j++) s += h0[j] * E.data[v * cfg.hiddenSize + j];
      assert.ok(Math.abs(s - row(a.logits, 0)[v]) < 1e-5);
    }
  });
}

test('llama: the tied head is the token embedding; an untied checkpoint uses lm_head.weight', () => {
  const tied = tinyCheckpoint('llama', { seed: 1, tied: true });
  const cfg = parseDecoderConfig(tied.config, 'tied');
  assert.equal(cfg.tiedEmbeddings, true);
  assert.equal(tied.weights.has('lm_head.weight'), false);
  const out = referenceForward(cfg, tied.weights, [4, 8]);
  // Adding lm_head.weight does not change a tied model.
  const map = new Map(tied.weights.names().map((n) => [n, tied.weights.get(n)]));
  map.set('lm_head.weight', tensor([cfg.vocabSize, cfg.hiddenSize]));
  assert.deepEqual(referenceForward(cfg, new MapWeightStore(map), [4, 8]).logits.data, out.logits.data);
  // Untied with a zero head: all logits zero.
  const untied = parseDecoderConfig({ ...tied.config, tie_word_embeddings: false }, 'untied');
  assert.ok(referenceForward(untied, new MapWeightStore(map), [4, 8]).logits.data.every((v) => v === 0));
});

test('grouped-query attention equals full attention with each KV head repeated (transformers repeat_kv)', () => {
  const gqa = tinyCheckpoint('llama', { seed: 5, heads: 4, kvHeads: 2 });
  const cfg = parseDecoderConfig(gqa.config, 'gqa');
  const hd = cfg.headDim;
  const d = cfg.hiddenSize;
  // MHA twin: kv head j becomes heads 2j and 2j+1.
  const repeat = (w: Tensor) => {
    const out = tensor([4 * hd, d]);
    for (let h = 0; h < 4; h++)
      out.data.set(w.data.subarray(Math.floor(h / 2) * hd * d, (Math.floor(h / 2) + 1) * hd * d), h * hd * d);
    return out;
  };
  const map = new Map(gqa.weights.names().map((n) => [n, gqa.weights.get(n)]));
  for (let i = 0; i < cfg.numLayers; i++)
    for (const p of ['k', 'v'])
      map.set(
        `model.layers.${i}.self_attn.${p}_proj.weight`,
        repeat(gqa.weights.get(`model.layers.${i}.self_attn.${p}_proj.weight`)),
      );
  const mhaCfg = parseDecoderConfig({ ...gqa.config, num_key_value_heads: 4 }, 'mha');
  const mha = new MapWeightStore(map);
  checkWeights(mhaCfg, mha);
  const ids = [3, 1, 4, 1, 5, 9, 2, 6];
  assert.ok(
    maxAbsDiff(referenceForward(cfg, gqa.weights, ids).logits.data, referenceForward(mhaCfg, mha, ids).logits.data) <
      1e-6,
  );
});

test('llama-bias: attention_bias and mlp_bias biases are used', () => {
  const { config, weights } = tinyCheckpoint('llama-bias', { seed: 2 });
  const cfg = parseDecoderConfig(config, 'bias');
  const base = referenceForward(cfg, weights, [1, 2, 3]).logits.data;
  for (const name of [
    'model.layers.0.self_attn.v_proj.bias',
    'model.layers.0.self_attn.o_proj.bias',
    'model.layers.1.mlp.down_proj.bias',
  ]) {
    const map = new Map(weights.names().map((n) => [n, weights.get(n)]));
    map.set(name, tensor(weights.shape(name)));
    assert.ok(
      maxAbsDiff(referenceForward(cfg, new MapWeightStore(map), [1, 2, 3]).logits.data, base) > 1e-4,
      `${name} had no effect`,
    );
  }
});

test('dynamic NTK RoPE is refused by name: its base follows each call length, which a per-position table cannot', () => {
  const { config } = tinyCheckpoint('llama', { seed: 4 });
  assert.throws(
    () => parseDecoderConfig({ ...config, rope_scaling: { type: 'dynamic', factor: 2 } }, 'dynamic'),
    (e: unknown) => e instanceof LmSteerError && e.code === 'UNSUPPORTED' && /dynamic/.test(e.message),
  );
});

test('referenceForward rejects empty input and ids outside the vocabulary', () => {
  const { config, weights } = tinyCheckpoint('llama');
  const cfg = parseDecoderConfig(config, 'tiny');
  assert.throws(() => referenceForward(cfg, weights, []), { code: 'BAD_ARGUMENT' });
  assert.throws(
    () => referenceForward(cfg, weights, [1, 64]),
    (e: Error) => (e as { code?: string }).code === 'BAD_ARGUMENT' && /64 at position 1/.test(e.message),
  );
  assert.throws(() => referenceForward(cfg, weights, [1.5]), { code: 'BAD_ARGUMENT' });
});
