/** GPT-J config.json parsing: the real gpt-j-6B config, GPTJConfig defaults, rotary_dim, the biased head. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectedWeights, parseConfig } from '../../../src/models/gptj/config.js';
import { rotateHalfOrder } from '../../../src/models/gptj/graph.js';
import { LmSteerError } from '../../../src/util/errors.js';

// EleutherAI/gpt-j-6B config.json (abridged; `rotary` and `scale_attn_weights` are there and unread)
const GPTJ_6B = {
  activation_function: 'gelu_new',
  bos_token_id: 50256,
  eos_token_id: 50256,
  layer_norm_epsilon: 1e-5,
  model_type: 'gptj',
  n_embd: 4096,
  n_head: 16,
  n_inner: null,
  n_layer: 28,
  n_positions: 2048,
  rotary: true,
  rotary_dim: 64,
  scale_attn_weights: true,
  tie_word_embeddings: false,
  vocab_size: 50400,
};

test('EleutherAI/gpt-j-6B: 64 of 256 channels rotate, parallel block, untied head with a bias', () => {
  const cfg = parseConfig(GPTJ_6B, 'gptj/config.json');
  assert.deepEqual(
    [cfg.hiddenSize, cfg.numLayers, cfg.numHeads, cfg.headDim, cfg.intermediateSize, cfg.maxPositions, cfg.vocabSize],
    [4096, 28, 16, 256, 16384, 2048, 50400],
  );
  assert.deepEqual(cfg.rope, { theta: 10000, rotaryDim: 64 });
  assert.deepEqual(
    [cfg.parallelResidual, cfg.tiedEmbeddings, cfg.qkvBias, cfg.outBias, cfg.mlpBias],
    [true, false, false, false, true],
  );
  const names = expectedWeights(cfg).map((w) => w.name);
  assert.ok(names.includes('lm_head.weight') && names.includes('lm_head.bias'));
  assert.ok(names.includes('transformer.h.27.attn.out_proj.weight') && !names.includes('transformer.wpe.weight'));
});

test('rotary_dim null rotates whole heads; generic attribute names; odd or too wide rotary_dim is refused', () => {
  const cfg = parseConfig({ model_type: 'gptj', hidden_size: 32, num_attention_heads: 4, rotary_dim: null }, 'x');
  assert.deepEqual([cfg.headDim, cfg.rope!.rotaryDim], [8, 8]);
  for (const rotary_dim of [5, 10]) {
    assert.throws(
      () => parseConfig({ model_type: 'gptj', n_embd: 32, n_head: 4, rotary_dim }, 'x'),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE' && /rotary_dim/.test(e.message),
    );
  }
});

test('rotateHalfOrder: each head lists its even rotary channels, then the odd ones, then the rest', () => {
  assert.deepEqual(rotateHalfOrder(2, 4, 4), [0, 2, 1, 3, 4, 6, 5, 7]);
  assert.deepEqual(rotateHalfOrder(1, 8, 6), [0, 2, 4, 1, 3, 5, 6, 7]);
});
