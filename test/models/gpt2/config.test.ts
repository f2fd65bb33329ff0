/** GPT-2 config.json parsing: the real gpt2 config, GPT2Config defaults, unsupported attention variants. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectedWeights, parseConfig } from '../../../src/models/gpt2/config.js';

const weightNames = (cfg: Parameters<typeof expectedWeights>[0]) => expectedWeights(cfg).map((w) => w.name);

// openai-community/gpt2 config.json (abridged to the fields that matter)
const GPT2 = {
  activation_function: 'gelu_new',
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_inner: null,
  n_layer: 12,
  n_positions: 1024,
  layer_norm_epsilon: 1e-5,
  vocab_size: 50257,
  bos_token_id: 50256,
  eos_token_id: 50256,
  scale_attn_weights: true,
};

test('openai-community/gpt2', () => {
  const cfg = parseConfig(GPT2, 'gpt2/config.json');
  assert.deepEqual(
    [
      cfg.hiddenSize,
      cfg.numLayers,
      cfg.numHeads,
      cfg.numKvHeads,
      cfg.headDim,
      cfg.intermediateSize,
      cfg.maxPositions,
      cfg.vocabSize,
    ],
    [768, 12, 12, 12, 64, 3072, 1024, 50257],
  );
  assert.deepEqual(
    [cfg.norm, cfg.activation, cfg.position, cfg.tiedEmbeddings, cfg.qkvBias, cfg.outBias, cfg.mlpBias],
    ['layernorm', 'gelu_new', 'learned', true, true, true, true],
  );
  assert.equal(cfg.rope, undefined);
  assert.deepEqual(cfg.eosTokenIds, [50256]);
  const names = weightNames(cfg);
  assert.ok(
    names.includes('h.11.mlp.c_proj.bias') && names.includes('wpe.weight') && !names.includes('lm_head.weight'),
  );
});

test('generic names (hidden_size, …) stand in for GPT-2 names; n_inner overrides 4·n_embd', () => {
  const cfg = parseConfig(
    { model_type: 'gpt2', hidden_size: 64, num_hidden_layers: 3, num_attention_heads: 4, n_inner: 100, vocab_size: 10 },
    'c',
  );
  assert.deepEqual([cfg.hiddenSize, cfg.numLayers, cfg.numHeads, cfg.intermediateSize], [64, 3, 4, 100]);
});

test('errors name the field: bad values BAD_FILE; attention variants and activations lmsteer lacks UNSUPPORTED', () => {
  type Err = Error & { code?: string };
  assert.throws(
    () => parseConfig({ ...GPT2, n_head: 7 }, 'g/config.json'),
    (e: Err) => e.code === 'BAD_FILE' && e.message.includes('g/config.json') && e.message.includes('"n_head"'),
  );
  assert.throws(
    () => parseConfig({ ...GPT2, n_embd: '768' }, 'c'),
    (e: Err) => e.code === 'BAD_FILE' && e.message.includes('"n_embd"'),
  );
  assert.throws(() => parseConfig({ ...GPT2, scale_attn_by_inverse_layer_idx: true }, 'c'), { code: 'UNSUPPORTED' });
  assert.throws(() => parseConfig({ ...GPT2, scale_attn_weights: false }, 'c'), { code: 'UNSUPPORTED' });
  assert.throws(
    () => parseConfig({ ...GPT2, activation_function: 'tanh' }, 'c'),
    (e: Err) => e.code === 'UNSUPPORTED' && e.message.includes('"activation_function"'),
  );
});
