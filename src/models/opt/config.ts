/**
 * config.json → DecoderConfig for OPT (model_type opt: facebook/opt-125m … 66b, OPT-350m), with OPTConfig's
 * defaults, and the tensors such a checkpoint must hold (OPTForCausalLM's names). OPT's quirks, all from config:
 * learned positions read at row position + 2 (OPTLearnedPositionalEmbedding's offset), ReLU, pre- or post-LayerNorm
 * (do_layer_norm_before), no final norm for post-norm models and _remove_final_layer_norm, LayerNorms without gain
 * and bias (layer_norm_elementwise_affine false), no linear biases (enable_bias false), and project_in/project_out
 * between the embedding width word_embed_proj_dim and hidden_size when they differ (OPT-350m: 512 and 1024).
 * The LM head works at word_embed_proj_dim, so that is DecoderConfig.hiddenSize (the `hidden` output and the
 * steer's d) and hidden_size is DecoderConfig.modelWidth.
 */
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import { ConfigReader, HF_ACTIVATIONS, withPrefix, type ExpectedWeight } from '../configFields.js';

const P = 'model.decoder.';

/** OPTLearnedPositionalEmbedding: row position + 2 of embed_positions (fairseq kept two rows for padding). */
export const POSITION_OFFSET = 2;

export function parseConfig(raw: Record<string, unknown>, source: string): DecoderConfig {
  const r = new ConfigReader(raw, source);
  const width = r.int('hidden_size', 768);
  const numHeads = r.int('num_attention_heads', 12);
  if (width % numHeads !== 0) r.fail('num_attention_heads', `must divide hidden_size (${width})`);
  const projDim = r.int('word_embed_proj_dim', width); // null: hidden_size
  const preNorm = r.bool('do_layer_norm_before', true);
  const enableBias = r.bool('enable_bias', true);
  return {
    arch: 'opt',
    modelType: 'opt',
    vocabSize: r.int('vocab_size', 50272),
    hiddenSize: projDim,
    ...(projDim !== width ? { modelWidth: width } : {}),
    numLayers: r.int('num_hidden_layers', 12),
    numHeads,
    numKvHeads: numHeads,
    headDim: width / numHeads,
    intermediateSize: r.int('ffn_dim', 3072),
    maxPositions: r.int('max_position_embeddings', 2048),
    norm: 'layernorm',
    normEps: 1e-5, // nn.LayerNorm's default; OPT has no config field for it
    activation: r.oneOf('activation_function', HF_ACTIVATIONS, 'relu'),
    position: 'learned',
    parallelResidual: false,
    qkvBias: enableBias,
    outBias: enableBias,
    mlpBias: enableBias,
    tiedEmbeddings: r.bool('tie_word_embeddings', true),
    postNorm: !preNorm,
    // OPTDecoder: final_layer_norm exists iff do_layer_norm_before and not _remove_final_layer_norm.
    finalNorm: preNorm && !r.bool('_remove_final_layer_norm', false),
    normAffine: r.bool('layer_norm_elementwise_affine', true),
    bosTokenId: r.tokenId('bos_token_id', 2),
    eosTokenIds: r.tokenIds('eos_token_id', [2]),
  };
}

/** OPTForCausalLM names tensors `model.decoder.…`; the facebook/opt-* files (saved from OPTModel) `decoder.…`. */
export function optWeights(weights: WeightStore): WeightStore {
  return withPrefix(weights, 'model.', `${P}embed_tokens.weight`, ['lm_head.weight']);
}

/** The residual stream's width: hidden_size. */
export function modelWidth(cfg: DecoderConfig): number {
  return cfg.modelWidth ?? cfg.hiddenSize;
}

/** Every tensor the checkpoint must hold (nn.Linear weights [out, in]). */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  const { vocabSize: V, hiddenSize: e, intermediateSize: I } = cfg;
  const d = modelWidth(cfg);
  const norm = (name: string) => (cfg.normAffine === false ? [] : [`${name}.weight`, `${name}.bias`]);
  const w: ExpectedWeight[] = [
    { name: `${P}embed_tokens.weight`, shape: [V, e] },
    { name: `${P}embed_positions.weight`, shape: [cfg.maxPositions + POSITION_OFFSET, d] },
  ];
  if (e !== d) {
    w.push({ name: `${P}project_in.weight`, shape: [d, e] }, { name: `${P}project_out.weight`, shape: [e, d] });
  }
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `${P}layers.${i}`;
    for (const n of ['q', 'k', 'v', 'out']) {
      w.push({ name: `${p}.self_attn.${n}_proj.weight`, shape: [d, d] });
      if (cfg.qkvBias) w.push({ name: `${p}.self_attn.${n}_proj.bias`, shape: [d] });
    }
    for (const n of norm(`${p}.self_attn_layer_norm`)) w.push({ name: n, shape: [d] });
    w.push({ name: `${p}.fc1.weight`, shape: [I, d] });
    if (cfg.mlpBias) w.push({ name: `${p}.fc1.bias`, shape: [I] });
    w.push({ name: `${p}.fc2.weight`, shape: [d, I] });
    if (cfg.mlpBias) w.push({ name: `${p}.fc2.bias`, shape: [d] });
    for (const n of norm(`${p}.final_layer_norm`)) w.push({ name: n, shape: [d] });
  }
  if (cfg.finalNorm !== false) for (const n of norm(`${P}final_layer_norm`)) w.push({ name: n, shape: [d] });
  if (!cfg.tiedEmbeddings) w.push({ name: 'lm_head.weight', shape: [V, e] });
  return w;
}

/** The LM head [V, word_embed_proj_dim]: embed_tokens (tied, OPT's default) or lm_head.weight. */
export function headWeightName(cfg: DecoderConfig): string {
  return cfg.tiedEmbeddings ? `${P}embed_tokens.weight` : 'lm_head.weight';
}
