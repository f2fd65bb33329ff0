/**
 * Sane upper bounds on model sizes, checked before anything is sized from a config: config.json and llama2.c
 * headers are untrusted, and a field such as num_hidden_layers 1e9 would otherwise make the parsers, the
 * expected-weight list and the RoPE tables allocate gigabytes (or abort V8) before the weights disagree.
 * Each bound is far above any model lmsteer can run (the largest open models have 126 layers, 16k hidden,
 * 256k vocabularies, 1M positions).
 */
import { LmSteerError } from '../util/errors.js';
import type { DecoderConfig } from './config.js';

export const MODEL_LIMITS = {
  layers: 1024,
  hiddenSize: 1 << 16,
  heads: 1024,
  headDim: 4096,
  intermediateSize: 1 << 19,
  vocabSize: 1 << 22,
  /** Also bounds the RoPE tables, [positions, rotaryDim/2] of cos and sin. */
  positions: 1 << 21,
  /** cos/sin table entries (positions × rotaryDim/2): 256 MiB of float32 each. */
  ropeTableEntries: 1 << 26,
};

/** config.json fields that size something, with their bound (every architecture's names). */
const RAW_FIELDS: Record<string, keyof typeof MODEL_LIMITS> = {
  num_hidden_layers: 'layers',
  n_layer: 'layers',
  max_window_layers: 'layers',
  hidden_size: 'hiddenSize',
  n_embd: 'hiddenSize',
  num_attention_heads: 'heads',
  n_head: 'heads',
  num_key_value_heads: 'heads',
  head_dim: 'headDim',
  intermediate_size: 'intermediateSize',
  n_inner: 'intermediateSize',
  vocab_size: 'vocabSize',
  max_position_embeddings: 'positions',
  n_positions: 'positions',
  n_ctx: 'positions',
  sliding_window: 'positions',
  // GPT-Neo, GPT-J, OPT
  num_layers: 'layers',
  num_heads: 'heads',
  ffn_dim: 'intermediateSize',
  word_embed_proj_dim: 'hiddenSize',
  window_size: 'positions',
  rotary_dim: 'headDim',
  original_max_position_embeddings: 'positions',
};

function tooBig(source: string, field: string, value: number, limit: number): LmSteerError {
  return new LmSteerError(
    'BAD_FILE',
    `${source}: config field "${field}" is ${value}, above lmsteer's limit of ${limit}`,
    'this is not the config.json of a real model (or it is damaged); use the one saved with the weights',
  );
}

/** Before parsing: every size field of the raw config.json that is a number must be within its bound. */
export function checkRawConfigSizes(raw: Record<string, unknown>, source: string): void {
  for (const [field, kind] of Object.entries(RAW_FIELDS)) {
    const v = raw[field];
    if (typeof v === 'number' && v > MODEL_LIMITS[kind]) throw tooBig(source, field, v, MODEL_LIMITS[kind]);
  }
}

/** After parsing: the derived sizes too (head_dim from hidden/heads, positions after RoPE scaling). */
export function checkConfigSizes(cfg: DecoderConfig, source: string): DecoderConfig {
  const derived: [string, number, number][] = [
    ['num_hidden_layers', cfg.numLayers, MODEL_LIMITS.layers],
    ['hidden_size', cfg.hiddenSize, MODEL_LIMITS.hiddenSize],
    ['num_attention_heads', cfg.numHeads, MODEL_LIMITS.heads],
    ['head_dim', cfg.headDim, MODEL_LIMITS.headDim],
    ['intermediate_size', cfg.intermediateSize, MODEL_LIMITS.intermediateSize],
    ['vocab_size', cfg.vocabSize, MODEL_LIMITS.vocabSize],
    ['max_position_embeddings (after rope_scaling)', cfg.maxPositions, MODEL_LIMITS.positions],
  ];
  if (cfg.modelWidth !== undefined)
    derived.push(['hidden_size (the residual stream)', cfg.modelWidth, MODEL_LIMITS.hiddenSize]);
  if (cfg.rope) {
    derived.push([
      'max_position_embeddings × rotary dims / 2 (the RoPE tables)',
      cfg.maxPositions * (cfg.rope.rotaryDim / 2),
      MODEL_LIMITS.ropeTableEntries,
    ]);
  }
  for (const [field, v, limit] of derived) {
    if (!Number.isFinite(v) || v > limit) throw tooBig(source, field, v, limit);
  }
  return cfg;
}
