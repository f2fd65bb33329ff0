/** Llama-family config.json parsing: real stories260K config, transformers' defaults, and errors naming the field. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sharedPath, skipUnlessShared } from '../../helpers/shared.js';
import { expectedWeights, parseConfig } from '../../../src/models/llama/config.js';

const weightNames = (cfg: Parameters<typeof expectedWeights>[0]) => expectedWeights(cfg).map((w) => w.name);

const BASE = {
  model_type: 'llama',
  vocab_size: 100,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 8,
};
type Err = Error & { code?: string; hint?: string };

test('stories260K config.json', { skip: skipUnlessShared('models/stories260K/hf/config.json') }, () => {
  const path = sharedPath('models/stories260K/hf/config.json')!;
  const cfg = parseConfig(JSON.parse(readFileSync(path, 'utf8')), path);
  assert.deepEqual(cfg, {
    arch: 'llama',
    modelType: 'llama',
    vocabSize: 512,
    hiddenSize: 64,
    numLayers: 5,
    numHeads: 8,
    numKvHeads: 4,
    headDim: 8,
    intermediateSize: 172,
    maxPositions: 512,
    norm: 'rmsnorm',
    normEps: 1e-5,
    activation: 'silu',
    position: 'rope',
    rope: { theta: 10000, rotaryDim: 8, scaling: undefined },
    parallelResidual: false,
    qkvBias: false,
    outBias: false,
    mlpBias: false,
    tiedEmbeddings: true,
    bosTokenId: 1,
    eosTokenIds: [2],
  });
});

test('llama defaults as transformers: MHA, untied, eps 1e-6, theta 1e4, 2048 positions, no biases', () => {
  const cfg = parseConfig(BASE, 'c');
  assert.equal(cfg.numKvHeads, 8);
  assert.equal(cfg.headDim, 8);
  assert.equal(cfg.tiedEmbeddings, false);
  assert.equal(cfg.normEps, 1e-6);
  assert.equal(cfg.rope!.theta, 10000);
  assert.equal(cfg.maxPositions, 2048);
  assert.deepEqual([cfg.qkvBias, cfg.outBias, cfg.mlpBias], [false, false, false]);
  assert.ok(weightNames(cfg).includes('lm_head.weight'));
  assert.ok(!weightNames(parseConfig({ ...BASE, tie_word_embeddings: true }, 'c')).includes('lm_head.weight'));
});

test('attention_bias (q, k, v and o_proj) and mlp_bias for llama; qwen2 always q/k/v biases; mistral none', () => {
  const llama = parseConfig({ ...BASE, attention_bias: true, mlp_bias: true }, 'c');
  assert.deepEqual([llama.qkvBias, llama.outBias, llama.mlpBias], [true, true, true]);
  assert.ok(weightNames(llama).includes('model.layers.1.self_attn.o_proj.bias'));
  const qwen = parseConfig({ ...BASE, model_type: 'qwen2', num_key_value_heads: 2 }, 'c');
  assert.deepEqual([qwen.qkvBias, qwen.outBias, qwen.mlpBias, qwen.tiedEmbeddings], [true, false, false, false]);
  assert.ok(weightNames(qwen).includes('model.layers.0.self_attn.k_proj.bias'));
  assert.ok(!weightNames(qwen).includes('model.layers.0.self_attn.o_proj.bias'));
  const mistral = parseConfig({ ...BASE, model_type: 'mistral', attention_bias: true }, 'c');
  assert.equal(mistral.qkvBias, false);
});

test('num_key_value_heads: absent takes the class default (mistral 8, qwen2 32), null the query heads', () => {
  assert.equal(
    parseConfig({ ...BASE, model_type: 'mistral', num_attention_heads: 16, hidden_size: 128 }, 'c').numKvHeads,
    8,
  );
  assert.equal(
    parseConfig(
      { ...BASE, model_type: 'mistral', num_attention_heads: 16, hidden_size: 128, num_key_value_heads: null },
      'c',
    ).numKvHeads,
    16,
  );
  assert.equal(
    parseConfig({ ...BASE, model_type: 'qwen2', num_attention_heads: 32, hidden_size: 128 }, 'c').numKvHeads,
    32,
  );
});

test('head_dim may differ from hidden/heads; eos may be a list', () => {
  const cfg = parseConfig({ ...BASE, head_dim: 16, eos_token_id: [2, 7] }, 'c');
  assert.equal(cfg.headDim, 16);
  assert.equal(cfg.rope!.rotaryDim, 16);
  assert.deepEqual(cfg.eosTokenIds, [2, 7]);
  assert.ok(weightNames(cfg).length > 0);
});

test('sliding windows: size and layers as transformers decides them; positions are not capped', () => {
  const mistral = { ...BASE, model_type: 'mistral', num_key_value_heads: 8, max_position_embeddings: 32768 };
  const win = (raw: Record<string, unknown>) => parseConfig(raw, 'c').slidingWindow;
  assert.deepEqual(win(mistral), { size: 4096, layers: [0, 1] }); // MistralConfig's default window
  assert.equal(parseConfig(mistral, 'c').maxPositions, 32768);
  assert.equal(win({ ...mistral, sliding_window: null }), undefined); // Mistral ≥ v0.2
  assert.equal(win({ ...mistral, sliding_window: 32768 }), undefined); // no narrower than the positions: no window
  const qwen = {
    ...BASE,
    model_type: 'qwen2',
    num_key_value_heads: 8,
    max_position_embeddings: 32768,
    sliding_window: 1024,
  };
  assert.equal(win(qwen), undefined); // use_sliding_window defaults to false
  assert.deepEqual(win({ ...qwen, use_sliding_window: true, max_window_layers: 1 }), { size: 1024, layers: [1] });
  assert.equal(win({ ...qwen, use_sliding_window: true, max_window_layers: 2 }), undefined);
  assert.deepEqual(win({ ...qwen, use_sliding_window: true, layer_types: ['sliding_attention', 'full_attention'] }), {
    size: 1024,
    layers: [0],
  });
  assert.throws(
    () => win({ ...qwen, use_sliding_window: true, layer_types: ['sliding_attention'] }),
    (e: Err) => e.code === 'BAD_FILE' && e.message.includes('"layer_types"'),
  );
});

test('missing or invalid fields: BAD_FILE naming the field and the file; unknown activation: UNSUPPORTED', () => {
  const { hidden_size: _, ...noHidden } = BASE;
  assert.throws(
    () => parseConfig(noHidden, '/m/config.json'),
    (e: Err) =>
      e.code === 'BAD_FILE' && e.message.includes('/m/config.json') && e.message.includes('"hidden_size"') && !!e.hint,
  );
  assert.throws(
    () => parseConfig({ ...BASE, num_hidden_layers: 2.5 }, 'c'),
    (e: Err) => e.code === 'BAD_FILE' && /"num_hidden_layers".*2\.5/.test(e.message),
  );
  assert.throws(
    () => parseConfig({ ...BASE, num_key_value_heads: 3 }, 'c'),
    (e: Err) => e.code === 'BAD_FILE' && e.message.includes('"num_key_value_heads"'),
  );
  assert.throws(
    () => parseConfig({ ...BASE, num_attention_heads: 7 }, 'c'),
    (e: Err) => e.code === 'BAD_FILE' && e.message.includes('"num_attention_heads"'),
  );
  assert.throws(() => parseConfig({ ...BASE, tie_word_embeddings: 'yes' }, 'c'), { code: 'BAD_FILE' });
  assert.throws(
    () => parseConfig({ ...BASE, hidden_act: 'quick_gelu' }, 'c'),
    (e: Err) => e.code === 'UNSUPPORTED' && /silu/.test(e.hint!),
  );
  assert.throws(() => parseConfig({ ...BASE, eos_token_id: [2, -1] }, 'c'), { code: 'BAD_FILE' });
});
