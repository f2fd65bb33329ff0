/**
 * POST /v1/completions and POST /v1/chat/completions: an OpenAI request → a scheduler job → a JSON response
 * or an SSE stream of chunks. Defaults: the model's generation_config.json (temperature, top_k, top_p,
 * repetition_penalty, max_new_tokens) where it says, else OpenAI's: temperature 1, top_p 1, n 1, max_tokens 16
 * for completions and "as many as fit" (up to --max-tokens-limit) for chat; request fields win. Without a `seed`
 * a random one is drawn, so repeated requests differ, as with OpenAI; with one, the text is the same as
 * `generate()` with that seed.
 *
 * Log-probabilities: chosen tokens' come from the rows as they are sampled (row.ts); completions' `echo` with
 * `logprobs` adds the prompt's, from one full forward pass (Scheduler.promptLogprobs). `max_tokens: 0` with
 * `echo` returns the prompt and its log-probabilities only (lm-eval-harness's loglikelihood requests).
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { SampleSettings } from '../runtime/generate.js';
import type { TokenLogprob } from '../runtime/sampling.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { ChatTemplate } from './chatTemplate.js';
import type { Metrics } from './metrics.js';
import type { PromptEncoder } from './promptEncoder.js';
import {
  ApiError,
  chatChunk,
  chatLogprobContent,
  ChatRequestSchema,
  chatResponse,
  completionChunk,
  completionLogprobs,
  CompletionRequestSchema,
  completionResponse,
  errorBody,
  messageText,
  parseBody,
  statusOf,
  usage,
  usageChunk,
  type ResponseMeta,
} from './openai.js';
import type { JobResult, JobSpec, Scheduler } from './scheduler.js';
import { SseWriter } from './sse.js';

export interface GenerationContext {
  /** The names requests may give as `model` (--served-model-name; default the model as given); the first is reported. */
  modelNames: string[];
  /** The model's generation_config.json defaults, under request fields. */
  defaults: SampleSettings;
  tokenizer: Tokenizer;
  /** Prompt text → ids, bounded and off the decode loop for long prompts. */
  encoder: PromptEncoder;
  scheduler: Scheduler;
  metrics: Metrics;
  chat: ChatTemplate;
  limits: { maxTokens: number; context: number; timeoutMs?: number };
}

/** The request fields both endpoints share, as the scheduler needs them. */
type Common = {
  model?: string | null;
  max_tokens?: number | null;
  min_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  n?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  repetition_penalty?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  steer?: Record<string, number> | null;
};

function checkModel(ctx: GenerationContext, model: string | null | undefined): void {
  if (model != null && !ctx.modelNames.includes(model)) {
    throw new ApiError(
      404,
      'NOT_FOUND',
      `model "${model}" is not served here`,
      `this server serves "${ctx.modelNames[0]}" (GET /v1/models); use that name or leave "model" out`,
      'model',
      'model_not_found',
    );
  }
}

/** Steer values beyond the server's bound are a 400 naming the field (SteerSet's own check would read as a limit). */
function checkSteerValues(ctx: GenerationContext, steer: Record<string, number> | null | undefined): void {
  const max = ctx.scheduler.steers.maxValue;
  for (const [name, v] of Object.entries(steer ?? {})) {
    if (Math.abs(v) > max) {
      throw new ApiError(
        400,
        'BAD_ARGUMENT',
        `"steer.${name}" is ${v}, beyond this server's bound of ±${max}`,
        `give a value within ±${max} (the server's --max-steer-value)`,
        `steer.${name}`,
      );
    }
  }
}

async function encodePrompt(
  ctx: GenerationContext,
  text: string,
  addSpecialTokens: boolean,
  where: string,
): Promise<number[]> {
  const ids = await ctx.encoder.encode(text, addSpecialTokens, where);
  if (ids.length === 0)
    throw new ApiError(400, 'BAD_ARGUMENT', `"${where}" encodes to zero tokens`, 'give some text, or token ids', where);
  return ids;
}

function jobSpec(
  ctx: GenerationContext,
  body: Common,
  prompts: number[][],
  maxTokens: number,
  extraStop: string[],
  signal: AbortSignal,
): JobSpec {
  const { limits } = ctx;
  if (maxTokens > limits.maxTokens) {
    throw new ApiError(
      400,
      'LIMIT',
      `max_tokens ${maxTokens} is above this server's limit of ${limits.maxTokens}`,
      `ask for at most ${limits.maxTokens} tokens (the server's --max-tokens-limit)`,
      'max_tokens',
    );
  }
  const minTokens = body.min_tokens ?? 0;
  if (minTokens > maxTokens)
    throw new ApiError(
      400,
      'BAD_ARGUMENT',
      `min_tokens ${minTokens} exceeds max_tokens ${maxTokens}`,
      'lower min_tokens',
      'min_tokens',
    );
  for (const id of prompts.flat()) {
    if (id >= ctx.tokenizer.vocabSize) {
      throw new ApiError(
        400,
        'BAD_ARGUMENT',
        `prompt token id ${id} is outside the vocabulary (0..${ctx.tokenizer.vocabSize - 1})`,
        "pass ids from this model's tokenizer",
        'prompt',
      );
    }
  }
  const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  const d = ctx.defaults;
  return {
    prompts,
    n: body.n ?? 1,
    sampling: {
      temperature: body.temperature ?? d.temperature ?? 1,
      topP: body.top_p ?? d.topP ?? 1,
      topK: body.top_k != null ? Math.max(0, body.top_k) : (d.topK ?? 0),
      repetitionPenalty: body.repetition_penalty ?? d.repetitionPenalty ?? 1,
      presencePenalty: body.presence_penalty ?? 0,
      frequencyPenalty: body.frequency_penalty ?? 0,
    },
    maxTokens,
    minTokens,
    stop: [...new Set([...stop, ...extraStop])],
    seed: body.seed ?? randomInt(2 ** 31),
    steer: body.steer ?? {},
    signal,
    timeoutMs: limits.timeoutMs,
  };
}

/** Abort the job when the client goes away before the response is complete. */
function abortOnClose(res: ServerResponse): AbortController {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort(new Error('the client closed the connection'));
  });
  return ac;
}

function meta(ctx: GenerationContext, prefix: string): ResponseMeta {
  return {
    id: `${prefix}-${randomBytes(12).toString('hex')}`,
    created: Math.floor(Date.now() / 1000),
    model: ctx.modelNames[0]!,
    steer: {},
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** A failure after the stream started: an error event, then [DONE] (as vLLM does); before: a plain error. */
function failStream(sse: SseWriter, res: ServerResponse, e: unknown): number {
  const body = errorBody(e);
  if (!sse.started) {
    const status = statusOf(e);
    sendJson(res, status, body);
    return status;
  }
  sse.send(body);
  sse.done();
  return 200;
}

/** What a stream sends for one endpoint (completions or chat), around the shared job runner below. */
interface Shapes {
  object: 'text_completion' | 'chat.completion.chunk';
  /** Once the job is admitted, before any token (chat: the role chunks; completions: echoed prompts). */
  start?: (sse: SseWriter) => void;
  /** A chunk for a new token of `choice`; undefined: nothing to send (empty text, no logprobs asked). */
  chunk: (choice: number, delta: string, tokenId: number, lp?: TokenLogprob) => unknown;
  finish: (choice: number, f: JobResult['choices'][number]['finishReason']) => unknown;
  full: (r: JobResult) => unknown;
}

/** Run a job and answer; returns the HTTP status sent (for metrics). */
async function run(
  ctx: GenerationContext,
  res: ServerResponse,
  spec: JobSpec,
  stream: boolean,
  includeUsage: boolean,
  m: ResponseMeta,
  shapes: Shapes,
): Promise<number> {
  const t0 = performance.now();
  let first = true;
  const onFirst = () => {
    if (first) ctx.metrics.firstToken((performance.now() - t0) / 1000);
    first = false;
  };
  if (!stream) {
    const r = await ctx.scheduler.submit(spec, { onStart: ({ steer }) => (m.steer = steer), onToken: onFirst });
    sendJson(res, 200, shapes.full(r));
    return 200;
  }
  const sse = new SseWriter(res);
  const extra = includeUsage ? { usage: null } : {};
  try {
    const r = await ctx.scheduler.submit(spec, {
      onStart: ({ steer }) => {
        m.steer = steer;
        sse.start();
        shapes.start?.(sse);
      },
      onToken: (choice, delta, id, lp) => {
        onFirst();
        const c = shapes.chunk(choice, delta, id, lp);
        if (c) sse.send({ ...(c as object), ...extra });
      },
      onFinish: (choice, result) => sse.send({ ...(shapes.finish(choice, result.finishReason) as object), ...extra }),
    });
    if (includeUsage) sse.send(usageChunk(m, shapes.object, usage(r.promptTokens, r.completionTokens)));
    sse.done();
    return 200;
  } catch (e) {
    return failStream(sse, res, e);
  }
}

export async function handleCompletion(ctx: GenerationContext, body: unknown, res: ServerResponse): Promise<number> {
  const req = parseBody(CompletionRequestSchema, body);
  checkModel(ctx, req.model);
  checkSteerValues(ctx, req.steer);
  const p = req.prompt;
  const prompts: number[][] = [];
  let promptTexts: string[] | undefined; // as given, for echo
  if (typeof p === 'string') {
    prompts.push(await encodePrompt(ctx, p, true, 'prompt'));
    promptTexts = [p];
  } else if (typeof p[0] === 'string') {
    for (const [i, s] of (p as string[]).entries()) prompts.push(await encodePrompt(ctx, s, true, `prompt[${i}]`));
    promptTexts = p as string[];
  } else if (typeof p[0] === 'number') prompts.push(p as number[]);
  else prompts.push(...(p as number[][]));
  const echo = req.echo === true;
  const top = req.logprobs ?? undefined;
  const maxTokens = req.max_tokens ?? Math.min(ctx.defaults.maxNewTokens ?? 16, ctx.limits.maxTokens);
  if (maxTokens === 0 && !echo)
    throw new ApiError(
      400,
      'BAD_ARGUMENT',
      '"max_tokens" is 0 without "echo": the response would be empty',
      'ask for at least 1 token, or set "echo": true for the prompt (and its logprobs) alone',
      'max_tokens',
    );
  const spec = jobSpec(ctx, req, prompts, Math.max(1, maxTokens), [], abortOnClose(res).signal);
  spec.logprobs = top;
  for (const [i, ids] of prompts.entries())
    if (ids.length + maxTokens > ctx.limits.context)
      throw new ApiError(
        400,
        'BAD_ARGUMENT',
        `prompt ${i} has ${ids.length} tokens; with max_tokens ${maxTokens} that exceeds this server's context of ${ctx.limits.context} tokens`,
        `ask for at most ${Math.max(0, ctx.limits.context - ids.length)} tokens, or shorten the prompt`,
        'prompt',
      );
  const tok = (id: number) => ctx.tokenizer.tokenString(id);
  const echoText = prompts.map((ids, i) => (echo ? (promptTexts?.[i] ?? ctx.tokenizer.decode(ids)) : ''));
  const promptLps =
    echo && top !== undefined
      ? await Promise.all(prompts.map((ids) => ctx.scheduler.promptLogprobs(ids, spec.steer, top)))
      : undefined;
  const promptOf = (choice: number) => Math.floor(choice / spec.n);
  /** The logprobs of a choice's echoed prompt (offsets from 0). */
  const echoLogprobs = (choice: number) =>
    promptLps ? completionLogprobs(tok, prompts[promptOf(choice)]!, promptLps[promptOf(choice)]!, 0) : undefined;
  const m = meta(ctx, 'cmpl');

  if (maxTokens === 0) return echoOnly(ctx, res, req, spec, echoText, echoLogprobs, m);

  const offsets = new Array<number>(prompts.length * spec.n).fill(0).map((_, c) => echoText[promptOf(c)]!.length);
  return run(ctx, res, spec, !!req.stream, !!req.stream_options?.include_usage, m, {
    object: 'text_completion',
    start: (sse) => {
      if (!echo) return;
      const extra = req.stream_options?.include_usage ? { usage: null } : {};
      for (let c = 0; c < offsets.length; c++)
        sse.send({ ...completionChunk(m, c, echoText[promptOf(c)]!, null, echoLogprobs(c) ?? null), ...extra });
    },
    chunk: (choice, delta, id, lp) => {
      if (top === undefined) return delta ? completionChunk(m, choice, delta, null) : undefined;
      const lps = completionLogprobs(tok, [id], [lp!], offsets[choice]!);
      offsets[choice]! += lps.tokens[0]!.length;
      return completionChunk(m, choice, delta, null, lps);
    },
    finish: (choice, f) => completionChunk(m, choice, '', f),
    full: (r) =>
      completionResponse(
        m,
        r.choices.map((c, i) => {
          const prefix = echoText[promptOf(i)]!;
          const echoed = echoLogprobs(i);
          const own = c.logprobs && completionLogprobs(tok, c.tokenIds, c.logprobs, prefix.length);
          const logprobs =
            own &&
            (echoed
              ? {
                  tokens: [...echoed.tokens, ...own.tokens],
                  token_logprobs: [...echoed.token_logprobs, ...own.token_logprobs],
                  top_logprobs: [...echoed.top_logprobs, ...own.top_logprobs],
                  text_offset: [...echoed.text_offset, ...own.text_offset],
                }
              : own);
          return { text: prefix + c.text, finish: c.finishReason, logprobs };
        }),
        usage(r.promptTokens, r.completionTokens),
      ),
  });
}

/** `max_tokens: 0` with `echo`: the prompts (and their logprobs) back, nothing generated, no scheduler job. */
function echoOnly(
  ctx: GenerationContext,
  res: ServerResponse,
  req: { stream?: boolean | null; stream_options?: { include_usage?: boolean | null } | null },
  spec: JobSpec,
  echoText: string[],
  echoLogprobs: (choice: number) => ReturnType<typeof completionLogprobs> | undefined,
  m: ResponseMeta,
): number {
  m.steer = ctx.scheduler.steers.resolve(spec.steer).effective;
  const choices = echoText.flatMap((text) => Array.from({ length: spec.n }, () => text));
  const u = usage(
    spec.prompts.reduce((a, p) => a + p.length, 0),
    0,
  );
  if (!req.stream) {
    sendJson(
      res,
      200,
      completionResponse(
        m,
        choices.map((text, c) => ({ text, finish: 'length', logprobs: echoLogprobs(c) })),
        u,
      ),
    );
    return 200;
  }
  const sse = new SseWriter(res);
  const extra = req.stream_options?.include_usage ? { usage: null } : {};
  choices.forEach((text, c) => {
    sse.send({ ...completionChunk(m, c, text, null, echoLogprobs(c) ?? null), ...extra });
    sse.send({ ...completionChunk(m, c, '', 'length'), ...extra });
  });
  if (req.stream_options?.include_usage) sse.send(usageChunk(m, 'text_completion', u));
  sse.done();
  return 200;
}

export async function handleChat(ctx: GenerationContext, body: unknown, res: ServerResponse): Promise<number> {
  const req = parseBody(ChatRequestSchema, body);
  checkModel(ctx, req.model);
  checkSteerValues(ctx, req.steer);
  if (req.top_logprobs != null && req.logprobs !== true)
    throw new ApiError(
      400,
      'BAD_ARGUMENT',
      '"top_logprobs" is set but "logprobs" is not true',
      'set "logprobs": true as well (as the OpenAI API requires)',
      'top_logprobs',
    );
  const rendered = ctx.chat.render(req.messages.map(messageText));
  const prompt = await encodePrompt(ctx, rendered.text, rendered.addSpecialTokens, 'messages');
  const room = ctx.limits.context - prompt.length;
  if (room < 1) {
    throw new ApiError(
      400,
      'BAD_ARGUMENT',
      `the messages take ${prompt.length} tokens; this server's context is ${ctx.limits.context}`,
      'shorten the conversation',
      'messages',
    );
  }
  const maxTokens =
    req.max_completion_tokens ??
    req.max_tokens ??
    Math.min(ctx.defaults.maxNewTokens ?? Infinity, ctx.limits.maxTokens, room);
  const spec = jobSpec(ctx, req, [prompt], maxTokens, rendered.stop, abortOnClose(res).signal);
  if (req.logprobs) spec.logprobs = req.top_logprobs ?? 0;
  const tok = (id: number) => ctx.tokenizer.tokenString(id);
  const m = meta(ctx, 'chatcmpl');
  return run(ctx, res, spec, !!req.stream, !!req.stream_options?.include_usage, m, {
    object: 'chat.completion.chunk',
    start: (sse) => {
      for (let i = 0; i < spec.n; i++)
        sse.send({
          ...chatChunk(m, i, { role: 'assistant', content: '' }, null),
          ...(req.stream_options?.include_usage ? { usage: null } : {}),
        });
    },
    chunk: (choice, delta, id, lp) =>
      lp
        ? chatChunk(m, choice, { content: delta }, null, chatLogprobContent(tok, [id], [lp]))
        : delta
          ? chatChunk(m, choice, { content: delta }, null)
          : undefined,
    finish: (choice, f) => chatChunk(m, choice, {}, f),
    full: (r) =>
      chatResponse(
        m,
        r.choices.map((c) => ({
          text: c.text,
          finish: c.finishReason,
          logprobs: c.logprobs && chatLogprobContent(tok, c.tokenIds, c.logprobs),
        })),
        usage(r.promptTokens, r.completionTokens),
      ),
  });
}
