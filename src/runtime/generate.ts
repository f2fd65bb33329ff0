/**
 * Batched generation over the Decoder interface: prompts → rows (one per sample) → the batch engine
 * (engine.ts), at most `maxBatch` rows at a time, rows joining as others finish → per-row sampling, stopping
 * and streaming (row.ts).
 *
 * Reproducibility: sample j of request i draws from the random stream rngStream(seed, i, j) (src/runtime/rng.ts)
 * and nothing else, and the decoder's logits of a row depend on that row's tokens only, so a sample's text is
 * the same whatever else is in its batch. A request that carries its own `seed` uses rngStream(request.seed, 0, j)
 * instead — exactly what it gets when run alone as request 0 — which is how the server batches unrelated
 * requests and still returns each one's own text.
 */
import { z } from 'zod';
import { LmSteerError, check } from '../util/errors.js';
import { expectShape, type Tensor } from '../util/tensor.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Decoder } from './decoder.js';
import { BatchEngine } from './engine.js';
import { GENERATION_DEFAULTS } from './generationDefaults.js';
import { rngStream } from './rng.js';
import type { Row } from './row.js';
import type { FinishReason, StopConfig } from './stopping.js';
import { TextStream } from './textStream.js';

export type { FinishReason } from './stopping.js';

/** Settings that apply to every request unless the request overrides them. */
export interface SampleSettings {
  /** New tokens per sample, ≥ 1 (default 64). */
  maxNewTokens?: number;
  /** EOS is masked until this many new tokens exist (default 0). */
  minNewTokens?: number;
  /** Default 1; 0 = greedy. */
  temperature?: number;
  /** Default 0 = off. */
  topK?: number;
  /** Default 1 = off. */
  topP?: number;
  /** Default 0. */
  seed?: number;
  /** Stop strings, matched on the decoded continuation; the match and what follows are cut (default none). */
  stop?: string[];
  /** Stop a sample when it produces an EOS id (default true). */
  stopAtEos?: boolean;
  /** transformers' repetition_penalty over prompt and new tokens (default 1 = off). */
  repetitionPenalty?: number;
  /** OpenAI's presence_penalty over the new tokens (default 0 = off). */
  presencePenalty?: number;
  /** OpenAI's frequency_penalty over the new tokens (default 0 = off). */
  frequencyPenalty?: number;
}

export interface GenerateOptions extends SampleSettings {
  /** Rows per decoder batch; more rows run in successive batches (default 32). */
  maxBatch?: number;
  /** The model's context length: prompt + maxNewTokens must fit (unchecked when absent). */
  maxPositions?: number;
  /** The packed steer directions shared by all rows (src/steer/pack.ts); each request brings its own scales. */
  steer?: { p1: Tensor; p2t: Tensor };
}

export interface GenerateRequest extends SampleSettings {
  /** Text (encoded with the tokenizer's special tokens, e.g. BOS) or token ids used as they are. */
  prompt: string | { ids: number[] };
  /** Independent samples of this prompt, 1..10000 (default 1). */
  numSamples?: number;
  /** This request's row of `steer_scale`, length K (zeros when absent, i.e. unsteered). Needs opts.steer. */
  steerScale?: Float32Array;
}

export interface GeneratedSample {
  /** The continuation's text (no special tokens), cut before a matched stop string. */
  text: string;
  /** The new tokens, the final EOS included (the tokens of a matched stop string are kept whole). */
  tokenIds: number[];
  finishReason: FinishReason;
  promptTokens: number;
}

export interface GenerateResult {
  promptTokens: number;
  samples: GeneratedSample[];
}

/** Where a row comes from: rows are numbered request by request, sample by sample. */
export interface RowOrigin {
  request: number;
  sample: number;
}

export interface GenerateHooks {
  /** After every new token of a row; the deltas of a row concatenate to its final text. */
  onToken?(row: number, textDelta: string, tokenId: number, origin: RowOrigin): void;
  /** When a row is done (after its last onToken). */
  onFinish?(row: number, sample: GeneratedSample, origin: RowOrigin): void;
  /** Checked between decoder steps: aborting rejects with a CANCELLED error and frees the batch. */
  signal?: AbortSignal;
}

export const MAX_SAMPLES = 10000;
const DEFAULTS = {
  ...GENERATION_DEFAULTS,
  minNewTokens: 0,
  seed: 0,
  stop: [] as string[],
  stopAtEos: true,
  presencePenalty: 0,
  frequencyPenalty: 0,
};
const DEFAULT_MAX_BATCH = 32;

// ---------------------------------------------------------------------------------------------------------
// Validation (zod finds the field; the table below says what it must be and what to do).

const RULES: Record<string, { rule: string; hint: string }> = {
  maxNewTokens: { rule: 'an integer ≥ 1', hint: 'ask for at least one new token, e.g. 64' },
  minNewTokens: { rule: 'an integer ≥ 0', hint: 'use 0 to let EOS end a sample at any time' },
  temperature: { rule: 'a finite number ≥ 0', hint: 'use 0 for greedy decoding, 1 for plain sampling' },
  topK: { rule: 'an integer ≥ 0 (0 = off)', hint: 'use 0 to turn top-k off, or e.g. 50' },
  topP: { rule: 'a number in (0, 1]', hint: 'use 1 to turn top-p off, or e.g. 0.9' },
  seed: { rule: 'a safe integer', hint: 'pass an integer seed such as 0 or 42' },
  stop: { rule: 'an array of non-empty strings', hint: 'e.g. ["\\n"]; an empty stop string would match at once' },
  stopAtEos: { rule: 'true or false', hint: 'pass a boolean' },
  repetitionPenalty: { rule: 'a number in (0, 100]', hint: 'use 1 to turn it off, or e.g. 1.2' },
  presencePenalty: { rule: 'a number from -2 to 2', hint: 'use 0 to turn it off' },
  frequencyPenalty: { rule: 'a number from -2 to 2', hint: 'use 0 to turn it off' },
  maxBatch: { rule: 'an integer ≥ 1', hint: 'e.g. 8; lower it if the model runs out of memory' },
  maxPositions: { rule: 'an integer ≥ 1', hint: "pass the model's max_position_embeddings" },
  numSamples: {
    rule: `an integer from 1 to ${MAX_SAMPLES}`,
    hint: 'ask for at least one sample; split huge jobs into several calls',
  },
  prompt: {
    rule: 'a string or { ids: number[] } with integer token ids ≥ 0',
    hint: 'pass the prompt text, or its token ids',
  },
  steerScale: { rule: 'a Float32Array', hint: 'pass the packed steer values of this request (src/steer/pack.ts)' },
  steer: { rule: '{ p1: float32 Tensor [d, K], p2t: float32 Tensor [K, d] }', hint: 'build it with src/steer/pack.ts' },
};

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.number().int().min(min).max(max);
const settings = {
  maxNewTokens: int(1).optional(),
  minNewTokens: int(0).optional(),
  temperature: z.number().min(0).optional(),
  topK: int(0).optional(),
  topP: z.number().gt(0).max(1).optional(),
  seed: int(Number.MIN_SAFE_INTEGER).optional(),
  stop: z.array(z.string().min(1)).optional(),
  stopAtEos: z.boolean().optional(),
  repetitionPenalty: z.number().gt(0).max(100).optional(),
  presencePenalty: z.number().min(-2).max(2).optional(),
  frequencyPenalty: z.number().min(-2).max(2).optional(),
};
const tensorSchema = z.object({
  dtype: z.literal('float32'),
  shape: z.array(z.number().int()),
  data: z.instanceof(Float32Array),
});
const OptionsSchema = z.strictObject({
  ...settings,
  maxBatch: int(1).optional(),
  maxPositions: int(1).optional(),
  steer: z.object({ p1: tensorSchema, p2t: tensorSchema }).optional(),
});
const RequestSchema = z.strictObject({
  ...settings,
  prompt: z.union([z.string(), z.strictObject({ ids: z.array(int(0)) })]),
  numSamples: int(1, MAX_SAMPLES).optional(),
  steerScale: z.instanceof(Float32Array).optional(),
});

function show(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null || typeof v === 'bigint')
    return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (Array.isArray(v)) return v.length > 8 ? `an array of ${v.length}` : JSON.stringify(v);
  return typeof v === 'object' ? `an object (${(v as object).constructor?.name ?? 'Object'})` : typeof v;
}

type Issue = z.core.$ZodIssue;
/** For a union (prompt: string | { ids }), the branch issue that got furthest into the value, with its full path. */
function innermost(issue: Issue): Issue {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return issue;
  const inner = issue.errors.flat().reduce((a, b) => (b.path.length > a.path.length ? b : a));
  return innermost({ ...inner, path: [...issue.path, ...inner.path] } as Issue);
}

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = innermost(r.error.issues[0]);
  if (issue.code === 'unrecognized_keys') {
    const known = Object.keys((schema as unknown as z.ZodObject).shape).join(', ');
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${where} has unknown field(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`,
      `known fields: ${known}`,
    );
  }
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  let got: unknown = value;
  for (const p of issue.path) got = got == null ? undefined : (got as Record<PropertyKey, unknown>)[p];
  const field = issue.path.find((p): p is string => typeof p === 'string' && p in RULES);
  const rule = field
    ? RULES[field]
    : { rule: `valid (${issue.message})`, hint: 'see GenerateOptions in src/runtime/generate.ts' };
  const what = issue.path.length === 0 ? `${where} must be an object` : `${where}${path} must be ${rule.rule}`;
  throw new LmSteerError('BAD_ARGUMENT', `${what} (got ${show(got)})`, rule.hint);
}

/** A generation row with where it comes from. */
interface PlannedRow extends Row {
  index: number; // flat row number (request by request, sample by sample)
  origin: RowOrigin;
}

interface Plan {
  rows: PlannedRow[];
  promptTokens: number[]; // per request
  numSamples: number[]; // per request
}

type ParsedOptions = Omit<z.infer<typeof OptionsSchema>, 'steer'> & Pick<GenerateOptions, 'steer'>;

function plan(
  decoder: Decoder,
  tokenizer: Tokenizer,
  requests: GenerateRequest[],
  opts: ParsedOptions,
  hooks: GenerateHooks,
): Plan {
  const K = opts.steer ? checkSteer(decoder, opts.steer) : 0;
  const rows: PlannedRow[] = [];
  const promptTokens: number[] = [];
  const numSamples: number[] = [];
  requests.forEach((raw, i) => {
    const where = `requests[${i}]`;
    const req = parseOrThrow(RequestSchema, raw, where);
    const s = { ...DEFAULTS, ...definedOf(opts), ...definedOf(req) };
    const prompt = typeof req.prompt === 'string' ? tokenizer.encode(req.prompt) : [...req.prompt.ids];
    const hintStart = `use a non-empty prompt, or { ids: [${tokenizer.bosId ?? tokenizer.eosIds[0] ?? 0}] } to start from the beginning-of-text token`;
    check(
      prompt.length > 0,
      `${where}.prompt ${typeof req.prompt === 'string' ? `${show(req.prompt)} encodes to` : 'has'} zero tokens`,
      hintStart,
    );
    const badId = prompt.find((id) => id >= decoder.vocabSize);
    check(
      badId === undefined,
      `${where}.prompt has token id ${badId}, beyond the model's vocabulary of ${decoder.vocabSize}`,
      "pass ids from this model's tokenizer",
    );
    check(
      s.minNewTokens <= s.maxNewTokens,
      `${where}: minNewTokens ${s.minNewTokens} exceeds maxNewTokens ${s.maxNewTokens}`,
      'lower minNewTokens or raise maxNewTokens',
    );
    if (opts.maxPositions !== undefined) {
      const room = opts.maxPositions - prompt.length;
      check(
        room >= 1,
        `${where}.prompt has ${prompt.length} tokens, but the model's context (maxPositions) is ${opts.maxPositions} tokens`,
        `shorten the prompt to at most ${opts.maxPositions - 1} tokens`,
        'LIMIT',
      );
      check(
        s.maxNewTokens <= room,
        `${where}: maxNewTokens ${s.maxNewTokens} plus the prompt's ${prompt.length} tokens exceeds the model's context (maxPositions) of ${opts.maxPositions}`,
        `ask for at most ${room} new tokens with this prompt`,
        'LIMIT',
      );
    }
    if (req.steerScale) {
      check(
        opts.steer,
        `${where}.steerScale is given but opts.steer is not`,
        'pass the packed steer (p1, p2t) in opts.steer',
      );
      check(
        req.steerScale.length === K,
        `${where}.steerScale has ${req.steerScale.length} values, but opts.steer has K = ${K} columns`,
        'pack the scales with the same steers as opts.steer',
        'SHAPE_MISMATCH',
      );
    }
    const n = req.numSamples ?? 1;
    const stop: StopConfig = {
      eosIds: tokenizer.eosIds,
      stopAtEos: s.stopAtEos,
      minNewTokens: s.minNewTokens,
      maxNewTokens: s.maxNewTokens,
    };
    for (let j = 0; j < n; j++) {
      const origin = { request: i, sample: j };
      const row: PlannedRow = {
        index: rows.length,
        origin,
        prompt,
        sampling: {
          temperature: s.temperature,
          topK: s.topK,
          topP: s.topP,
          repetitionPenalty: s.repetitionPenalty,
          presencePenalty: s.presencePenalty,
          frequencyPenalty: s.frequencyPenalty,
        },
        stop,
        rng: req.seed !== undefined ? rngStream(req.seed, 0, j) : rngStream(s.seed, i, j),
        stream: new TextStream(tokenizer, { context: prompt, stop: s.stop }),
        scale: req.steerScale,
        tokens: [],
        label: `request ${i} sample ${j}`,
        events: {
          token: (delta, id) => hooks.onToken?.(row.index, delta, id, origin),
          finish: () => hooks.onFinish?.(row.index, toSample(row), origin),
        },
      };
      rows.push(row);
    }
    promptTokens.push(prompt.length);
    numSamples.push(n);
  });
  return { rows, promptTokens, numSamples };
}

/** The fields of `o` that are not undefined, so `{ ...defaults, ...definedOf(o) }` keeps defaults for them. */
export function definedOf<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function checkSteer(decoder: Decoder, steer: { p1: Tensor; p2t: Tensor }): number {
  const d = decoder.hiddenSize;
  expectShape('opts.steer.p1', steer.p1, [d, -1]);
  const K = steer.p1.shape[1];
  expectShape('opts.steer.p2t', steer.p2t, [K, d]);
  check(
    K >= 1,
    `opts.steer.p1 has K = 0 columns`,
    'an unsteered run passes no steer (or K = 1 with zeros)',
    'SHAPE_MISMATCH',
  );
  for (const [name, t] of [
    ['p1', steer.p1],
    ['p2t', steer.p2t],
  ] as const) {
    check(
      t.data.length === d * K,
      `opts.steer.${name} has ${t.data.length} values for shape [${t.shape}]`,
      'build it with src/steer/pack.ts',
      'SHAPE_MISMATCH',
    );
  }
  return K;
}

function cancelled(signal: AbortSignal, steps: number): LmSteerError {
  const why = signal.reason instanceof Error ? `: ${signal.reason.message}` : '';
  return new LmSteerError(
    'CANCELLED',
    `generation was cancelled after ${steps} decoder step(s)${why}`,
    'the caller aborted it; nothing was returned',
    {
      cause: signal.reason,
    },
  );
}

// ---------------------------------------------------------------------------------------------------------

/** Generate continuations for every sample of every request. Results are in request order, samples in order. */
export async function generate(
  decoder: Decoder,
  tokenizer: Tokenizer,
  requests: GenerateRequest[],
  opts: GenerateOptions = {},
  hooks: GenerateHooks = {},
): Promise<GenerateResult[]> {
  check(
    Array.isArray(requests),
    `requests must be an array of requests (got ${show(requests)})`,
    'pass [{ prompt: "..." }]',
  );
  // The caller's own steer tensors go to the decoder (zod returns copies of objects; a decoder may key on identity).
  const o = { ...parseOrThrow(OptionsSchema, opts, 'opts'), steer: opts.steer };
  const { rows, promptTokens, numSamples } = plan(decoder, tokenizer, requests, o, hooks);
  const { signal } = hooks;
  let failed: LmSteerError | undefined;
  for (const r of rows) r.events.fail = (e) => (failed ??= e);

  // Rows of similar prompt length join together, and n samples of one prompt side by side (prefilled once);
  // the order does not change any output.
  const queue = [...rows].sort((a, b) => a.prompt.length - b.prompt.length || a.index - b.index);
  if (signal?.aborted) throw cancelled(signal, 0);
  // No more slots than rows: every slot's KV cache is allocated (and zero-filled) at each capacity it grows to.
  const maxRows = Math.min(o.maxBatch ?? DEFAULT_MAX_BATCH, rows.length);
  const engine = new BatchEngine(decoder, { maxRows, steer: o.steer });
  let steps = 0;
  try {
    while (queue.length > 0 || engine.size > 0) {
      if (signal?.aborted) throw cancelled(signal, steps);
      if (engine.free > 0 && queue.length > 0) await engine.join(queue.splice(0, engine.free));
      else {
        await engine.step();
        steps++;
      }
      if (failed) throw failed;
    }
    if (signal?.aborted) throw cancelled(signal, steps);
  } finally {
    engine.dispose();
  }

  const results: GenerateResult[] = promptTokens.map((n) => ({ promptTokens: n, samples: [] }));
  for (const r of rows) results[r.origin.request]!.samples.push(toSample(r));
  for (let i = 0; i < results.length; i++) {
    if (results[i]!.samples.length !== numSamples[i]) throw new Error('internal: lost a row');
  }
  return results;
}

function toSample(r: PlannedRow): GeneratedSample {
  if (!r.finish) throw new Error('internal: row left unfinished');
  return { text: r.stream.text, tokenIds: r.tokens, finishReason: r.finish, promptTokens: r.prompt.length };
}
