/**
 * Reading a Hugging Face config.json and checking a checkpoint against it. Shared by the per-architecture
 * config parsers (<arch>/config.ts): typed fields, the fields several config classes read alike, and the tensor
 * lists of Llama's checkpoint layout; every error names the file and field.
 */
import { LmSteerError } from '../util/errors.js';
import type { WeightStore } from '../formats/weights.js';
import type { DecoderConfig } from './config.js';

const FIX_HINT = 'fix config.json (or re-download the model): it must be the config.json saved with these weights';

/**
 * Typed access to config.json fields. `null` counts as absent: transformers passes it as None, which its config
 * classes replace by the derived default (head_dim, num_key_value_heads, rope_scaling, …).
 */
export class ConfigReader {
  constructor(
    readonly raw: Record<string, unknown>,
    readonly source: string,
    /** Prefix for field names in messages, e.g. "rope_scaling." for a nested object. */
    readonly prefix = '',
  ) {}

  has(field: string): boolean {
    return this.raw[field] !== undefined && this.raw[field] !== null;
  }

  fail(field: string, why: string): never {
    const got = this.has(field) ? ` (got ${JSON.stringify(this.raw[field])})` : '';
    throw new LmSteerError('BAD_FILE', `${this.source}: config field "${this.prefix}${field}" ${why}${got}`, FIX_HINT);
  }

  /** A positive integer; required unless a fallback is given. */
  int(field: string, fallback?: number): number {
    if (!this.has(field)) {
      if (fallback === undefined) this.fail(field, 'is missing; it is required');
      return fallback;
    }
    const v = this.raw[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) this.fail(field, 'must be a positive integer');
    return v;
  }

  /** A finite number > 0; required unless a fallback is given. */
  positive(field: string, fallback?: number): number {
    if (!this.has(field)) {
      if (fallback === undefined) this.fail(field, 'is missing; it is required');
      return fallback;
    }
    const v = this.raw[field];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(field, 'must be a number > 0');
    return v;
  }

  /** A finite number in [lo, hi]. */
  numberIn(field: string, lo: number, hi: number, fallback: number): number {
    if (!this.has(field)) return fallback;
    const v = this.raw[field];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi)
      this.fail(field, `must be a number in [${lo}, ${hi}]`);
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    if (!this.has(field)) return fallback;
    const v = this.raw[field];
    if (typeof v !== 'boolean') this.fail(field, 'must be true or false');
    return v;
  }

  str(field: string, fallback: string): string {
    if (!this.has(field)) return fallback;
    const v = this.raw[field];
    if (typeof v !== 'string') this.fail(field, 'must be a string');
    return v;
  }

  /** A reader over a nested JSON object (e.g. rope_scaling), or undefined when absent. */
  object(field: string): ConfigReader | undefined {
    if (!this.has(field)) return undefined;
    const v = this.raw[field];
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(field, 'must be a JSON object');
    return new ConfigReader(v as Record<string, unknown>, this.source, `${this.prefix}${field}.`);
  }

  /** A token id (integer ≥ 0), or undefined when absent. */
  tokenId(field: string, fallback?: number): number | undefined {
    if (!this.has(field)) return fallback;
    const v = this.raw[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) this.fail(field, 'must be a token id (an integer ≥ 0)');
    return v;
  }

  /** eos_token_id may be one id or a list of ids (llama 3, qwen2 chat models). */
  tokenIds(field: string, fallback: number[]): number[] {
    if (!this.has(field)) return fallback;
    const v = this.raw[field];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0))
      this.fail(field, 'must be a token id or a list of token ids');
    return list as number[];
  }

  /** One of `allowed`, mapped through `map` (aliases such as swish → silu). */
  oneOf<T extends string>(field: string, map: Record<string, T>, fallback: T): T {
    if (!this.has(field)) return fallback;
    const v = this.raw[field];
    if (typeof v !== 'string' || !Object.hasOwn(map, v)) {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${this.source}: config field "${this.prefix}${field}" is ${JSON.stringify(v)}, which lmsteer does not support`,
        `supported values: ${Object.keys(map).join(', ')}`,
      );
    }
    return map[v];
  }
}

/** Coerce the parsed JSON of a config.json into an object, or fail naming the file. */
export function configObject(raw: unknown, source: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new LmSteerError('BAD_FILE', `${source}: config.json must hold a JSON object`, FIX_HINT);
  }
  return raw as Record<string, unknown>;
}

/** A tensor a checkpoint must hold, with the shape config.json implies. */
export interface ExpectedWeight {
  name: string;
  shape: number[];
}

/**
 * Every expected tensor must be present with exactly the expected shape; extra tensors are ignored (old GPT-2 and
 * GPT-NeoX checkpoints carry attention-mask buffers and rotary caches).
 */
export function checkExpectedWeights(expected: ExpectedWeight[], weights: WeightStore): void {
  const hint = 'config.json does not match the weights: use the config.json saved with this checkpoint';
  checkLayerCount(expected, weights, hint);
  for (const { name, shape } of expected) {
    if (!weights.has(name)) {
      throw new LmSteerError(
        'NOT_FOUND',
        `config.json does not match the weights: tensor "${name}" (expected shape [${shape}]) is missing from ${weights.source}`,
        hint,
      );
    }
    const actual = weights.shape(name);
    if (actual.length !== shape.length || actual.some((s, i) => s !== shape[i])) {
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `config.json does not match the weights: tensor "${name}" in ${weights.source} has shape [${actual}], config.json implies [${shape}]`,
        hint,
      );
    }
  }
}

/**
 * A checkpoint with more layers than config.json says would silently run only the first ones: every layer
 * index under a per-layer prefix of the expected names ("model.layers.", "h.", …) must be an expected one.
 */
function checkLayerCount(expected: ExpectedWeight[], weights: WeightStore, hint: string): void {
  const layers = new Map<string, Set<number>>(); // prefix → the layer indices config.json implies
  for (const { name } of expected) {
    const m = /^(.*?\.)(\d+)\./.exec(name);
    if (!m) continue;
    let set = layers.get(m[1]!);
    if (!set) layers.set(m[1]!, (set = new Set()));
    set.add(Number(m[2]));
  }
  if (layers.size === 0) return;
  for (const name of weights.names()) {
    const m = /^(.*?\.)(\d+)\./.exec(name);
    const set = m && layers.get(m[1]!);
    if (set && !set.has(Number(m[2]))) {
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `config.json does not match the weights: ${weights.source} has tensor "${name}" (layer ${m[2]}), but config.json describes ${set.size} layers`,
        hint,
      );
    }
  }
}

/**
 * transformers' ACT2FN names of the MLP activations lmsteer runs (DecoderConfig.activation): gelu_new, its
 * aliases gelu_pytorch_tanh and gelu_fast (the same tanh formula), exact gelu, relu, silu/swish.
 */
export const HF_ACTIVATIONS = {
  gelu_new: 'gelu_new',
  gelu_pytorch_tanh: 'gelu_new',
  gelu_fast: 'gelu_new',
  gelu: 'gelu',
  relu: 'relu',
  silu: 'silu',
  swish: 'silu',
} as const;

/**
 * The hidden_act values of the Llama-style records (llama, qwen3, phi3), silu (their default) first: HF_ACTIVATIONS
 * less gelu_fast.
 */
export const LLAMA_ACTIVATIONS = {
  silu: 'silu',
  swish: 'silu',
  gelu: 'gelu',
  gelu_new: 'gelu_new',
  gelu_pytorch_tanh: 'gelu_new',
  relu: 'relu',
} as const;

/** A config class's attribute_map lets the generic name (hidden_size) stand in for its own (n_embd); the own wins. */
export function intField(r: ConfigReader, own: string, generic: string, fallback: number): number {
  return r.has(own) || !r.has(generic) ? r.int(own, fallback) : r.int(generic);
}

/**
 * num_key_value_heads: absent → `absent` (the config class's default), null → the query heads (transformers'
 * fallback); each KV head serves a whole group of query heads, so it must divide them.
 */
export function kvHeads(r: ConfigReader, numHeads: number, absent: number): number {
  const n = r.int('num_key_value_heads', 'num_key_value_heads' in r.raw ? numHeads : absent);
  if (numHeads % n !== 0) r.fail('num_key_value_heads', `must divide num_attention_heads (${numHeads})`);
  return n;
}

/** head_dim, or hidden_size / num_attention_heads when absent (LlamaConfig, Phi3Config), which must then divide. */
export function headDimOr(r: ConfigReader, hiddenSize: number, numHeads: number): number {
  if (!r.has('head_dim') && hiddenSize % numHeads !== 0)
    r.fail('num_attention_heads', `must divide hidden_size (${hiddenSize}) when head_dim is absent`);
  return r.int('head_dim', hiddenSize / numHeads);
}

/**
 * layer_types (transformers ≥ 4.53 writes it): for each layer, whether it is a sliding-window one. Absent:
 * undefined, and the config's older fields decide.
 */
export function slidingLayerTypes(r: ConfigReader, numLayers: number): boolean[] | undefined {
  if (!r.has('layer_types')) return undefined;
  const types = r.raw.layer_types;
  if (
    !Array.isArray(types) ||
    types.length !== numLayers ||
    !types.every((t) => t === 'sliding_attention' || t === 'full_attention')
  ) {
    r.fail('layer_types', `must list "sliding_attention" or "full_attention" for each of the ${numLayers} layers`);
  }
  return types.map((t) => t === 'sliding_attention');
}

/**
 * The tensors of a checkpoint in Llama's layout (Llama, Qwen3, Phi-3, Gemma; nn.Linear weights [out, in]):
 * model.embed_tokens [V, d], each layer's tensors under `model.layers.{i}` as `layer` lists them, model.norm [d],
 * and lm_head [V, d] unless tied (tied checkpoints saved by transformers carry no lm_head.weight).
 */
export function llamaLayoutWeights(cfg: DecoderConfig, layer: (p: string) => ExpectedWeight[]): ExpectedWeight[] {
  const { vocabSize: V, hiddenSize: d } = cfg;
  const w: ExpectedWeight[] = [{ name: 'model.embed_tokens.weight', shape: [V, d] }];
  for (let i = 0; i < cfg.numLayers; i++) w.push(...layer(`model.layers.${i}`));
  w.push({ name: 'model.norm.weight', shape: [d] });
  if (!cfg.tiedEmbeddings) w.push({ name: 'lm_head.weight', shape: [V, d] });
  return w;
}

/** The LM head [V, d] of a Llama-layout checkpoint: lm_head.weight, or the token embedding when tied. */
export function llamaLayoutHead(cfg: DecoderConfig): string {
  return cfg.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
}

/**
 * `${p}.self_attn`'s q_proj [H·hd, d], k_proj and v_proj [kvH·hd, d], o_proj [d, H·hd], then their biases when
 * attention_bias puts them on all four (Qwen3, Gemma).
 */
export function qkvoWeights(p: string, cfg: DecoderConfig): ExpectedWeight[] {
  const { hiddenSize: d, numHeads: H, numKvHeads: kvH, headDim: hd } = cfg;
  const a = `${p}.self_attn`;
  const w: ExpectedWeight[] = [
    { name: `${a}.q_proj.weight`, shape: [H * hd, d] },
    { name: `${a}.k_proj.weight`, shape: [kvH * hd, d] },
    { name: `${a}.v_proj.weight`, shape: [kvH * hd, d] },
    { name: `${a}.o_proj.weight`, shape: [d, H * hd] },
  ];
  if (cfg.qkvBias) {
    w.push({ name: `${a}.q_proj.bias`, shape: [H * hd] });
    w.push({ name: `${a}.k_proj.bias`, shape: [kvH * hd] });
    w.push({ name: `${a}.v_proj.bias`, shape: [kvH * hd] });
    w.push({ name: `${a}.o_proj.bias`, shape: [d] });
  }
  return w;
}

/** `${p}.mlp`'s gate_proj and up_proj [I, d], down_proj [d, I], then their biases with cfg.mlpBias (Llama). */
export function gatedMlpWeights(p: string, cfg: DecoderConfig): ExpectedWeight[] {
  const { hiddenSize: d, intermediateSize: I } = cfg;
  const m = `${p}.mlp`;
  const w: ExpectedWeight[] = [
    { name: `${m}.gate_proj.weight`, shape: [I, d] },
    { name: `${m}.up_proj.weight`, shape: [I, d] },
    { name: `${m}.down_proj.weight`, shape: [d, I] },
  ];
  if (cfg.mlpBias) {
    w.push({ name: `${m}.gate_proj.bias`, shape: [I] });
    w.push({ name: `${m}.up_proj.bias`, shape: [I] });
    w.push({ name: `${m}.down_proj.bias`, shape: [d] });
  }
  return w;
}

/**
 * A causal-LM checkpoint names its tensors under the wrapper's prefix (`transformer.h.0…`, `model.decoder.…`);
 * one saved from the bare base model (GPTNeoModel, OPTModel — the original facebook/opt-* files) has no prefix.
 * This view serves the prefixed names either way. `probe` is a prefixed name every checkpoint of the family
 * holds; names in `outside` (lm_head.*) are never prefixed.
 */
export function withPrefix(weights: WeightStore, prefix: string, probe: string, outside: string[]): WeightStore {
  if (weights.has(probe) || !weights.has(probe.slice(prefix.length))) return weights;
  const stored = (name: string) =>
    outside.includes(name) || !name.startsWith(prefix) ? name : name.slice(prefix.length);
  const view: WeightStore = {
    source: weights.source,
    names: () => weights.names().map((n) => (outside.includes(n) ? n : prefix + n)),
    has: (name) => (outside.includes(name) || name.startsWith(prefix)) && weights.has(stored(name)),
    shape: (name) => weights.shape(stored(name)),
    get: (name) => weights.get(stored(name)),
  };
  if (weights.readRows) {
    const readRows = weights.readRows.bind(weights);
    view.readRows = (name, start, count) => readRows(stored(name), start, count);
  }
  if (weights.identity) view.identity = weights.identity.bind(weights);
  return view;
}
