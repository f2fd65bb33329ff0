/**
 * config.json → DecoderConfig for Phi-3 (model_type phi3: Phi-3, Phi-3.5-mini, Phi-4-mini), with the defaults of
 * transformers' Phi3Config, and the tensors such a checkpoint must hold. Phi-3 is a Llama-style decoder with
 * q/k/v in one fused projection (qkv_proj) and gate/up in another (gate_up_proj), optionally partial rotary
 * (partial_rotary_factor), a sliding window in every layer when sliding_window is set, and LongRoPE
 * ("longrope", formerly "su") for the long-context variants.
 */
import type { DecoderConfig } from '../config.js';
import {
  ConfigReader,
  headDimOr,
  kvHeads,
  LLAMA_ACTIVATIONS,
  llamaLayoutHead,
  llamaLayoutWeights,
  type ExpectedWeight,
} from '../configFields.js';
import { parseRope, ropeMaxPositions } from '../rope.js';

/** Phi3Config renames rope_scaling type "su" and "yarn" to "longrope" (both were its name for it). */
function phi3RopeScaling(raw: Record<string, unknown>): Record<string, unknown> {
  const s = raw.rope_scaling;
  if (s === null || typeof s !== 'object' || Array.isArray(s)) return raw;
  const type = (s as Record<string, unknown>).type;
  if (type !== 'su' && type !== 'yarn') return raw;
  return { ...raw, rope_scaling: { ...(s as object), type: 'longrope' } };
}

export function parseConfig(rawIn: Record<string, unknown>, source: string): DecoderConfig {
  const raw = phi3RopeScaling(rawIn);
  const r = new ConfigReader(raw, source);
  if (r.str('model_type', 'phi3') !== 'phi3') r.fail('model_type', 'must be phi3');
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = kvHeads(r, numHeads, numHeads);
  const headDim = headDimOr(r, hiddenSize, numHeads);
  const params = r.object('rope_parameters'); // transformers ≥ 5 keeps partial_rotary_factor there
  const partial = params?.has('partial_rotary_factor')
    ? params.numberIn('partial_rotary_factor', 0, 1, 1)
    : r.numberIn('partial_rotary_factor', 0, 1, 1);
  const rotaryDim = Math.floor(headDim * partial);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0)
    r.fail('partial_rotary_factor', `must leave an even number ≥ 2 of rotary dims of head_dim ${headDim}`);

  const maxPositionEmbeddings = r.int('max_position_embeddings', 4096);
  const rope = parseRope(r, 10000, maxPositionEmbeddings, [], {
    longrope: true,
    originalMaxPositions: r.int('original_max_position_embeddings', 4096),
  });
  if (rope.scaling?.type === 'longrope') {
    const s = r.object('rope_scaling') ?? params!;
    for (const f of ['short_factor', 'long_factor'] as const) {
      const n = (f === 'short_factor' ? rope.scaling.shortFactor : rope.scaling.longFactor)!.length;
      if (n !== rotaryDim / 2) s.fail(f, `must list ${rotaryDim / 2} factors (rotary dims / 2), not ${n}`);
    }
  }
  const maxPositions = ropeMaxPositions(maxPositionEmbeddings, rope.scaling);
  const numLayers = r.int('num_hidden_layers');
  // Phi3Model masks every layer with the window when sliding_window is set (Phi-3-mini-4k: 2047).
  const window = r.has('sliding_window') ? r.int('sliding_window') : undefined;
  return {
    arch: 'phi3',
    modelType: 'phi3',
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: r.int('intermediate_size'),
    maxPositions,
    norm: 'rmsnorm',
    normEps: r.numberIn('rms_norm_eps', 0, 1, 1e-5),
    activation: r.oneOf('hidden_act', LLAMA_ACTIVATIONS, 'silu'),
    position: 'rope',
    rope: { theta: rope.theta, rotaryDim, scaling: rope.scaling },
    parallelResidual: false,
    qkvBias: false,
    outBias: false,
    mlpBias: false,
    tiedEmbeddings: r.bool('tie_word_embeddings', false),
    ...(window !== undefined && window < maxPositions
      ? { slidingWindow: { size: window, layers: Array.from({ length: numLayers }, (_, i) => i) } }
      : {}),
    bosTokenId: r.tokenId('bos_token_id', 1),
    eosTokenIds: r.tokenIds('eos_token_id', [32000]),
  };
}

/** Every tensor the checkpoint must hold, with its shape (HF names, nn.Linear weights [out, in]). */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  const { hiddenSize: d, numHeads: H, numKvHeads: kvH, headDim: hd, intermediateSize: I } = cfg;
  return llamaLayoutWeights(cfg, (p) => [
    { name: `${p}.input_layernorm.weight`, shape: [d] },
    { name: `${p}.self_attn.qkv_proj.weight`, shape: [(H + 2 * kvH) * hd, d] }, // rows: q, then k, then v
    { name: `${p}.self_attn.o_proj.weight`, shape: [d, H * hd] },
    { name: `${p}.post_attention_layernorm.weight`, shape: [d] },
    { name: `${p}.mlp.gate_up_proj.weight`, shape: [2 * I, d] }, // rows: gate, then up
    { name: `${p}.mlp.down_proj.weight`, shape: [d, I] },
  ]);
}

/** The LM head [V, d]: lm_head.weight, or the token embedding when tied (Phi-4-mini). */
export const headWeightName = llamaLayoutHead;
