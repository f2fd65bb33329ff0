/**
 * config.json → DecoderConfig for Qwen3 (model_type qwen3), with the defaults of transformers' Qwen3Config, and
 * the tensors such a checkpoint must hold. Qwen3 is Llama's decoder plus an RMSNorm over each query and key
 * head (q_norm, k_norm, before RoPE); q/k/v/o biases only with attention_bias (off in every released model).
 */
import type { DecoderConfig } from '../config.js';
import {
  ConfigReader,
  gatedMlpWeights,
  kvHeads,
  LLAMA_ACTIVATIONS,
  llamaLayoutHead,
  llamaLayoutWeights,
  qkvoWeights,
  slidingLayerTypes,
  type ExpectedWeight,
} from '../configFields.js';
import { parseRope, ropeMaxPositions } from '../rope.js';

/**
 * Sliding-window layers as Qwen3Config decides them: none unless use_sliding_window; then the layers from
 * max_window_layers on (or those layer_types names "sliding_attention"), with window sliding_window.
 */
function slidingWindow(r: ConfigReader, numLayers: number): { size: number; layers: number[] } | undefined {
  if (!r.bool('use_sliding_window', false)) return undefined;
  const size = r.int('sliding_window', 4096);
  let layers = Array.from({ length: numLayers }, (_, i) => i);
  const types = slidingLayerTypes(r, numLayers);
  if (types) {
    layers = layers.filter((i) => types[i]);
  } else {
    const from = r.int('max_window_layers', 28);
    layers = layers.filter((i) => i >= from);
  }
  return layers.length > 0 ? { size, layers } : undefined;
}

export function parseConfig(raw: Record<string, unknown>, source: string): DecoderConfig {
  const r = new ConfigReader(raw, source);
  if (r.str('model_type', 'qwen3') !== 'qwen3') r.fail('model_type', 'must be qwen3');
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = kvHeads(r, numHeads, 32);
  // Qwen3Config's head_dim defaults to 128, not hidden_size / heads; null falls back to the quotient.
  const headDim = 'head_dim' in raw && !r.has('head_dim') ? hiddenSize / numHeads : r.int('head_dim', 128);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0)
    r.fail('head_dim', 'must be an even integer for rotary embeddings');
  const maxPositionEmbeddings = r.int('max_position_embeddings', 32768);
  const rope = parseRope(r, 10000, maxPositionEmbeddings);
  const maxPositions = ropeMaxPositions(maxPositionEmbeddings, rope.scaling);
  const numLayers = r.int('num_hidden_layers');
  const window = slidingWindow(r, numLayers);
  const attentionBias = r.bool('attention_bias', false);
  return {
    arch: 'qwen3',
    modelType: 'qwen3',
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: r.int('intermediate_size'),
    maxPositions,
    norm: 'rmsnorm',
    normEps: r.numberIn('rms_norm_eps', 0, 1, 1e-6),
    activation: r.oneOf('hidden_act', LLAMA_ACTIVATIONS, 'silu'),
    position: 'rope',
    rope: { theta: rope.theta, rotaryDim: headDim, scaling: rope.scaling },
    parallelResidual: false,
    qkvBias: attentionBias,
    outBias: attentionBias,
    mlpBias: false,
    tiedEmbeddings: r.bool('tie_word_embeddings', false),
    ...(window && window.size < maxPositions ? { slidingWindow: window } : {}),
    bosTokenId: r.tokenId('bos_token_id'),
    eosTokenIds: r.tokenIds('eos_token_id', []),
  };
}

/** Every tensor the checkpoint must hold, with its shape (HF names, nn.Linear weights [out, in]). */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  const { hiddenSize: d, headDim: hd } = cfg;
  return llamaLayoutWeights(cfg, (p) => [
    { name: `${p}.input_layernorm.weight`, shape: [d] },
    ...qkvoWeights(p, cfg),
    { name: `${p}.self_attn.q_norm.weight`, shape: [hd] },
    { name: `${p}.self_attn.k_norm.weight`, shape: [hd] },
    { name: `${p}.post_attention_layernorm.weight`, shape: [d] },
    ...gatedMlpWeights(p, cfg),
  ]);
}

/** The LM head [V, d]: lm_head.weight, or the token embedding when tied (Qwen3 ≤ 4B). */
export const headWeightName = llamaLayoutHead;
