/**
 * config.json → DecoderConfig for GPT-NeoX (model_type gpt_neox: Pythia, …), with GPTNeoXConfig's defaults, and
 * the tensors such a checkpoint must hold.
 */
import type { DecoderConfig } from '../config.js';
import { ConfigReader, type ExpectedWeight } from '../configFields.js';
import { parseRope, ropeMaxPositions } from '../rope.js';

const ACTIVATIONS = {
  gelu: 'gelu',
  gelu_new: 'gelu_new',
  gelu_pytorch_tanh: 'gelu_new',
  gelu_fast: 'gelu_new',
  relu: 'relu',
  silu: 'silu',
  swish: 'silu',
} as const;

export function parseConfig(raw: Record<string, unknown>, source: string): DecoderConfig {
  const r = new ConfigReader(raw, source);
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  if (hiddenSize % numHeads !== 0) r.fail('num_attention_heads', `must divide hidden_size (${hiddenSize})`);
  const headDim = hiddenSize / numHeads;
  const maxPositions = r.int('max_position_embeddings', 2048);

  // Only the first rotaryDim channels of a head rotate: rotary_pct (transformers ≥ 5: partial_rotary_factor).
  const params = r.object('rope_parameters');
  const pct = params?.has('partial_rotary_factor')
    ? params.numberIn('partial_rotary_factor', 0, 1, 1)
    : r.has('partial_rotary_factor')
      ? r.numberIn('partial_rotary_factor', 0, 1, 1)
      : r.numberIn('rotary_pct', 0, 1, 0.25);
  const rotaryDim = Math.floor(headDim * pct);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0)
    r.fail('rotary_pct', `gives ${rotaryDim} rotary channels of head_dim ${headDim}; it must be an even number ≥ 2`);
  const rope = parseRope(r, 10000, maxPositions, ['rotary_emb_base']);

  const attentionBias = r.bool('attention_bias', true); // query_key_value and dense
  return {
    arch: 'gpt_neox',
    modelType: 'gpt_neox',
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    numLayers: r.int('num_hidden_layers'),
    numHeads,
    numKvHeads: numHeads,
    headDim,
    intermediateSize: r.int('intermediate_size'),
    maxPositions: ropeMaxPositions(maxPositions, rope.scaling),
    norm: 'layernorm',
    normEps: r.numberIn('layer_norm_eps', 0, 1, 1e-5),
    activation: r.oneOf('hidden_act', ACTIVATIONS, 'gelu'),
    position: 'rope',
    rope: { theta: rope.theta, rotaryDim, scaling: rope.scaling },
    parallelResidual: r.bool('use_parallel_residual', true),
    qkvBias: attentionBias,
    outBias: attentionBias,
    mlpBias: true,
    tiedEmbeddings: r.bool('tie_word_embeddings', false),
    bosTokenId: r.tokenId('bos_token_id', 0),
    eosTokenIds: r.tokenIds('eos_token_id', [2]),
  };
}

/**
 * Every tensor the checkpoint must hold (nn.Linear weights [out, in]). query_key_value's 3d output rows are laid
 * out per head as [head, (q | k | v), head_dim] — transformers views them as [T, H, 3·hd] and chunks the last axis.
 */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  const { vocabSize: V, hiddenSize: d, intermediateSize: I } = cfg;
  const w: ExpectedWeight[] = [{ name: 'gpt_neox.embed_in.weight', shape: [V, d] }];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `gpt_neox.layers.${i}`;
    w.push({ name: `${p}.input_layernorm.weight`, shape: [d] }, { name: `${p}.input_layernorm.bias`, shape: [d] });
    w.push(
      { name: `${p}.post_attention_layernorm.weight`, shape: [d] },
      { name: `${p}.post_attention_layernorm.bias`, shape: [d] },
    );
    w.push({ name: `${p}.attention.query_key_value.weight`, shape: [3 * d, d] });
    if (cfg.qkvBias) w.push({ name: `${p}.attention.query_key_value.bias`, shape: [3 * d] });
    w.push({ name: `${p}.attention.dense.weight`, shape: [d, d] });
    if (cfg.outBias) w.push({ name: `${p}.attention.dense.bias`, shape: [d] });
    w.push(
      { name: `${p}.mlp.dense_h_to_4h.weight`, shape: [I, d] },
      { name: `${p}.mlp.dense_h_to_4h.bias`, shape: [I] },
    );
    w.push(
      { name: `${p}.mlp.dense_4h_to_h.weight`, shape: [d, I] },
      { name: `${p}.mlp.dense_4h_to_h.bias`, shape: [d] },
    );
  }
  w.push(
    { name: 'gpt_neox.final_layer_norm.weight', shape: [d] },
    { name: 'gpt_neox.final_layer_norm.bias', shape: [d] },
  );
  if (!cfg.tiedEmbeddings) w.push({ name: 'embed_out.weight', shape: [V, d] });
  return w;
}

/** The LM head [V, d]: embed_out.weight, or embed_in when tie_word_embeddings is set. */
export function headWeightName(cfg: DecoderConfig): string {
  return cfg.tiedEmbeddings ? 'gpt_neox.embed_in.weight' : 'embed_out.weight';
}
