/** GPT-Neo config.json parsing: the real gpt-neo-125M config, GPTNeoConfig defaults, attention_types, refusals. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectedWeights, parseConfig } from '../../../src/models/gptNeo/config.js';
import { LmSteerError } from '../../../src/util/errors.js';

// EleutherAI/gpt-neo-125M config.json (abridged to the fields transformers reads)
const NEO_125M = {
  activation_function: 'gelu_new',
  attention_layers: Array.from({ length: 12 }, (_, i) => (i % 2 ? 'local' : 'global')),
  attention_types: [[['global', 'local'], 6]],
  bos_token_id: 50256,
  eos_token_id: 50256,
  hidden_size: 768,
  intermediate_size: null,
  layer_norm_epsilon: 1e-5,
  max_position_embeddings: 2048,
  model_type: 'gpt_neo',
  num_heads: 12,
  num_layers: 12,
  vocab_size: 50257,
  window_size: 256,
};

const fails = (raw: Record<string, unknown>, code: string, message: RegExp) =>
  assert.throws(
    () => parseConfig(raw, 'neo/config.json'),
    (e: unknown) => e instanceof LmSteerError && e.code === code && message.test(e.message),
  );

test('EleutherAI/gpt-neo-125M: sizes, odd layers local with a 256-token window, tied head', () => {
  const cfg = parseConfig(NEO_125M, 'neo/config.json');
  assert.deepEqual(
    [cfg.hiddenSize, cfg.numLayers, cfg.numHeads, cfg.headDim, cfg.intermediateSize, cfg.maxPositions, cfg.vocabSize],
    [768, 12, 12, 64, 3072, 2048, 50257],
  );
  assert.deepEqual(cfg.slidingWindow, { size: 256, layers: [1, 3, 5, 7, 9, 11] });
  assert.deepEqual(
    [cfg.position, cfg.activation, cfg.tiedEmbeddings, cfg.qkvBias, cfg.outBias, cfg.mlpBias],
    ['learned', 'gelu_new', true, false, true, true],
  );
  const names = expectedWeights(cfg).map((w) => w.name);
  assert.ok(names.includes('transformer.h.11.attn.attention.q_proj.weight'));
  assert.ok(!names.includes('transformer.h.0.attn.attention.q_proj.bias') && !names.includes('lm_head.weight'));
});

test('GPTNeoConfig defaults (gpt-neo-1.3B shape) and the generic attribute names', () => {
  const cfg = parseConfig({ model_type: 'gpt_neo' }, 'x');
  assert.deepEqual([cfg.hiddenSize, cfg.numLayers, cfg.numHeads, cfg.intermediateSize], [2048, 24, 16, 8192]);
  assert.equal(cfg.slidingWindow!.layers.length, 12);
  const generic = parseConfig(
    {
      model_type: 'gpt_neo',
      num_hidden_layers: 2,
      num_attention_heads: 4,
      hidden_size: 32,
      attention_types: [[['global'], 2]],
    },
    'x',
  );
  assert.deepEqual([generic.numLayers, generic.numHeads, generic.slidingWindow], [2, 4, undefined]);
});

test('a window at least as long as the context is no window', () => {
  const cfg = parseConfig({ ...NEO_125M, window_size: 2048 }, 'x');
  assert.equal(cfg.slidingWindow, undefined);
});

test('attention_types: other kinds, a wrong layer count, a disagreeing attention_layers, absurd counts', () => {
  const base = { ...NEO_125M, attention_layers: undefined };
  fails({ ...base, attention_types: [[['global', 'sparse'], 6]] }, 'UNSUPPORTED', /"sparse".*"global" and "local"/);
  fails(
    { ...base, attention_types: [[['global', 'local'], 5]] },
    'BAD_FILE',
    /describes 10 layers, but num_layers is 12/,
  );
  fails({ ...base, attention_types: [['global', 6]] }, 'BAD_FILE', /attention_types/);
  fails({ ...base, attention_types: [[['global', 'local'], 1e12]] }, 'BAD_FILE', /more than 1024 layers/);
  fails(
    { ...NEO_125M, attention_layers: Array(12).fill('global') },
    'BAD_FILE',
    /attention_layers.*disagrees with attention_types/,
  );
  fails({ ...NEO_125M, activation_function: 'quick_gelu' }, 'UNSUPPORTED', /activation_function/);
});
