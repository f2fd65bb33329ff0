/**
 * Tiny random checkpoints for tests: a Hugging Face config.json object and seeded random weights under HF's
 * tensor names. Scales are realistic (weights std 0.1, norm gains near 1, small biases) so logits and attention
 * are far from uniform and a wrong op shows up as a large difference.
 *
 * Kinds cover what the architectures can vary: GQA (llama, mistral, qwen2), q/k/v biases (qwen2), llama's
 * attention_bias + mlp_bias (llama-bias), tied and untied heads, partial rotary (gpt_neox), parallel and
 * sequential residual, each RoPE scaling, GPT-Neo's global/local layers, GPT-J's interleaved partial rotary and
 * biased head, and OPT's pre/post-norm, project_in/out and bias/affine switches.
 */
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { MapWeightStore } from '../../src/formats/weights.js';
import { expectedWeights, parseDecoderConfig } from '../../src/models/registry.js';
import { tensor, type Tensor } from '../../src/util/tensor.js';

export type TinyKind =
  | 'gpt2'
  | 'llama'
  | 'llama-bias'
  | 'mistral'
  | 'qwen2'
  | 'mistral-window' // sliding_window 3 in every layer
  | 'qwen2-window' // use_sliding_window, window 3 from layer 1 on (layer 0 full)
  | 'gpt_neox'
  | 'gpt_neox-sequential'
  | 'llama-rope-scaled' // llama3 scaling (Llama 3.1), every band of it exercised at head_dim 8
  | 'llama-rope-linear'
  | 'llama-rope-yarn'
  | 'gpt_neo' // layer 0 global, layer 1 local with window_size 3
  | 'gptj' // rotary_dim 6 of head_dim 8: partial, interleaved pairs
  | 'opt' // pre-norm, biases, final norm (opt-125m's layout)
  | 'opt-350m' // post-norm, no final norm, word_embed_proj_dim 16 ≠ hidden_size 32 (project_in/out)
  | 'opt-bare' // enable_bias false, layer_norm_elementwise_affine false, _remove_final_layer_norm
  | 'gemma2' // sliding window 3 in layers 0 and 2, attention and final soft-capping that bite, head_dim ≠ d/heads
  | 'gemma3' // gemma3_text: q/k norms, local RoPE in sliding layers 0 and 1 (pattern 3), linear-scaled global RoPE
  | 'qwen3' // q/k norms, head_dim ≠ d/heads, tied
  | 'phi3' // fused qkv and gate_up, sliding window 5 in every layer, partial rotary (factor 0.5)
  | 'phi3-longrope'; // longrope, original context 16: the short factors below 16 tokens, the long ones beyond

export interface TinyOptions {
  seed?: number;
  vocab?: number;
  d?: number;
  layers?: number;
  heads?: number;
  /** llama family only (GQA); default heads/2. */
  kvHeads?: number;
  /** Default: gpt2 and qwen2 tied, the others untied (as their real checkpoints usually are). */
  tied?: boolean;
  maxPositions?: number;
  /** gpt2 only: name tensors `transformer.…` as GPT2LMHeadModel.save_pretrained does. */
  transformerPrefix?: boolean;
  /** gpt_neo, gptj, opt: name tensors as the bare base model saves them (no `transformer.` / `model.` prefix). */
  bareNames?: boolean;
  /** config.json's activation (`hidden_act`; GPT-2's `activation_function`) instead of the family's default. */
  hiddenAct?: string;
}

export interface TinyCheckpoint {
  config: Record<string, unknown>;
  weights: MapWeightStore;
}

function llamaConfig(
  kind: TinyKind,
  o: Required<Omit<TinyOptions, 'tied' | 'transformerPrefix' | 'bareNames' | 'seed' | 'hiddenAct'>>,
  tied: boolean,
): Record<string, unknown> {
  const base: Record<string, unknown> = {
    model_type: kind.startsWith('mistral') || kind.startsWith('qwen2') ? kind.split('-')[0] : 'llama',
    vocab_size: o.vocab,
    hidden_size: o.d,
    intermediate_size: Math.round((3 * o.d) / 2), // ≠ 4d, so a mix-up of the two shows
    num_hidden_layers: o.layers,
    num_attention_heads: o.heads,
    num_key_value_heads: o.kvHeads,
    max_position_embeddings: o.maxPositions,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: tied,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  if (kind === 'mistral') base.sliding_window = 4096; // wider than max_position_embeddings: no effect
  if (kind === 'mistral-window') base.sliding_window = 3;
  if (kind === 'qwen2-window')
    Object.assign(base, { use_sliding_window: true, sliding_window: 3, max_window_layers: 1 });
  if (kind === 'llama-bias') Object.assign(base, { attention_bias: true, mlp_bias: true });
  const rope: Partial<Record<TinyKind, Record<string, unknown>>> = {
    'llama-rope-scaled': {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
    'llama-rope-linear': { type: 'linear', factor: 2 },
    'llama-rope-yarn': { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32 },
  };
  if (rope[kind]) base.rope_scaling = rope[kind];
  return base;
}

/** The families of issue #12 (gemma2, gemma3_text, qwen3, phi3) with HF's config keys. */
function familyConfig(
  kind: TinyKind,
  o: Required<Omit<TinyOptions, 'tied' | 'transformerPrefix' | 'bareNames' | 'seed' | 'hiddenAct'>>,
  tied: boolean | undefined,
): Record<string, unknown> {
  const sizes = {
    vocab_size: o.vocab,
    hidden_size: o.d,
    intermediate_size: Math.round((3 * o.d) / 2),
    num_hidden_layers: o.layers,
    num_attention_heads: o.heads,
    num_key_value_heads: o.kvHeads,
    max_position_embeddings: o.maxPositions,
  };
  switch (kind) {
    case 'gemma2':
      return {
        model_type: 'gemma2',
        ...sizes,
        num_hidden_layers: Math.max(o.layers, 3),
        head_dim: 16,
        hidden_activation: 'gelu_pytorch_tanh',
        rms_norm_eps: 1e-6,
        rope_theta: 10000,
        query_pre_attn_scalar: 24,
        sliding_window: 3,
        attn_logit_softcapping: 2,
        final_logit_softcapping: 3,
        tie_word_embeddings: tied ?? true,
        bos_token_id: 2,
        eos_token_id: 1,
        pad_token_id: 0,
      };
    case 'gemma3':
      return {
        model_type: 'gemma3_text',
        ...sizes,
        num_hidden_layers: Math.max(o.layers, 3),
        head_dim: 16,
        hidden_activation: 'gelu_pytorch_tanh',
        rms_norm_eps: 1e-6,
        rope_theta: 1_000_000,
        rope_local_base_freq: 10000,
        rope_scaling: { rope_type: 'linear', factor: 2 },
        query_pre_attn_scalar: 16,
        sliding_window: 3,
        sliding_window_pattern: 3,
        attn_logit_softcapping: null,
        final_logit_softcapping: null,
        tie_word_embeddings: tied ?? false,
        bos_token_id: 2,
        eos_token_id: [1, 3],
        pad_token_id: 0,
      };
    case 'qwen3':
      return {
        model_type: 'qwen3',
        ...sizes,
        head_dim: 16,
        hidden_act: 'silu',
        rms_norm_eps: 1e-6,
        rope_theta: 1_000_000,
        attention_bias: false,
        use_sliding_window: false,
        sliding_window: null,
        max_window_layers: o.layers,
        tie_word_embeddings: tied ?? true,
        bos_token_id: 1,
        eos_token_id: 2,
      };
    case 'phi3':
    case 'phi3-longrope': {
      const rot = ((o.d / o.heads) * (kind === 'phi3' ? 0.5 : 1)) / 2; // rotary dims / 2
      return {
        model_type: 'phi3',
        ...sizes,
        hidden_act: 'silu',
        rms_norm_eps: 1e-5,
        rope_theta: 10000,
        original_max_position_embeddings: kind === 'phi3' ? o.maxPositions : 16,
        ...(kind === 'phi3'
          ? { partial_rotary_factor: 0.5, sliding_window: 5, rope_scaling: null }
          : {
              sliding_window: null,
              rope_scaling: {
                type: 'longrope',
                short_factor: Array.from({ length: rot }, (_, i) => 1 + i / rot),
                long_factor: Array.from({ length: rot }, (_, i) => 2 + (3 * i) / rot),
              },
            }),
        tie_word_embeddings: tied ?? false,
        bos_token_id: 1,
        eos_token_id: 2,
        pad_token_id: 2,
      };
    }
    default:
      throw new Error(`internal: ${kind} is not a family kind`);
  }
}

function tinyConfig(kind: TinyKind, opts: TinyOptions): Record<string, unknown> {
  const o = {
    vocab: opts.vocab ?? 64,
    d: opts.d ?? 32,
    layers: opts.layers ?? 2,
    heads: opts.heads ?? (kind.startsWith('gpt_neox') ? 2 : 4),
    kvHeads: 0,
    maxPositions: opts.maxPositions ?? 128,
  };
  o.kvHeads = opts.kvHeads ?? (o.heads % 2 === 0 ? o.heads / 2 : o.heads);
  switch (kind) {
    case 'gpt2':
      return {
        model_type: 'gpt2',
        vocab_size: o.vocab,
        n_embd: o.d,
        n_layer: o.layers,
        n_head: o.heads,
        n_positions: o.maxPositions,
        n_inner: null,
        activation_function: 'gelu_new',
        layer_norm_epsilon: 1e-5,
        tie_word_embeddings: opts.tied ?? true,
        bos_token_id: 0,
        eos_token_id: 0,
      };
    case 'gpt_neox':
    case 'gpt_neox-sequential':
      return {
        model_type: 'gpt_neox',
        vocab_size: o.vocab,
        hidden_size: o.d,
        intermediate_size: 4 * o.d,
        num_hidden_layers: o.layers,
        num_attention_heads: o.heads,
        max_position_embeddings: o.maxPositions,
        rotary_pct: kind === 'gpt_neox' ? 0.25 : 0.5,
        rotary_emb_base: 10000,
        use_parallel_residual: kind === 'gpt_neox',
        hidden_act: 'gelu',
        layer_norm_eps: 1e-5,
        tie_word_embeddings: opts.tied ?? false,
        bos_token_id: 0,
        eos_token_id: 0,
      };
    case 'gpt_neo':
      return {
        model_type: 'gpt_neo',
        vocab_size: o.vocab,
        hidden_size: o.d,
        num_layers: o.layers,
        num_heads: o.heads,
        intermediate_size: null,
        max_position_embeddings: o.maxPositions,
        // global, local, global, …; an odd count ends on a local layer (1 layer: local only)
        attention_types: [
          [['global', 'local'], Math.floor(o.layers / 2)],
          [['local'], o.layers % 2],
        ],
        window_size: 3,
        activation_function: 'gelu_new',
        layer_norm_epsilon: 1e-5,
        tie_word_embeddings: opts.tied ?? true,
        bos_token_id: 0,
        eos_token_id: 0,
      };
    case 'gptj':
      return {
        model_type: 'gptj',
        vocab_size: o.vocab,
        n_embd: o.d,
        n_layer: o.layers,
        n_head: o.heads,
        n_inner: null,
        n_positions: o.maxPositions,
        rotary_dim: 6,
        rotary: true, // in EleutherAI/gpt-j-6B's config.json; transformers does not read it
        activation_function: 'gelu_new',
        layer_norm_epsilon: 1e-5,
        tie_word_embeddings: opts.tied ?? false,
        bos_token_id: 0,
        eos_token_id: 0,
      };
    case 'opt':
    case 'opt-350m':
    case 'opt-bare':
      return {
        model_type: 'opt',
        vocab_size: o.vocab,
        hidden_size: o.d,
        word_embed_proj_dim: kind === 'opt-350m' ? o.d / 2 : o.d,
        num_hidden_layers: o.layers,
        num_attention_heads: o.heads,
        ffn_dim: 3 * o.d,
        max_position_embeddings: o.maxPositions,
        do_layer_norm_before: kind !== 'opt-350m',
        _remove_final_layer_norm: kind === 'opt-bare',
        enable_bias: kind !== 'opt-bare',
        layer_norm_elementwise_affine: kind !== 'opt-bare',
        activation_function: 'relu',
        tie_word_embeddings: opts.tied ?? true,
        pad_token_id: 1,
        bos_token_id: 2,
        eos_token_id: 2,
      };
    case 'gemma2':
    case 'gemma3':
    case 'qwen3':
    case 'phi3':
    case 'phi3-longrope':
      return familyConfig(kind, o, opts.tied);
    default:
      return llamaConfig(kind, o, opts.tied ?? kind === 'qwen2');
  }
}

/** Seeded standard normals (Box–Muller over pure-rand's 53-bit uniforms). */
function normals(seed: number): () => number {
  const rng = xoroshiro128plus(seed);
  return () => {
    const u = 1 - uniformFloat64(rng); // (0, 1]: log(u) is finite
    const v = uniformFloat64(rng);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

const NORM_GAIN = /(norm|ln_\d|ln_f)\.weight$/;

export function tinyCheckpoint(kind: TinyKind, opts: TinyOptions = {}): TinyCheckpoint {
  const config = tinyConfig(kind, opts);
  if (opts.hiddenAct !== undefined) {
    const gptStyle = kind === 'gpt2' || /^(gpt_neo|gptj|opt)($|-)/.test(kind); // not gpt_neox
    config[gptStyle ? 'activation_function' : 'hidden_act'] = opts.hiddenAct;
  }
  const actField =
    kind === 'gpt2' ? 'activation_function' : kind.startsWith('gemma') ? 'hidden_activation' : 'hidden_act';
  if (opts.hiddenAct !== undefined) config[actField] = opts.hiddenAct;
  const cfg = parseDecoderConfig(config, `tiny ${kind}`);
  const randn = normals(opts.seed ?? 0);
  const map = new Map<string, Tensor>();
  const prefix = kind === 'gpt2' && opts.transformerPrefix ? 'transformer.' : '';
  for (const { name, shape } of expectedWeights(cfg)) {
    const [mean, std] = NORM_GAIN.test(name) ? [1, 0.1] : name.endsWith('.bias') ? [0, 0.05] : [0, 0.1];
    const t = tensor(shape);
    for (let i = 0; i < t.data.length; i++) t.data[i] = mean + std * randn();
    const bare = opts.bareNames && !name.startsWith('lm_head.') ? name.replace(/^(transformer|model)\./, '') : name;
    map.set(name === 'lm_head.weight' ? name : prefix + bare, t);
  }
  return { config, weights: new MapWeightStore(map, `tiny ${kind} checkpoint`) };
}
