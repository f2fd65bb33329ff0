/** model_type dispatch, the checkpoint-vs-config check, and the input/output embedding matrices. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyCheckpoint, type TinyKind } from '../helpers/tinyModels.js';
import { MapWeightStore } from '../../src/formats/weights.js';
import {
  canonicalWeights,
  checkWeights,
  inputEmbeddings,
  outputEmbeddings,
  parseDecoderConfig,
  SUPPORTED_MODEL_TYPES,
} from '../../src/models/registry.js';

type Err = Error & { code?: string; hint?: string };

test('dispatch on model_type; unsupported or missing model_type lists the supported ones', () => {
  for (const kind of ['gpt2', 'llama', 'mistral', 'qwen2', 'gpt_neox'] as const) {
    const cfg = parseDecoderConfig(tinyCheckpoint(kind).config, kind);
    assert.equal(cfg.modelType, kind);
    assert.equal(cfg.arch, kind === 'mistral' || kind === 'qwen2' ? 'llama' : kind);
  }
  assert.throws(
    () => parseDecoderConfig({ model_type: 'falcon' }, 'f/config.json'),
    (e: Err) =>
      e.code === 'UNSUPPORTED' &&
      e.message.includes('"falcon"') &&
      e.message.includes('f/config.json') &&
      SUPPORTED_MODEL_TYPES.every((t) => e.hint!.includes(t)),
  );
  assert.throws(
    () => parseDecoderConfig({ hidden_size: 4 }, 'c'),
    (e: Err) => e.code === 'UNSUPPORTED' && /model_type/.test(e.message),
  );
  assert.throws(() => parseDecoderConfig([1, 2], 'c'), { code: 'BAD_FILE' });
  assert.throws(() => parseDecoderConfig(null, 'c'), { code: 'BAD_FILE' });
});

const KINDS: TinyKind[] = [
  'gpt2',
  'llama',
  'llama-bias',
  'mistral',
  'qwen2',
  'gpt_neox',
  'gpt_neox-sequential',
  'llama-rope-scaled',
  'llama-rope-yarn',
];

test('every tiny checkpoint passes checkWeights; a missing or misshapen tensor is named with both shapes', () => {
  for (const kind of KINDS) {
    const { config, weights } = tinyCheckpoint(kind);
    checkWeights(parseDecoderConfig(config, kind), weights);
  }
  const { config, weights } = tinyCheckpoint('llama', { kvHeads: 2 });
  // config says 4 KV heads, the weights have 2
  const wrong = parseDecoderConfig({ ...config, num_key_value_heads: 4 }, 'c');
  assert.throws(
    () => checkWeights(wrong, weights),
    (e: Err) =>
      e.code === 'SHAPE_MISMATCH' &&
      e.message.includes('config.json does not match the weights') &&
      e.message.includes('"model.layers.0.self_attn.k_proj.weight"') &&
      e.message.includes('[16,32]') &&
      e.message.includes('[32,32]'),
  );
  const map = new Map(weights.names().map((n) => [n, weights.get(n)]));
  map.delete('model.layers.1.mlp.up_proj.weight');
  const cfg = parseDecoderConfig(config, 'c');
  assert.throws(
    () => checkWeights(cfg, new MapWeightStore(map, 'ckpt.safetensors')),
    (e: Err) =>
      e.code === 'NOT_FOUND' &&
      e.message.includes('"model.layers.1.mlp.up_proj.weight"') &&
      e.message.includes('ckpt.safetensors'),
  );
});

test('gpt2 with the transformer. prefix: checkWeights and canonical names', () => {
  const { config, weights } = tinyCheckpoint('gpt2', { transformerPrefix: true });
  const cfg = parseDecoderConfig(config, 'gpt2');
  checkWeights(cfg, weights);
  const canon = canonicalWeights(cfg, weights);
  assert.ok(canon.has('h.0.ln_1.weight') && canon.names().includes('wte.weight'));
  assert.equal(inputEmbeddings(cfg, weights), weights.get('transformer.wte.weight'));
});

test('outputEmbeddings: the LM head, or the tied input embedding', () => {
  const cases: [TinyKind, boolean, string][] = [
    ['gpt2', true, 'wte.weight'],
    ['gpt2', false, 'lm_head.weight'],
    ['llama', false, 'lm_head.weight'],
    ['qwen2', true, 'model.embed_tokens.weight'],
    ['gpt_neox', false, 'embed_out.weight'],
    ['gpt_neox', true, 'gpt_neox.embed_in.weight'],
  ];
  for (const [kind, tied, name] of cases) {
    const { config, weights } = tinyCheckpoint(kind, { tied });
    const cfg = parseDecoderConfig(config, kind);
    assert.equal(outputEmbeddings(cfg, weights), weights.get(name), `${kind} tied=${tied}`);
    assert.deepEqual(outputEmbeddings(cfg, weights).shape, [cfg.vocabSize, cfg.hiddenSize]);
  }
  // untied config but no head in the checkpoint
  const { config, weights } = tinyCheckpoint('llama', { tied: true });
  const cfg = parseDecoderConfig({ ...config, tie_word_embeddings: false }, 'c');
  assert.throws(() => outputEmbeddings(cfg, weights), { code: 'NOT_FOUND' });
});
