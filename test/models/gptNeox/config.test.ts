/** GPT-NeoX config.json parsing: a Pythia config, partial rotary, defaults and errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectedWeights, parseConfig } from '../../../src/models/gptNeox/config.js';

const weightNames = (cfg: Parameters<typeof expectedWeights>[0]) => expectedWeights(cfg).map((w) => w.name);

// EleutherAI/pythia-70m config.json (abridged)
const PYTHIA = {
  architectures: ['GPTNeoXForCausalLM'],
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'gelu',
  hidden_size: 512,
  intermediate_size: 2048,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 2048,
  model_type: 'gpt_neox',
  num_attention_heads: 8,
  num_hidden_layers: 6,
  rotary_emb_base: 10000,
  rotary_pct: 0.25,
  tie_word_embeddings: false,
  use_parallel_residual: true,
  vocab_size: 50304,
};

test('pythia-70m', () => {
  const cfg = parseConfig(PYTHIA, 'pythia/config.json');
  assert.deepEqual(
    [
      cfg.headDim,
      cfg.rope!.rotaryDim,
      cfg.rope!.theta,
      cfg.activation,
      cfg.parallelResidual,
      cfg.tiedEmbeddings,
      cfg.norm,
    ],
    [64, 16, 10000, 'gelu', true, false, 'layernorm'],
  );
  assert.deepEqual([cfg.qkvBias, cfg.outBias, cfg.mlpBias], [true, true, true]);
  assert.ok(weightNames(cfg).includes('embed_out.weight'));
  assert.ok(weightNames(cfg).includes('gpt_neox.layers.5.attention.query_key_value.bias'));
});

test('rotary_pct, partial_rotary_factor (transformers ≥ 5), rope_theta, attention_bias', () => {
  assert.equal(parseConfig({ ...PYTHIA, rotary_pct: 1 }, 'c').rope!.rotaryDim, 64);
  assert.equal(
    parseConfig(
      {
        ...PYTHIA,
        rotary_pct: undefined,
        rope_parameters: { rope_type: 'default', rope_theta: 5000, partial_rotary_factor: 0.5 },
      },
      'c',
    ).rope!.rotaryDim,
    32,
  );
  assert.equal(parseConfig({ ...PYTHIA, rotary_emb_base: undefined, rope_theta: 5000 }, 'c').rope!.theta, 5000);
  const noBias = parseConfig({ ...PYTHIA, attention_bias: false }, 'c');
  assert.ok(!weightNames(noBias).includes('gpt_neox.layers.0.attention.dense.bias'));
  assert.ok(weightNames(noBias).includes('gpt_neox.layers.0.mlp.dense_h_to_4h.bias'));
});

test('errors name the field and the file', () => {
  type Err = Error & { code?: string };
  assert.throws(
    () => parseConfig({ ...PYTHIA, rotary_pct: 0.01 }, 'p/config.json'),
    (e: Err) => e.code === 'BAD_FILE' && e.message.includes('"rotary_pct"') && e.message.includes('p/config.json'),
  );
  assert.throws(() => parseConfig({ ...PYTHIA, rotary_pct: 2 }, 'c'), { code: 'BAD_FILE' });
  assert.throws(
    () => parseConfig({ ...PYTHIA, intermediate_size: undefined }, 'c'),
    (e: Err) => e.code === 'BAD_FILE' && e.message.includes('"intermediate_size"'),
  );
  assert.throws(() => parseConfig({ ...PYTHIA, use_parallel_residual: 1 }, 'c'), { code: 'BAD_FILE' });
});
