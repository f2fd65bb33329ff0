/**
 * config.json → DecoderConfig for GPT-2 (model_type gpt2), with GPT2Config's defaults, the tensors a GPT-2
 * checkpoint must hold, and the one place where its two naming schemes are reconciled.
 */
import type { WeightStore } from '../../formats/weights.js';
import { LmSteerError } from '../../util/errors.js';
import type { DecoderConfig } from '../config.js';
import { ConfigReader, HF_ACTIVATIONS, intField, type ExpectedWeight } from '../configFields.js';

export function parseConfig(raw: Record<string, unknown>, source: string): DecoderConfig {
  const r = new ConfigReader(raw, source);
  // Variants of the attention that DecoderConfig cannot express.
  if (!r.bool('scale_attn_weights', true)) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${source}: config field "scale_attn_weights": false is not supported`,
      'only GPT-2 attention scaled by 1/√head_dim is supported',
    );
  }
  if (r.bool('scale_attn_by_inverse_layer_idx', false)) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${source}: config field "scale_attn_by_inverse_layer_idx": true is not supported`,
      'only standard GPT-2 attention scaling is supported',
    );
  }
  const hiddenSize = intField(r, 'n_embd', 'hidden_size', 768);
  const numHeads = intField(r, 'n_head', 'num_attention_heads', 12);
  if (hiddenSize % numHeads !== 0) r.fail('n_head', `must divide n_embd (${hiddenSize})`);
  // n_inner: null means 4·n_embd.
  const intermediateSize = r.int('n_inner', 4 * hiddenSize);
  const eos = r.tokenIds('eos_token_id', [50256]);

  return {
    arch: 'gpt2',
    modelType: 'gpt2',
    vocabSize: r.int('vocab_size', 50257),
    hiddenSize,
    numLayers: intField(r, 'n_layer', 'num_hidden_layers', 12),
    numHeads,
    numKvHeads: numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize,
    maxPositions: intField(r, 'n_positions', 'max_position_embeddings', 1024),
    norm: 'layernorm',
    normEps: r.numberIn('layer_norm_epsilon', 0, 1, 1e-5),
    activation: r.oneOf('activation_function', HF_ACTIVATIONS, 'gelu_new'),
    position: 'learned',
    parallelResidual: false,
    qkvBias: true,
    outBias: true,
    mlpBias: true,
    tiedEmbeddings: r.bool('tie_word_embeddings', true),
    bosTokenId: r.tokenId('bos_token_id', 50256),
    eosTokenIds: eos,
  };
}

/**
 * GPT2Model checkpoints name tensors `wte.weight`, `h.0.…`; GPT2LMHeadModel checkpoints prefix them with
 * `transformer.` (and keep `lm_head.weight` unprefixed). This view serves the unprefixed names either way.
 */
export function gpt2Weights(weights: WeightStore): WeightStore {
  if (!weights.has('transformer.wte.weight')) return weights;
  const PREFIX = 'transformer.';
  const real = (name: string) => (name === 'lm_head.weight' ? name : PREFIX + name);
  return {
    source: weights.source,
    names: () => weights.names().map((n) => (n.startsWith(PREFIX) ? n.slice(PREFIX.length) : n)),
    has: (name) => weights.has(real(name)),
    shape: (name) => weights.shape(real(name)),
    get: (name) => weights.get(real(name)),
    // Row reads and the file identity pass through: quantizing reads bands, and the graph cache key stays cheap.
    ...(weights.readRows && { readRows: (name, start, count) => weights.readRows!(real(name), start, count) }),
    ...(weights.identity && { identity: () => weights.identity!() }),
  };
}

/** Every tensor the checkpoint must hold (unprefixed names; Conv1D weights are stored [in, out]). */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  const { vocabSize: V, hiddenSize: d, intermediateSize: I } = cfg;
  const w: ExpectedWeight[] = [
    { name: 'wte.weight', shape: [V, d] },
    { name: 'wpe.weight', shape: [cfg.maxPositions, d] },
  ];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `h.${i}`;
    w.push({ name: `${p}.ln_1.weight`, shape: [d] }, { name: `${p}.ln_1.bias`, shape: [d] });
    w.push({ name: `${p}.attn.c_attn.weight`, shape: [d, 3 * d] }, { name: `${p}.attn.c_attn.bias`, shape: [3 * d] });
    w.push({ name: `${p}.attn.c_proj.weight`, shape: [d, d] }, { name: `${p}.attn.c_proj.bias`, shape: [d] });
    w.push({ name: `${p}.ln_2.weight`, shape: [d] }, { name: `${p}.ln_2.bias`, shape: [d] });
    w.push({ name: `${p}.mlp.c_fc.weight`, shape: [d, I] }, { name: `${p}.mlp.c_fc.bias`, shape: [I] });
    w.push({ name: `${p}.mlp.c_proj.weight`, shape: [I, d] }, { name: `${p}.mlp.c_proj.bias`, shape: [d] });
  }
  w.push({ name: 'ln_f.weight', shape: [d] }, { name: 'ln_f.bias', shape: [d] });
  if (!cfg.tiedEmbeddings) w.push({ name: 'lm_head.weight', shape: [V, d] });
  return w;
}

/** The LM head [V, d] (unprefixed names): wte (tied, GPT-2's default) or lm_head.weight. */
export function headWeightName(cfg: DecoderConfig): string {
  return cfg.tiedEmbeddings ? 'wte.weight' : 'lm_head.weight';
}
