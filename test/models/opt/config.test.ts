/** OPT config.json parsing: the real opt-125m and opt-350m configs, OPTConfig defaults, bias/norm switches. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectedWeights, parseConfig } from '../../../src/models/opt/config.js';
import { LmSteerError } from '../../../src/util/errors.js';

// facebook/opt-125m config.json (abridged to the fields transformers reads)
const OPT_125M = {
  _remove_final_layer_norm: false,
  activation_function: 'relu',
  bos_token_id: 2,
  do_layer_norm_before: true,
  eos_token_id: 2,
  ffn_dim: 3072,
  hidden_size: 768,
  max_position_embeddings: 2048,
  model_type: 'opt',
  num_attention_heads: 12,
  num_hidden_layers: 12,
  pad_token_id: 1,
  prefix: '</s>',
  vocab_size: 50272,
  word_embed_proj_dim: 768,
};
// facebook/opt-350m differs in these
const OPT_350M = {
  ...OPT_125M,
  do_layer_norm_before: false,
  ffn_dim: 4096,
  hidden_size: 1024,
  num_attention_heads: 16,
  num_hidden_layers: 24,
  word_embed_proj_dim: 512,
};

const names = (raw: Record<string, unknown>) => expectedWeights(parseConfig(raw, 'x')).map((w) => w.name);

test('facebook/opt-125m: pre-norm, biases, final norm, positions table 2 rows longer', () => {
  const cfg = parseConfig(OPT_125M, 'opt/config.json');
  assert.deepEqual(
    [cfg.hiddenSize, cfg.modelWidth, cfg.numLayers, cfg.numHeads, cfg.headDim, cfg.intermediateSize, cfg.vocabSize],
    [768, undefined, 12, 12, 64, 3072, 50272],
  );
  assert.deepEqual(
    [cfg.activation, cfg.postNorm, cfg.finalNorm, cfg.normAffine, cfg.qkvBias, cfg.tiedEmbeddings],
    ['relu', false, true, true, true, true],
  );
  const w = expectedWeights(cfg);
  assert.deepEqual(w.find((x) => x.name === 'model.decoder.embed_positions.weight')!.shape, [2050, 768]);
  const n = w.map((x) => x.name);
  assert.ok(n.includes('model.decoder.final_layer_norm.bias') && n.includes('model.decoder.layers.11.fc2.bias'));
  assert.ok(!n.some((x) => x.includes('project_')) && !n.includes('lm_head.weight'));
});

test('facebook/opt-350m: post-norm, no final norm, the head and the steer at word_embed_proj_dim', () => {
  const cfg = parseConfig(OPT_350M, 'opt/config.json');
  assert.deepEqual([cfg.hiddenSize, cfg.modelWidth, cfg.headDim], [512, 1024, 64]);
  assert.deepEqual([cfg.postNorm, cfg.finalNorm], [true, false]);
  const w = expectedWeights(cfg);
  const shape = (n: string) => w.find((x) => x.name === n)?.shape;
  assert.deepEqual(shape('model.decoder.embed_tokens.weight'), [50272, 512]);
  assert.deepEqual(shape('model.decoder.project_in.weight'), [1024, 512]);
  assert.deepEqual(shape('model.decoder.project_out.weight'), [512, 1024]);
  assert.deepEqual(shape('model.decoder.embed_positions.weight'), [2050, 1024]);
  assert.equal(shape('model.decoder.final_layer_norm.weight'), undefined);
});

test('enable_bias false, layer_norm_elementwise_affine false and _remove_final_layer_norm drop their tensors', () => {
  const n = names({ ...OPT_125M, enable_bias: false, layer_norm_elementwise_affine: false });
  assert.ok(!n.some((x) => x.endsWith('.bias')) && !n.some((x) => x.includes('layer_norm')), n.join(' '));
  assert.ok(!names({ ...OPT_125M, _remove_final_layer_norm: true }).includes('model.decoder.final_layer_norm.weight'));
  const defaults = parseConfig({ model_type: 'opt' }, 'x');
  assert.deepEqual(
    [defaults.hiddenSize, defaults.numLayers, defaults.intermediateSize, defaults.maxPositions],
    [768, 12, 3072, 2048],
  );
});

test('refusals name the field', () => {
  assert.throws(
    () => parseConfig({ ...OPT_125M, activation_function: 'quick_gelu' }, 'x'),
    (e: unknown) => e instanceof LmSteerError && e.code === 'UNSUPPORTED' && /activation_function/.test(e.message),
  );
  assert.throws(
    () => parseConfig({ ...OPT_125M, num_attention_heads: 7 }, 'x'),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE' && /num_attention_heads/.test(e.message),
  );
});
