/**
 * OpenAI API shapes: request bodies (zod, lenient about fields we do not use, strict about ones we would
 * otherwise silently ignore), response and streaming-chunk builders, and errors as OpenAI-style bodies
 * `{"error": {"message", "type", "code", "param"}}` with an HTTP status.
 *
 * Extensions: `top_k` (0 or -1 = off), `min_tokens`, `repetition_penalty` (as vLLM), and `steer`
 * ({"name": value}), echoed in every response.
 *
 * Log-probabilities (completions `logprobs`/`echo`, chat `logprobs`/`top_logprobs`) are those of the model's own
 * next-token distribution, steer included — the raw logits before EOS masking, penalties, temperature and
 * top-k/top-p, as vLLM reports them by default (its `--logprobs-mode raw_logprobs`). Token strings are each
 * token's text as it appears inside decoded text (tokenizer.tokenString); `bytes` are that string's UTF-8.
 */
import { z } from 'zod';
import type { TokenLogprob } from '../runtime/sampling.js';
import type { FinishReason } from '../runtime/stopping.js';
import { STEER_LIMITS } from '../steer/steer.js';
import { LmSteerError, type ErrorCode } from '../util/errors.js';
import { RequestTimeout } from './scheduler.js';

/** Most choices one request may ask for (OpenAI's limit for n). */
export const MAX_N = 128;
/** Most alternatives per token in `logprobs` / `top_logprobs` (OpenAI's chat limit, and vLLM's default --max-logprobs). */
export const MAX_LOGPROBS = 20;

// ---------------------------------------------------------------------------------------------------------
// Errors

/** An LmSteerError with the HTTP status the server answers with (when the code's default does not fit). */
export class ApiError extends LmSteerError {
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
    hint?: string,
    readonly param?: string,
    /** The body's `code` when OpenAI has a specific one (e.g. model_not_found); default: `code` in lower case. */
    readonly apiCode?: string,
  ) {
    super(code, message, hint);
  }
}

const STATUS: Record<ErrorCode, number> = {
  BAD_ARGUMENT: 400,
  BAD_DATA: 400,
  BAD_FILE: 400,
  SHAPE_MISMATCH: 400,
  MODEL_MISMATCH: 400,
  UNSUPPORTED: 400,
  NOT_FOUND: 404,
  LIMIT: 429,
  FORBIDDEN: 403,
  CANCELLED: 503, // a client still listening sees this only when the server shuts down
  OFFLINE: 503,
  NETWORK: 503,
};

export function statusOf(e: unknown): number {
  if (e instanceof ApiError) return e.status;
  if (e instanceof LmSteerError) {
    if (e instanceof RequestTimeout) return 504;
    return STATUS[e.code] ?? 500;
  }
  return 500;
}

function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 504) return 'timeout_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** The OpenAI error body; message and hint together, so clients that show only `message` show both. */
export function errorBody(
  e: unknown,
  status = statusOf(e),
): { error: { message: string; type: string; code: string; param: string | null } } {
  if (e instanceof LmSteerError) {
    const message = e.hint ? `${e.message} (${e.hint})` : e.message;
    return {
      error: {
        message,
        type: errorType(status),
        code: (e instanceof ApiError ? e.apiCode : undefined) ?? e.code.toLowerCase(),
        param: e instanceof ApiError ? (e.param ?? null) : null,
      },
    };
  }
  return {
    error: {
      message: 'internal server error (please report it; details are in the server log)',
      type: 'server_error',
      code: 'internal_error',
      param: null,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Requests

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.number().int().min(min).max(max);
/** Fields a client may send at their "off" value (null, 0, false…); anything else is refused, not ignored. */
const offOnly = <T extends z.ZodType>(schema: T) => schema.nullish();

const common = {
  model: z.string().nullish(),
  max_tokens: int(1).nullish(),
  min_tokens: int(0).nullish(),
  temperature: finite.pipe(z.number().min(0).max(100)).nullish(),
  top_p: finite.pipe(z.number().gt(0).max(1)).nullish(),
  top_k: int(-1).nullish(),
  n: int(1, MAX_N).nullish(),
  seed: int(Number.MIN_SAFE_INTEGER).nullish(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(16)]).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  steer: z
    .record(
      z.string(),
      finite.refine((v) => Math.abs(v) <= STEER_LIMITS.value, `must be within ±${STEER_LIMITS.value}`),
    )
    .nullish(),
  presence_penalty: finite.pipe(z.number().min(-2).max(2)).nullish(),
  frequency_penalty: finite.pipe(z.number().min(-2).max(2)).nullish(),
  repetition_penalty: finite.pipe(z.number().gt(0).max(100)).nullish(),
  logit_bias: offOnly(z.object({}).strict()),
  user: z.string().nullish(),
};

const tokenIds = z.array(int(0)).min(1);
export const CompletionRequestSchema = z.looseObject({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  /** 0 only with echo (the prompt's log-probabilities and nothing generated, as lm-eval-harness asks). */
  max_tokens: int(0).nullish(),
  echo: z.boolean().nullish(),
  logprobs: int(0, MAX_LOGPROBS).nullish(),
  suffix: offOnly(z.literal('')),
  best_of: int(1, 1).nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const message = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(textPart)]).nullish(),
  name: z.string().nullish(),
});
export const ChatRequestSchema = z.looseObject({
  ...common,
  messages: z.array(message).min(1),
  max_completion_tokens: int(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: int(0, MAX_LOGPROBS).nullish(),
  tools: offOnly(z.array(z.unknown()).max(0)),
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

export interface ChatMessage {
  role: string;
  content: string;
}

/** A chat message's content as text (text parts joined; other part types are refused by the schema). */
export function messageText(m: ChatRequest['messages'][number]): ChatMessage {
  const c = m.content;
  return { role: m.role, content: typeof c === 'string' ? c : c ? c.map((p) => p.text).join('') : '' };
}

const HINTS: Record<string, string> = {
  steer: 'steer values are numbers, e.g. {"steer": {"sentiment": 3}}; GET /v1/steers lists the names',
  presence_penalty: 'a number from -2 to 2; 0 turns it off',
  frequency_penalty: 'a number from -2 to 2; 0 turns it off',
  repetition_penalty: 'a number in (0, 100]; 1 turns it off',
  logit_bias: 'logit_bias is not implemented; leave it out',
  echo: 'true or false',
  logprobs: `completions: an integer from 0 to ${MAX_LOGPROBS} (alternatives per token); chat: true or false`,
  top_logprobs: `an integer from 0 to ${MAX_LOGPROBS}, with "logprobs": true`,
  max_tokens: 'an integer ≥ 1 (0 only with "echo": true)',
  suffix: 'suffix (insertion) is not supported',
  best_of: 'best_of is not supported; use n',
  tools: 'tool calls are not supported',
  temperature: 'use 0 for greedy decoding, up to 100',
  top_p: 'a number in (0, 1]; 1 turns it off',
  top_k: 'an integer; 0 or -1 turns it off',
  stop: 'a non-empty string or up to 16 of them',
  prompt: 'a string, an array of strings, an array of token ids, or an array of such arrays',
  messages: 'an array of {"role": "user", "content": "..."}',
};

/** Deepest nesting a request body may have; real requests need 4 (messages[].content[].text). */
export const MAX_JSON_DEPTH = 32;

/**
 * A request body as JSON, refusing (400) what would hurt later: nesting deeper than MAX_JSON_DEPTH (found by
 * one scan before parsing; 100,000 levels overflowed the stack when an error message printed the value) and
 * "__proto__" keys (which validation would otherwise drop without a word).
 */
export function parseJsonBody(text: string): unknown {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH)
        throw new ApiError(
          400,
          'BAD_ARGUMENT',
          `the request body nests deeper than ${MAX_JSON_DEPTH} levels`,
          'send a flat JSON object as the OpenAI API describes',
        );
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  try {
    return JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__') throw new ApiError(400, 'BAD_ARGUMENT', 'the request body has a "__proto__" key');
      return value;
    });
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(
      400,
      'BAD_ARGUMENT',
      `the request body is not valid JSON: ${(e as Error).message.slice(0, 200)}`,
      'send a JSON object (NaN and Infinity are not JSON)',
    );
  }
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

/** Parse a request body or throw a 400 naming the field, the value and what it must be. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(
      400,
      'BAD_ARGUMENT',
      'the request body must be a JSON object',
      'send Content-Type: application/json with an object body',
    );
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  let issue = r.error.issues[0]!;
  // For unions (prompt, stop) report the branch that got furthest.
  while (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const inner = issue.errors.flat().reduce((a, b) => (b.path.length > a.path.length ? b : a));
    if (inner.path.length === 0) break;
    issue = { ...inner, path: [...issue.path, ...inner.path] } as typeof issue;
  }
  const path = issue.path
    .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
    .join('')
    .replace(/^\./, '');
  let got: unknown = body;
  for (const p of issue.path) got = got == null ? undefined : (got as Record<PropertyKey, unknown>)[p as PropertyKey];
  const top = String(issue.path[0] ?? '');
  const what = got === undefined ? `is required` : `is invalid (got ${show(got)}): ${issue.message}`;
  const code: ErrorCode =
    top in HINTS && /^(logit_bias|suffix|best_of|tools)$/.test(top) ? 'UNSUPPORTED' : 'BAD_ARGUMENT';
  throw new ApiError(400, code, `"${path}" ${what}`, HINTS[top], path);
}

// ---------------------------------------------------------------------------------------------------------
// Responses

export type OpenAiFinish = 'stop' | 'length';
/** EOS and a matched stop string are both "stop" to OpenAI clients. */
export function openAiFinish(f: FinishReason): OpenAiFinish {
  return f === 'length' ? 'length' : 'stop';
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(promptTokens: number, completionTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
  steer: Record<string, number>;
}

// ---------------------------------------------------------------------------------------------------------
// Log-probabilities

/** Completions' `logprobs` object (OpenAI's legacy shape, as vLLM fills it). */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  /** The alternatives by token string, the chosen token always included (so up to logprobs + 1 entries). */
  top_logprobs: (Record<string, number> | null)[];
  /** Where each token starts in the choice's text. */
  text_offset: number[];
}

/**
 * Completions logprobs for tokens `ids` with their log-probabilities (null: the prompt's first token), the first
 * token starting at character `offset` of the choice's text.
 */
export function completionLogprobs(
  tokenString: (id: number) => string,
  ids: readonly number[],
  lps: readonly (TokenLogprob | null)[],
  offset: number,
): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  ids.forEach((id, i) => {
    const tok = tokenString(id);
    const lp = lps[i] ?? null;
    out.tokens.push(tok);
    out.text_offset.push(offset);
    offset += tok.length;
    out.token_logprobs.push(lp && lp.logprob);
    if (!lp) return void out.top_logprobs.push(null);
    const top: Record<string, number> = Object.create(null);
    for (const t of lp.top) {
      const s = tokenString(t.id);
      if (!(s in top)) top[s] = t.logprob; // two ids with one string: the likelier (listed first) stays
    }
    if (!(tok in top)) top[tok] = lp.logprob;
    out.top_logprobs.push({ ...top });
  });
  return out;
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

const utf8 = new TextEncoder();
/** Chat's `logprobs.content` entries for tokens `ids`. */
export function chatLogprobContent(
  tokenString: (id: number) => string,
  ids: readonly number[],
  lps: readonly TokenLogprob[],
): ChatTokenLogprob[] {
  const entry = (id: number, logprob: number) => {
    const token = tokenString(id);
    return { token, logprob, bytes: Array.from(utf8.encode(token)) };
  };
  return ids.map((id, i) => ({
    ...entry(id, lps[i]!.logprob),
    top_logprobs: lps[i]!.top.map((t) => entry(t.id, t.logprob)),
  }));
}

// ---------------------------------------------------------------------------------------------------------

export interface CompletionChoice {
  text: string;
  finish: FinishReason;
  logprobs?: CompletionLogprobs;
}

/**
 * The envelope of every response and chunk: OpenAI's fields around `choices` (and `usage` where given), then
 * lmsteer's `steer`, the values used. One place, so the four bodies keep one field order.
 */
function envelope<O extends string, C>(meta: ResponseMeta, object: O, choices: C[], usage?: Usage) {
  return {
    id: meta.id,
    object,
    created: meta.created,
    model: meta.model,
    choices,
    ...(usage && { usage }),
    steer: meta.steer,
  };
}

export function completionResponse(meta: ResponseMeta, choices: CompletionChoice[], u: Usage) {
  return envelope(
    meta,
    'text_completion',
    choices.map((c, index) => ({
      index,
      text: c.text,
      logprobs: c.logprobs ?? null,
      finish_reason: openAiFinish(c.finish),
    })),
    u,
  );
}

export function completionChunk(
  meta: ResponseMeta,
  index: number,
  text: string,
  finish: FinishReason | null,
  logprobs: CompletionLogprobs | null = null,
) {
  return envelope(meta, 'text_completion', [{ index, text, logprobs, finish_reason: finish && openAiFinish(finish) }]);
}

export function chatResponse(
  meta: ResponseMeta,
  choices: { text: string; finish: FinishReason; logprobs?: ChatTokenLogprob[] }[],
  u: Usage,
) {
  return envelope(
    meta,
    'chat.completion',
    choices.map((c, index) => ({
      index,
      message: { role: 'assistant' as const, content: c.text },
      logprobs: c.logprobs ? { content: c.logprobs, refusal: null } : null,
      finish_reason: openAiFinish(c.finish),
    })),
    u,
  );
}

export function chatChunk(
  meta: ResponseMeta,
  index: number,
  delta: { role?: 'assistant'; content?: string },
  finish: FinishReason | null,
  logprobs: ChatTokenLogprob[] | null = null,
) {
  return envelope(meta, 'chat.completion.chunk', [
    {
      index,
      delta,
      logprobs: logprobs ? { content: logprobs, refusal: null } : null,
      finish_reason: finish && openAiFinish(finish),
    },
  ]);
}

/** The last chunk when stream_options.include_usage: no choices, the usage. */
export function usageChunk(meta: ResponseMeta, object: 'text_completion' | 'chat.completion.chunk', u: Usage) {
  return envelope(meta, object, [], u);
}
