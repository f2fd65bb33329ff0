/**
 * config.json → DecoderConfig for Gemma 2 (model_type gemma2) and Gemma 3's text decoder (gemma3_text), with
 * the defaults of transformers' Gemma2Config and Gemma3TextConfig, and the tensors such a checkpoint must hold.
 * What the two add to a Llama-style decoder: the embedding scaled by √d, RMSNorm gains (1 + w), norms before and
 * after attention and MLP, attention scores scaled by query_pre_attn_scalar^−½ (and soft-capped in Gemma 2), the
 * final logits soft-capped (Gemma 2), sliding-window layers alternating with global ones, and in Gemma 3 q/k
 * norms and a second RoPE base for the sliding layers.
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../formats/halfFloat.js';
import type { WeightStore } from '../../formats/weights.js';
import { LmSteerError } from '../../util/errors.js';
import type { DecoderConfig, RopeScaling } from '../config.js';
import {
  ConfigReader,
  gatedMlpWeights,
  kvHeads,
  llamaLayoutHead,
  llamaLayoutWeights,
  qkvoWeights,
  slidingLayerTypes,
  type ExpectedWeight,
} from '../configFields.js';
import { checkRawConfigSizes } from '../limits.js';
import { parseRope, parseScaling, ropeMaxPositions } from '../rope.js';

/** gemma3: Gemma 3's multimodal checkpoints (4B and up), of which lmsteer reads the text decoder only. */
export const GEMMA_MODEL_TYPES = ['gemma2', 'gemma3_text', 'gemma3'] as const;
type GemmaType = 'gemma2' | 'gemma3_text';

/** Gemma2Config / Gemma3TextConfig defaults for the fields a config.json may leave out. */
const DEFAULTS: Record<
  GemmaType,
  {
    vocab: number;
    maxPositions: number;
    theta: number;
    finalSoftcap: number | null;
    attnSoftcap: number | null;
    /** Layer i is a sliding one when (i + 1) % pattern ≠ 0 (transformers' layer_types default). */
    pattern: number;
  }
> = {
  gemma2: { vocab: 256000, maxPositions: 8192, theta: 10000, finalSoftcap: 30, attnSoftcap: 50, pattern: 2 },
  gemma3_text: {
    vocab: 262208,
    maxPositions: 131072,
    theta: 1_000_000,
    finalSoftcap: null,
    attnSoftcap: null,
    pattern: 6,
  },
};

const ACTIVATIONS = {
  gelu_pytorch_tanh: 'gelu_new',
  gelu_new: 'gelu_new',
  gelu: 'gelu',
  silu: 'silu',
  relu: 'relu',
} as const;

/** Whether layer i is a sliding-window one, one entry per layer. */
function layerTypes(r: ConfigReader, numLayers: number, pattern: number): boolean[] {
  const types = slidingLayerTypes(r, numLayers);
  if (types) return types;
  const every = r.int('sliding_window_pattern', pattern); // config.json files before layer_types
  return Array.from({ length: numLayers }, (_, i) => (i + 1) % every !== 0);
}

/** A soft-capping value: absent → the class default, null → none (transformers skips the cap). */
function softcap(r: ConfigReader, field: string, fallback: number | null): number | undefined {
  if (!(field in r.raw)) return fallback ?? undefined;
  return r.has(field) ? r.positive(field) : undefined;
}

function refuse(source: string, field: string, why: string, hint: string): never {
  throw new LmSteerError('UNSUPPORTED', `${source}: config field "${field}" ${why}`, hint);
}

/**
 * Gemma 3's two RoPEs: global layers use rope_theta (default 1e6) with rope_scaling (4B+: linear, factor 8);
 * sliding layers rope_local_base_freq (default 1e4), unscaled. transformers ≥ 5 writes both as rope_parameters
 * { full_attention: {…}, sliding_attention: {…} }.
 */
function gemma3Ropes(
  r: ConfigReader,
  maxPositions: number,
): { global: { theta: number; scaling?: RopeScaling }; local: { theta: number; scaling?: RopeScaling } } {
  const params = r.object('rope_parameters');
  const full = params?.object('full_attention');
  const sliding = params?.object('sliding_attention');
  if (full || sliding) {
    const fromParams = (p: ConfigReader | undefined, thetaField: string, fallback: number) => ({
      theta: p?.has('rope_theta') ? p.positive('rope_theta') : r.positive(thetaField, fallback),
      scaling: p ? parseScaling(p, maxPositions) : undefined,
    });
    return {
      global: fromParams(full, 'rope_theta', 1_000_000),
      local: fromParams(sliding, 'rope_local_base_freq', 10000),
    };
  }
  // transformers 4.x builds the local RoPE with rope_scaling forced to default.
  return {
    global: parseRope(r, 1_000_000, maxPositions),
    local: { theta: r.positive('rope_local_base_freq', 10000) },
  };
}

/**
 * A multimodal Gemma 3 config.json (model_type gemma3) → its text_config as a gemma3_text config (Gemma3Config
 * builds Gemma3TextConfig from it, so absent fields take that class's defaults). Token ids missing there come from
 * the top level, where those files keep them.
 */
function textConfigOf(raw: Record<string, unknown>, source: string): Record<string, unknown> {
  const top = new ConfigReader(raw, source);
  const text = top.object('text_config');
  if (!text) return top.fail('text_config', 'is missing; a gemma3 config.json holds the text model there');
  checkRawConfigSizes(text.raw, `${source} (text_config)`);
  const ids = Object.fromEntries(
    ['bos_token_id', 'eos_token_id', 'pad_token_id']
      .filter((k) => !(k in text.raw) && k in raw)
      .map((k) => [k, raw[k]]),
  );
  return { ...text.raw, ...ids, model_type: 'gemma3_text' };
}

export function parseConfig(rawIn: Record<string, unknown>, sourceIn: string): DecoderConfig {
  const multimodal = rawIn.model_type === 'gemma3';
  const raw = multimodal ? textConfigOf(rawIn, sourceIn) : rawIn;
  const source = multimodal ? `${sourceIn} (text_config)` : sourceIn;
  const r = new ConfigReader(raw, source);
  const modelType = r.str('model_type', 'gemma2') as GemmaType;
  if (!Object.hasOwn(DEFAULTS, modelType)) r.fail('model_type', `must be one of ${GEMMA_MODEL_TYPES.join(', ')}`);
  const defaults = DEFAULTS[modelType];
  const gemma3 = modelType === 'gemma3_text';

  // Sizes default as in Gemma2Config / Gemma3TextConfig (Gemma 3's text_config lists only what differs).
  const hiddenSize = r.int('hidden_size', 2304);
  const numHeads = r.int('num_attention_heads', 8);
  const numKvHeads = kvHeads(r, numHeads, 4);
  const headDim = r.int('head_dim', 256);
  if (headDim % 2 !== 0) r.fail('head_dim', 'must be even for rotary embeddings');
  const numLayers = r.int('num_hidden_layers', 26);
  const maxPositionEmbeddings = r.int('max_position_embeddings', defaults.maxPositions);

  if (gemma3 && r.bool('use_bidirectional_attention', false))
    refuse(
      source,
      'use_bidirectional_attention',
      'is true (an embedding model: every token sees the whole text)',
      'lmsteer runs causal language models only',
    );
  const attnSoftcap = softcap(r, 'attn_logit_softcapping', defaults.attnSoftcap);
  if (gemma3 && attnSoftcap !== undefined)
    refuse(
      source,
      'attn_logit_softcapping',
      `is ${attnSoftcap}, but transformers' Gemma 3 attention does not apply it`,
      'set it to null (as Gemma 3 checkpoints do), or use model_type gemma2 if the model was trained with the cap',
    );

  let rope: { theta: number; scaling?: RopeScaling };
  let localRope: DecoderConfig['localRope'];
  if (gemma3) {
    const both = gemma3Ropes(r, maxPositionEmbeddings);
    rope = both.global;
    localRope = { theta: both.local.theta, rotaryDim: headDim, scaling: both.local.scaling, layers: [] };
  } else {
    rope = parseRope(r, defaults.theta, maxPositionEmbeddings);
  }
  const maxPositions = ropeMaxPositions(maxPositionEmbeddings, rope.scaling);

  // sliding_window null: no layer is windowed; a window as wide as the context changes nothing.
  const sliding = layerTypes(r, numLayers, defaults.pattern);
  const windowSize = 'sliding_window' in raw ? (r.has('sliding_window') ? r.int('sliding_window') : undefined) : 4096;
  const windowLayers = sliding.flatMap((s, i) => (s ? [i] : []));
  const slidingWindow =
    windowSize !== undefined && windowSize < maxPositions && windowLayers.length > 0
      ? { size: windowSize, layers: windowLayers }
      : undefined;
  // The local RoPE goes with the layer type, whether or not the window is narrower than the context.
  if (localRope) localRope.layers = windowLayers;
  if (localRope?.layers.length === 0) localRope = undefined;

  const attentionBias = r.bool('attention_bias', false);
  return {
    arch: 'gemma',
    modelType: multimodal ? 'gemma3' : modelType,
    vocabSize: r.int('vocab_size', defaults.vocab),
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: r.int('intermediate_size', 9216),
    maxPositions,
    norm: 'rmsnorm',
    normEps: r.numberIn('rms_norm_eps', 0, 1, 1e-6),
    // Gemma's MLP reads hidden_activation (hidden_act is an unused legacy field of the same configs).
    activation: r.oneOf('hidden_activation', ACTIVATIONS, 'gelu_new'),
    position: 'rope',
    rope: { theta: rope.theta, rotaryDim: headDim, scaling: rope.scaling },
    parallelResidual: false,
    qkvBias: attentionBias,
    outBias: attentionBias,
    mlpBias: false,
    tiedEmbeddings: r.bool('tie_word_embeddings', true),
    ...(slidingWindow ? { slidingWindow } : {}),
    attention: {
      scale: 1 / Math.sqrt(r.positive('query_pre_attn_scalar', 256)),
      ...(attnSoftcap !== undefined ? { softcap: attnSoftcap } : {}),
    },
    ...(localRope ? { localRope } : {}),
    ...(() => {
      const cap = softcap(r, 'final_logit_softcapping', defaults.finalSoftcap);
      return cap !== undefined ? { finalLogitSoftcap: cap } : {};
    })(),
    bosTokenId: r.tokenId('bos_token_id', 2),
    eosTokenIds: r.tokenIds('eos_token_id', [1]),
  };
}

/** Every tensor the checkpoint must hold, with its shape (HF names, nn.Linear weights [out, in]). */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  const { hiddenSize: d, headDim: hd } = cfg;
  return llamaLayoutWeights(cfg, (p) => [
    { name: `${p}.input_layernorm.weight`, shape: [d] },
    ...qkvoWeights(p, cfg),
    ...(hasQkNorm(cfg)
      ? [
          { name: `${p}.self_attn.q_norm.weight`, shape: [hd] },
          { name: `${p}.self_attn.k_norm.weight`, shape: [hd] },
        ]
      : []),
    { name: `${p}.post_attention_layernorm.weight`, shape: [d] },
    { name: `${p}.pre_feedforward_layernorm.weight`, shape: [d] },
    { name: `${p}.post_feedforward_layernorm.weight`, shape: [d] },
    ...gatedMlpWeights(p, cfg),
  ]);
}

/** Gemma 3 (text or multimodal) normalizes each query and key head; Gemma 2 does not. */
export function hasQkNorm(cfg: DecoderConfig): boolean {
  return cfg.modelType !== 'gemma2';
}

/**
 * The text decoder's weights under model.* / lm_head.weight: Gemma 3's multimodal checkpoints hold it under
 * language_model.model.* (the hub's files, transformers ≤ 4.51) or model.language_model.* (saved by later
 * versions). The vision tower's tensors are left out of the view.
 */
export function gemmaWeights(weights: WeightStore): WeightStore {
  const prefix = ['language_model.model.', 'model.language_model.'].find((p) => weights.has(`${p}embed_tokens.weight`));
  if (!prefix) return weights;
  const head = ['language_model.lm_head.weight', 'lm_head.weight'].find((n) => weights.has(n));
  const real = (name: string) =>
    name === 'lm_head.weight' && head ? head : name.startsWith('model.') ? prefix + name.slice('model.'.length) : name;
  const canonical = (name: string) => (name === head ? 'lm_head.weight' : 'model.' + name.slice(prefix.length));
  const { readRows, identity, dtypeOf } = weights;
  return {
    source: weights.source,
    names: () =>
      weights
        .names()
        .filter((n) => n.startsWith(prefix) || n === head)
        .map(canonical),
    has: (name) => weights.has(real(name)),
    shape: (name) => weights.shape(real(name)),
    get: (name) => weights.get(real(name)),
    ...(readRows
      ? { readRows: (name: string, start: number, count: number) => readRows.call(weights, real(name), start, count) }
      : {}),
    ...(identity ? { identity: () => identity.call(weights) } : {}),
    ...(dtypeOf ? { dtypeOf: (name: string) => dtypeOf.call(weights, real(name)) } : {}),
  };
}

/** The LM head [V, d]: lm_head.weight, or the token embedding when tied (Gemma's default). */
export const headWeightName = llamaLayoutHead;

/**
 * Gemma's embedding normalizer √d in the dtype of the stored embedding, as transformers computes it
 * (`torch.tensor(hidden_size ** 0.5, dtype=hidden_states.dtype)`; Gemma 3: `embed_scale.to(weight.dtype)`): a
 * bf16 checkpoint multiplies by √d rounded to bf16 (√3072 = 55.43 → 55.5), a float32 one by √d in float32.
 */
export function embeddingScale(cfg: DecoderConfig, weights: WeightStore): number {
  const s = Math.sqrt(cfg.hiddenSize);
  const dtype = weights.dtypeOf?.('model.embed_tokens.weight') ?? 'F32';
  const one = Float32Array.of(s);
  if (dtype === 'BF16') return bf16ToF32(f32ToBf16(one))[0]!;
  if (dtype === 'F16') return f16ToF32(f32ToF16(one))[0]!;
  return dtype === 'F64' ? s : one[0]!;
}
