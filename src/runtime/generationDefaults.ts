/**
 * A model's own decoding defaults, from its generation_config.json, as generate() settings. The order every
 * entry point applies: lmsteer's defaults (GENERATION_DEFAULTS) < the model's generation_config.json < the
 * caller's flags, request fields or options.
 *
 * Read: do_sample (false → greedy; true → sample with the file's temperature/top_k/top_p), temperature, top_k,
 * top_p, max_new_tokens, repetition_penalty. Unlike transformers, a file that does not say do_sample keeps
 * lmsteer's sampling default (plain sampling, temperature 1): most generation_config.json files only list
 * their special tokens, and a steer's effect is studied on samples. Decoding settings lmsteer does not
 * implement (beam search, n-gram blocking, …) are reported, never silently dropped.
 */
import { LmSteerError } from '../util/errors.js';
import type { SampleSettings } from './generate.js';

/** lmsteer's defaults where neither the model nor the caller says otherwise. */
export const GENERATION_DEFAULTS = {
  maxNewTokens: 64,
  temperature: 1,
  topK: 0,
  topP: 1,
  repetitionPenalty: 1,
} as const satisfies SampleSettings;

/** Keys that only name tokens or lengths lmsteer takes from elsewhere (config.json, the tokenizer). */
const IGNORED = new Set([
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'decoder_start_token_id',
  'transformers_version',
  '_from_model_config',
  'max_length', // a total length; lmsteer bounds new tokens (max_new_tokens) and the model's positions
  'use_cache',
  'return_dict_in_generate',
  'output_scores',
  'output_attentions',
  'output_hidden_states',
]);

/** Settings that change decoding and that lmsteer does not implement, with the value that means "off". */
const UNSUPPORTED_OFF: Record<string, unknown> = {
  num_beams: 1,
  num_beam_groups: 1,
  no_repeat_ngram_size: 0,
  typical_p: 1,
  epsilon_cutoff: 0,
  eta_cutoff: 0,
  diversity_penalty: 0,
  penalty_alpha: null,
  min_p: null,
  encoder_repetition_penalty: 1,
  length_penalty: 1,
};

export interface ModelGenerationDefaults {
  settings: SampleSettings;
  /** One line per setting taken from the file, and per setting lmsteer cannot honour. */
  notes: string[];
}

/** The settings `generationConfig` asks for (absent file: none). `source` names the file in messages. */
export function generationDefaults(
  generationConfig: Record<string, unknown> | undefined,
  source = 'generation_config.json',
): ModelGenerationDefaults {
  const settings: SampleSettings = {};
  const notes: string[] = [];
  if (!generationConfig) return { settings, notes };
  const g = generationConfig;
  const num = (key: string, ok: (v: number) => boolean, rule: string): number | undefined => {
    const v = g[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
      throw new LmSteerError(
        'BAD_FILE',
        `${source}: "${key}" is ${JSON.stringify(v)}; it must be ${rule}`,
        `fix ${source} (or remove the key)`,
      );
    }
    return v;
  };
  const sample = g.do_sample;
  if (sample !== undefined && typeof sample !== 'boolean') {
    throw new LmSteerError('BAD_FILE', `${source}: "do_sample" is ${JSON.stringify(sample)}; it must be true or false`);
  }
  if (sample === false) {
    settings.temperature = 0;
    notes.push('greedy (do_sample false)');
  } else {
    const t = num('temperature', (v) => v >= 0, 'a number ≥ 0');
    const k = num('top_k', (v) => Number.isInteger(v) && v >= 0, 'an integer ≥ 0');
    const p = num('top_p', (v) => v > 0 && v <= 1, 'in (0, 1]');
    if (t !== undefined) settings.temperature = t;
    if (k !== undefined) settings.topK = k;
    else if (sample === true) settings.topK = 50; // transformers' GenerationConfig default, in force when it samples
    if (p !== undefined) settings.topP = p;
    if (sample === true || t !== undefined || k !== undefined || p !== undefined) {
      const topK = settings.topK;
      notes.push(
        `sampling${t !== undefined ? ` temperature ${t}` : ''}${topK ? ` top_k ${topK}` : ''}${p !== undefined && p < 1 ? ` top_p ${p}` : ''}`,
      );
    }
  }
  const n = num('max_new_tokens', (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  if (n !== undefined) ((settings.maxNewTokens = n), notes.push(`max_new_tokens ${n}`));
  const r = num('repetition_penalty', (v) => v > 0 && v <= 100, 'a number in (0, 100]');
  if (r !== undefined && r !== 1) ((settings.repetitionPenalty = r), notes.push(`repetition_penalty ${r}`));
  for (const [key, off] of Object.entries(UNSUPPORTED_OFF)) {
    if (key in g && g[key] !== off && g[key] !== null && g[key] !== undefined) {
      notes.push(`${key} ${JSON.stringify(g[key])} is not implemented by lmsteer: decoding ignores it`);
    }
  }
  for (const key of Object.keys(g)) {
    if (IGNORED.has(key) || key in UNSUPPORTED_OFF) continue;
    if (!['do_sample', 'temperature', 'top_k', 'top_p', 'max_new_tokens', 'repetition_penalty'].includes(key)) {
      notes.push(`${key} is not read by lmsteer`);
    }
  }
  return { settings, notes };
}
