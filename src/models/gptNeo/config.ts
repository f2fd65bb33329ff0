/**
 * config.json → DecoderConfig for GPT-Neo (model_type gpt_neo: EleutherAI/gpt-neo-125M, 1.3B, 2.7B), with
 * GPTNeoConfig's defaults, and the tensors such a checkpoint must hold (GPTNeoForCausalLM's names).
 * Local layers ("local" in attention_types) attend to the previous window_size positions, the query's own
 * included: transformers masks them with tril(1) ^ tril(1, −window_size), i.e. key s is seen iff 0 ≤ t − s <
 * window_size — the contract's sliding window (cfg.slidingWindow) exactly.
 */
import type { WeightStore } from '../../formats/weights.js';
import { LmSteerError } from '../../util/errors.js';
import { MODEL_LIMITS } from '../limits.js';
import type { DecoderConfig } from '../config.js';
import { ConfigReader, HF_ACTIVATIONS, intField, withPrefix, type ExpectedWeight } from '../configFields.js';

const P = 'transformer.';

/**
 * The attention kind of each layer. attention_types is a list of [pattern, repeats] (default [[["global",
 * "local"], 12]]); transformers expands it into attention_layers, and a saved attention_layers list, when present,
 * overrides it (PretrainedConfig sets leftover keys last) — so the two must agree or the file is ambiguous.
 */
function attentionLayers(r: ConfigReader, numLayers: number): ('global' | 'local')[] {
  const types = r.has('attention_types') ? r.raw.attention_types : [[['global', 'local'], 12]];
  const bad = () => r.fail('attention_types', 'must be a list of [["global" | "local", …], count] pairs');
  if (!Array.isArray(types)) bad();
  let total = 0;
  for (const item of types as unknown[]) {
    if (!Array.isArray(item) || item.length !== 2 || !Array.isArray(item[0])) bad();
    const [pattern, count] = item as [unknown[], unknown];
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) bad();
    total += pattern.length * (count as number);
    if (total > MODEL_LIMITS.layers) r.fail('attention_types', `describes more than ${MODEL_LIMITS.layers} layers`);
  }
  const expanded: unknown[] = [];
  for (const [pattern, count] of types as [unknown[], number][])
    for (let i = 0; i < count; i++) expanded.push(...pattern);
  let layers = expanded;
  if (r.has('attention_layers')) {
    const saved = r.raw.attention_layers;
    if (!Array.isArray(saved) || saved.length !== expanded.length || saved.some((t, i) => t !== expanded[i]))
      r.fail('attention_layers', 'disagrees with attention_types; transformers would use attention_layers');
    layers = saved;
  }
  for (const t of layers) {
    if (t !== 'global' && t !== 'local') {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${r.source}: config field "attention_types" names attention ${JSON.stringify(t)}; GPT-Neo has only "global" and "local"`,
        'use the config.json saved with the model',
      );
    }
  }
  if (layers.length !== numLayers)
    r.fail('attention_types', `describes ${layers.length} layers, but num_layers is ${numLayers}`);
  return layers as ('global' | 'local')[];
}

export function parseConfig(raw: Record<string, unknown>, source: string): DecoderConfig {
  const r = new ConfigReader(raw, source);
  const hiddenSize = r.int('hidden_size', 2048);
  const numHeads = intField(r, 'num_heads', 'num_attention_heads', 16);
  if (hiddenSize % numHeads !== 0) r.fail('num_heads', `must divide hidden_size (${hiddenSize})`);
  const numLayers = intField(r, 'num_layers', 'num_hidden_layers', 24);
  const maxPositions = r.int('max_position_embeddings', 2048);
  const kinds = attentionLayers(r, numLayers);
  const windowSize = r.int('window_size', 256);
  const local = kinds.flatMap((k, i) => (k === 'local' ? [i] : []));
  return {
    arch: 'gpt_neo',
    modelType: 'gpt_neo',
    vocabSize: r.int('vocab_size', 50257),
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads: numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize: r.int('intermediate_size', 4 * hiddenSize), // null: 4·hidden_size
    maxPositions,
    norm: 'layernorm',
    normEps: r.numberIn('layer_norm_epsilon', 0, 1, 1e-5),
    activation: r.oneOf('activation_function', HF_ACTIVATIONS, 'gelu_new'),
    position: 'learned',
    parallelResidual: false,
    qkvBias: false,
    outBias: true,
    mlpBias: true,
    tiedEmbeddings: r.bool('tie_word_embeddings', true),
    // A window at least as long as the context changes nothing.
    ...(local.length > 0 && windowSize < maxPositions ? { slidingWindow: { size: windowSize, layers: local } } : {}),
    bosTokenId: r.tokenId('bos_token_id', 50256),
    eosTokenIds: r.tokenIds('eos_token_id', [50256]),
  };
}

/** GPTNeoForCausalLM names tensors `transformer.…`; a GPTNeoModel checkpoint has no prefix. */
export function gptNeoWeights(weights: WeightStore): WeightStore {
  return withPrefix(weights, P, `${P}wte.weight`, ['lm_head.weight']);
}

/** Every tensor the checkpoint must hold (nn.Linear weights [out, in]). */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  const { vocabSize: V, hiddenSize: d, intermediateSize: I } = cfg;
  const w: ExpectedWeight[] = [
    { name: `${P}wte.weight`, shape: [V, d] },
    { name: `${P}wpe.weight`, shape: [cfg.maxPositions, d] },
  ];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `${P}h.${i}`;
    w.push({ name: `${p}.ln_1.weight`, shape: [d] }, { name: `${p}.ln_1.bias`, shape: [d] });
    for (const n of ['q', 'k', 'v']) w.push({ name: `${p}.attn.attention.${n}_proj.weight`, shape: [d, d] });
    w.push(
      { name: `${p}.attn.attention.out_proj.weight`, shape: [d, d] },
      { name: `${p}.attn.attention.out_proj.bias`, shape: [d] },
    );
    w.push({ name: `${p}.ln_2.weight`, shape: [d] }, { name: `${p}.ln_2.bias`, shape: [d] });
    w.push({ name: `${p}.mlp.c_fc.weight`, shape: [I, d] }, { name: `${p}.mlp.c_fc.bias`, shape: [I] });
    w.push({ name: `${p}.mlp.c_proj.weight`, shape: [d, I] }, { name: `${p}.mlp.c_proj.bias`, shape: [d] });
  }
  w.push({ name: `${P}ln_f.weight`, shape: [d] }, { name: `${P}ln_f.bias`, shape: [d] });
  if (!cfg.tiedEmbeddings) w.push({ name: 'lm_head.weight', shape: [V, d] });
  return w;
}

/** The LM head [V, d]: wte (tied, as in every released GPT-Neo) or lm_head.weight. */
export function headWeightName(cfg: DecoderConfig): string {
  return cfg.tiedEmbeddings ? `${P}wte.weight` : 'lm_head.weight';
}
