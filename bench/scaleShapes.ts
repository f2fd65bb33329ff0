/**
 * The real models whose exact shapes the scale benchmark and the quantization probe use: their config.json as
 * published on the hub (keys and values as Hugging Face ships them), and the per-token weight matrices a decode
 * step multiplies by, as lmsteer's llama graph fuses them (q/k/v in one matrix, gate/up in one).
 */

export const SCALE_SHAPES = {
  // Qwen/Qwen2.5-0.5B config.json
  'qwen2.5-0.5b': {
    architectures: ['Qwen2ForCausalLM'],
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151643,
    hidden_act: 'silu',
    hidden_size: 896,
    initializer_range: 0.02,
    intermediate_size: 4864,
    max_position_embeddings: 32768,
    max_window_layers: 24,
    model_type: 'qwen2',
    num_attention_heads: 14,
    num_hidden_layers: 24,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 32768,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    transformers_version: '4.40.1',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: 151936,
  },
  // meta-llama/Llama-3.2-1B config.json
  'llama-3.2-1b': {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 128000,
    eos_token_id: 128001,
    head_dim: 64,
    hidden_act: 'silu',
    hidden_size: 2048,
    initializer_range: 0.02,
    intermediate_size: 8192,
    max_position_embeddings: 131072,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 16,
    num_key_value_heads: 8,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: {
      factor: 32.0,
      high_freq_factor: 4.0,
      low_freq_factor: 1.0,
      original_max_position_embeddings: 8192,
      rope_type: 'llama3',
    },
    rope_theta: 500000.0,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    transformers_version: '4.45.0.dev0',
    use_cache: true,
    vocab_size: 128256,
  },
  // meta-llama/Llama-3.1-8B config.json
  'llama-3.1-8b': {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 128000,
    eos_token_id: 128001,
    hidden_act: 'silu',
    hidden_size: 4096,
    initializer_range: 0.02,
    intermediate_size: 14336,
    max_position_embeddings: 131072,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 32,
    num_key_value_heads: 8,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: {
      factor: 8.0,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
      rope_type: 'llama3',
    },
    rope_theta: 500000.0,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    transformers_version: '4.43.0.dev0',
    use_cache: true,
    vocab_size: 128256,
  },
} as const;

export type ScaleShape = keyof typeof SCALE_SHAPES;
export const SCALE_SHAPE_NAMES = Object.keys(SCALE_SHAPES) as ScaleShape[];

export interface ShapeDims {
  d: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  inter: number;
  vocab: number;
  tied: boolean;
  qkvBias: boolean;
}

export function shapeDims(shape: ScaleShape): ShapeDims {
  const c = SCALE_SHAPES[shape];
  return {
    d: c.hidden_size,
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    kvHeads: c.num_key_value_heads,
    headDim: c.hidden_size / c.num_attention_heads,
    inter: c.intermediate_size,
    vocab: c.vocab_size,
    tied: c.tie_word_embeddings,
    qkvBias: c.model_type === 'qwen2',
  };
}

/** One layer's matrices as MatMul sees them at decode, [N = out, K = in] (q/k/v fused, gate/up fused). */
export function layerMatrices(s: ShapeDims): { name: string; N: number; K: number }[] {
  const kv = s.kvHeads * s.headDim;
  return [
    { name: 'qkv', N: s.heads * s.headDim + 2 * kv, K: s.d },
    { name: 'o', N: s.d, K: s.heads * s.headDim },
    { name: 'gate_up', N: 2 * s.inter, K: s.d },
    { name: 'down', N: s.d, K: s.inter },
  ];
}
