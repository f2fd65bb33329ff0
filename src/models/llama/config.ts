/**
 * config.json → DecoderConfig for the Llama family (model_type llama, mistral, qwen2), with transformers'
 * defaults for absent fields, and the tensors such a checkpoint must hold.
 */
import type { DecoderConfig } from '../config.js';
import {
  ConfigReader,
  gatedMlpWeights,
  headDimOr,
  kvHeads,
  LLAMA_ACTIVATIONS,
  llamaLayoutHead,
  llamaLayoutWeights,
  slidingLayerTypes,
  type ExpectedWeight,
} from '../configFields.js';
import { parseRope, ropeMaxPositions } from '../rope.js';

export const LLAMA_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;
type LlamaType = (typeof LLAMA_MODEL_TYPES)[number];

/** The defaults of LlamaConfig, MistralConfig and Qwen2Config for fields a config.json may leave out. */
const DEFAULTS: Record<LlamaType, { maxPositions: number; kvHeads?: number; bos?: number; eos: number[] }> = {
  llama: { maxPositions: 2048, bos: 1, eos: [2] }, // kv heads default to the query heads
  mistral: { maxPositions: 4096 * 32, kvHeads: 8, bos: 1, eos: [2] },
  qwen2: { maxPositions: 32768, kvHeads: 32, eos: [] },
};

export function parseConfig(raw: Record<string, unknown>, source: string): DecoderConfig {
  const r = new ConfigReader(raw, source);
  const modelType = r.str('model_type', 'llama') as LlamaType;
  if (!Object.hasOwn(DEFAULTS, modelType)) r.fail('model_type', `must be one of ${LLAMA_MODEL_TYPES.join(', ')}`);
  const defaults = DEFAULTS[modelType];

  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = kvHeads(r, numHeads, defaults.kvHeads ?? numHeads); // mistral 8, qwen2 32, llama the query heads
  const headDim = headDimOr(r, hiddenSize, numHeads);
  if (headDim % 2 !== 0) r.fail('head_dim', 'must be even for rotary embeddings');
  const maxPositionEmbeddings = r.int('max_position_embeddings', defaults.maxPositions);
  const rope = parseRope(r, 10000, maxPositionEmbeddings);

  // attention_bias (llama only) puts biases on q, k, v and o_proj; qwen2 always has q/k/v biases and none on
  // o_proj; mistral has none (its attention ignores attention_bias).
  const attentionBias = modelType === 'llama' && r.bool('attention_bias', false);
  const qkvBias = modelType === 'qwen2' || attentionBias;

  const maxPositions = ropeMaxPositions(maxPositionEmbeddings, rope.scaling);
  const numLayers = r.int('num_hidden_layers');
  const window = slidingWindow(r, modelType, numLayers);
  return {
    arch: 'llama',
    modelType,
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
    qkvBias,
    outBias: attentionBias,
    mlpBias: modelType === 'llama' && r.bool('mlp_bias', false),
    tiedEmbeddings: r.bool('tie_word_embeddings', false),
    ...(window && window.size < maxPositions ? { slidingWindow: window } : {}), // a wider window changes nothing
    bosTokenId: r.tokenId('bos_token_id', defaults.bos),
    eosTokenIds: r.tokenIds('eos_token_id', defaults.eos),
  };
}

/**
 * The attention window of mistral / qwen2 and the layers that use it, as transformers decides them: mistral
 * windows every layer (sliding_window, default 4096; null for none, as in Mistral ≥ v0.2); qwen2 only with
 * use_sliding_window, in layers ≥ max_window_layers; an explicit layer_types list overrides both.
 */
function slidingWindow(
  r: ConfigReader,
  modelType: LlamaType,
  numLayers: number,
): { size: number; layers: number[] } | undefined {
  let size: number | undefined;
  if (modelType === 'mistral')
    size = !('sliding_window' in r.raw) ? 4096 : r.has('sliding_window') ? r.int('sliding_window') : undefined;
  else if (modelType === 'qwen2' && r.bool('use_sliding_window', false)) size = r.int('sliding_window', 4096);
  if (size === undefined) return undefined;
  let layers = Array.from({ length: numLayers }, (_, i) => i);
  const types = slidingLayerTypes(r, numLayers);
  if (types) {
    layers = layers.filter((i) => types[i]);
  } else if (modelType === 'qwen2') {
    const from = r.int('max_window_layers', 28);
    layers = layers.filter((i) => i >= from);
  }
  return layers.length > 0 ? { size, layers } : undefined;
}

/** Every tensor the checkpoint must hold, with its shape (HF names, nn.Linear weights [out, in]). */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  const { hiddenSize: d, numHeads: H, numKvHeads: kvH, headDim: hd } = cfg;
  return llamaLayoutWeights(cfg, (p) => {
    const w: ExpectedWeight[] = [{ name: `${p}.input_layernorm.weight`, shape: [d] }];
    w.push({ name: `${p}.self_attn.q_proj.weight`, shape: [H * hd, d] });
    w.push({ name: `${p}.self_attn.k_proj.weight`, shape: [kvH * hd, d] });
    w.push({ name: `${p}.self_attn.v_proj.weight`, shape: [kvH * hd, d] });
    if (cfg.qkvBias) {
      w.push({ name: `${p}.self_attn.q_proj.bias`, shape: [H * hd] });
      w.push({ name: `${p}.self_attn.k_proj.bias`, shape: [kvH * hd] });
      w.push({ name: `${p}.self_attn.v_proj.bias`, shape: [kvH * hd] });
    }
    w.push({ name: `${p}.self_attn.o_proj.weight`, shape: [d, H * hd] });
    if (cfg.outBias) w.push({ name: `${p}.self_attn.o_proj.bias`, shape: [d] });
    w.push({ name: `${p}.post_attention_layernorm.weight`, shape: [d] });
    w.push(...gatedMlpWeights(p, cfg));
    return w;
  });
}

/** The LM head [V, d]: lm_head.weight, or the token embedding when tied. */
export const headWeightName = llamaLayoutHead;
