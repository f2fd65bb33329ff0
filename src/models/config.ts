/**
 * The normalized decoder config every architecture module works from, parsed from a Hugging Face
 * config.json (llama2.c checkpoints are given an equivalent config.json-shaped object on load).
 */
/** The architecture record's name (src/models/registry.ts lists them). */
export type Arch = string;

export interface RopeScaling {
  type: 'linear' | 'llama3' | 'yarn' | 'longrope';
  factor: number;
  // llama3
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
  // yarn
  betaFast?: number;
  betaSlow?: number;
  // longrope (Phi-3 "su"): per-frequency divisors, short up to originalMaxPositions, long beyond; cos/sin scale
  shortFactor?: number[];
  longFactor?: number[];
  attentionFactor?: number;
}

export interface DecoderConfig {
  arch: Arch;
  /** model_type as written in config.json (llama, mistral, qwen2, gpt2, gpt_neox, gpt_neo, gptj, opt). */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  norm: 'layernorm' | 'rmsnorm';
  normEps: number;
  /** MLP activation: gelu_new (tanh approximation, GPT-2), gelu (exact erf, Pythia), silu (SwiGLU, Llama). */
  activation: 'gelu_new' | 'gelu' | 'silu' | 'relu';
  position: 'learned' | 'rope';
  /** Present when position === 'rope'. rotaryDim ≤ headDim (partial rotary in gpt_neox). HF rotate_half layout. */
  rope?: { theta: number; rotaryDim: number; scaling?: RopeScaling };
  /** gpt_neox use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)). */
  parallelResidual: boolean;
  /** Biases on q/k/v projections (qwen2, llama attention_bias, gpt2, gpt_neox). */
  qkvBias: boolean;
  /** Bias on the attention output projection and the MLP (gpt2, gpt_neox; llama mlp_bias). */
  outBias: boolean;
  mlpBias: boolean;
  tiedEmbeddings: boolean;
  /**
   * Mistral/Qwen2 sliding-window attention: in `layers`, query t sees key s only when t − s < size (itself
   * included; transformers' sliding_window_overlay). Absent when no layer has a window narrower than maxPositions.
   */
  slidingWindow?: { size: number; layers: number[] };
  /** Attention score options (Gemma: query_pre_attn_scalar^−½ and attn_logit_softcapping); absent: 1/√head_dim. */
  attention?: { scale?: number; softcap?: number };
  /** Gemma 3: the RoPE of the sliding-attention `layers` (rope_local_base_freq); the other layers use `rope`. */
  localRope?: { theta: number; rotaryDim: number; scaling?: RopeScaling; layers: number[] };
  /** Final logit soft-capping cap·tanh(z/cap) of the (steered) logits (Gemma 2's final_logit_softcapping). */
  finalLogitSoftcap?: number;
  bosTokenId?: number;
  eosTokenIds: number[];
  /**
   * Width of the residual stream when it differs from hiddenSize (OPT-350m: hidden_size 1024, word_embed_proj_dim
   * 512, with project_in/project_out between them). hiddenSize is then the LM head's width — the `hidden` output
   * and the steer's d — and the KV cache is numKvHeads·headDim wide as always. Absent: hiddenSize.
   */
  modelWidth?: number;
  /** Norm after each residual add, x = norm(x + f(x)), instead of before f (OPT do_layer_norm_before false). */
  postNorm?: boolean;
  /** false: no norm between the last layer and the head (OPT-350m, OPT _remove_final_layer_norm). Absent: true. */
  finalNorm?: boolean;
  /** false: LayerNorms without gain and bias (OPT layer_norm_elementwise_affine false). Absent: true. */
  normAffine?: boolean;
}
