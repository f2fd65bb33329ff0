/**
 * config.json → DecoderConfig for GPT-J (model_type gptj: EleutherAI/gpt-j-6B), with GPTJConfig's defaults, and
 * the tensors such a checkpoint must hold (GPTJForCausalLM's names). GPT-J rotates the first rotary_dim channels
 * of each head in interleaved pairs (2i, 2i+1) (rotate_every_two), runs attention and MLP in parallel from one
 * LayerNorm, and has an untied LM head with a bias.
 */
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import { ConfigReader, HF_ACTIVATIONS, intField, withPrefix, type ExpectedWeight } from '../configFields.js';

const P = 'transformer.';

export function parseConfig(raw: Record<string, unknown>, source: string): DecoderConfig {
  const r = new ConfigReader(raw, source);
  const hiddenSize = intField(r, 'n_embd', 'hidden_size', 4096);
  const numHeads = intField(r, 'n_head', 'num_attention_heads', 16);
  if (hiddenSize % numHeads !== 0) r.fail('n_head', `must divide n_embd (${hiddenSize})`);
  const headDim = hiddenSize / numHeads;
  // rotary_dim null: every channel of a head rotates (GPTJAttention: pos_embd_dim = rotary_dim or embed_dim).
  const rotaryDim = r.int('rotary_dim', headDim);
  if (rotaryDim > headDim || rotaryDim % 2 !== 0)
    r.fail('rotary_dim', `must be even and at most the head size ${headDim}`);
  return {
    arch: 'gptj',
    modelType: 'gptj',
    vocabSize: r.int('vocab_size', 50400),
    hiddenSize,
    numLayers: intField(r, 'n_layer', 'num_hidden_layers', 28),
    numHeads,
    numKvHeads: numHeads,
    headDim,
    intermediateSize: r.int('n_inner', 4 * hiddenSize), // null: 4·n_embd
    maxPositions: intField(r, 'n_positions', 'max_position_embeddings', 2048),
    norm: 'layernorm',
    normEps: r.numberIn('layer_norm_epsilon', 0, 1, 1e-5),
    activation: r.oneOf('activation_function', HF_ACTIVATIONS, 'gelu_new'),
    position: 'rope',
    // create_sinusoidal_positions: θ_i = 10000^(−2i/rotary_dim), fixed (GPT-J reads no rope_theta or scaling).
    rope: { theta: 10000, rotaryDim },
    parallelResidual: true,
    qkvBias: false,
    outBias: false,
    mlpBias: true,
    tiedEmbeddings: r.bool('tie_word_embeddings', false),
    bosTokenId: r.tokenId('bos_token_id', 50256),
    eosTokenIds: r.tokenIds('eos_token_id', [50256]),
  };
}

/** GPTJForCausalLM names tensors `transformer.…` (lm_head.* outside); a GPTJModel checkpoint has no prefix. */
export function gptjWeights(weights: WeightStore): WeightStore {
  return withPrefix(weights, P, `${P}wte.weight`, ['lm_head.weight', 'lm_head.bias']);
}

/** Every tensor the checkpoint must hold (nn.Linear weights [out, in]). */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  const { vocabSize: V, hiddenSize: d, intermediateSize: I } = cfg;
  const w: ExpectedWeight[] = [{ name: `${P}wte.weight`, shape: [V, d] }];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `${P}h.${i}`;
    w.push({ name: `${p}.ln_1.weight`, shape: [d] }, { name: `${p}.ln_1.bias`, shape: [d] });
    for (const n of ['q', 'k', 'v', 'out']) w.push({ name: `${p}.attn.${n}_proj.weight`, shape: [d, d] });
    w.push({ name: `${p}.mlp.fc_in.weight`, shape: [I, d] }, { name: `${p}.mlp.fc_in.bias`, shape: [I] });
    w.push({ name: `${p}.mlp.fc_out.weight`, shape: [d, I] }, { name: `${p}.mlp.fc_out.bias`, shape: [d] });
  }
  w.push({ name: `${P}ln_f.weight`, shape: [d] }, { name: `${P}ln_f.bias`, shape: [d] });
  if (!cfg.tiedEmbeddings) w.push({ name: 'lm_head.weight', shape: [V, d] });
  w.push({ name: 'lm_head.bias', shape: [V] }); // nn.Linear(n_embd, vocab_size), bias included
  return w;
}

/** The LM head [V, d]: lm_head.weight (GPT-J is untied), or wte when tie_word_embeddings is set. */
export function headWeightName(cfg: DecoderConfig): string {
  return cfg.tiedEmbeddings ? `${P}wte.weight` : 'lm_head.weight';
}

export const HEAD_BIAS = 'lm_head.bias';
