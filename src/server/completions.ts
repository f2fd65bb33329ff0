/**
 * POST /v1/completions and POST /v1/chat/completions: an OpenAI request → a scheduler job → a JSON response
 * or an SSE stream of chunks. Defaults follow OpenAI: temperature 1, top_p 1, n 1; max_tokens 16 for
 * completions and "as many as fit" (up to --max-tokens-limit) for chat. Without a `seed` a random one is drawn,
 * so repeated requests differ, as with OpenAI; with one, the text is the same as `generate()` with that seed.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { ChatTemplate } from './chatTemplate.js';
import type { Metrics } from './metrics.js';
import type { PromptEncoder } from './promptEncoder.js';
import {
  ApiError,
  chatChunk,
  ChatRequestSchema,
  chatResponse,
  completionChunk,
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
  modelId: string;
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
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  steer?: Record<string, number> | null;
};

function checkModel(ctx: GenerationContext, model: string | null | undefined): void {
  if (model != null && model !== ctx.modelId) {
    throw new ApiError(
      404,
      'NOT_FOUND',
      `model "${model}" is not served here`,
      `this server serves "${ctx.modelId}" (GET /v1/models); use that name or leave "model" out`,
      'model',
    );
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
  return {
    prompts,
    n: body.n ?? 1,
    sampling: { temperature: body.temperature ?? 1, topP: body.top_p ?? 1, topK: Math.max(0, body.top_k ?? 0) },
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
    model: ctx.modelId,
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

/** Run a job and answer; returns the HTTP status sent (for metrics). */
async function run(
  ctx: GenerationContext,
  res: ServerResponse,
  spec: JobSpec,
  stream: boolean,
  includeUsage: boolean,
  m: ResponseMeta,
  shapes: {
    start?: (sse: SseWriter) => void;
    chunk: (choice: number, delta: string) => unknown;
    finish: (choice: number, f: JobResult['choices'][number]['finishReason']) => unknown;
    object: 'text_completion' | 'chat.completion.chunk';
    full: (r: JobResult) => unknown;
  },
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
      onToken: (choice, delta) => {
        onFirst();
        if (delta) sse.send({ ...(shapes.chunk(choice, delta) as object), ...extra });
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
  const p = req.prompt;
  const prompts: number[][] = [];
  if (typeof p === 'string') prompts.push(await encodePrompt(ctx, p, true, 'prompt'));
  else if (typeof p[0] === 'string')
    for (const [i, s] of (p as string[]).entries()) prompts.push(await encodePrompt(ctx, s, true, `prompt[${i}]`));
  else if (typeof p[0] === 'number') prompts.push(p as number[]);
  else prompts.push(...(p as number[][]));
  const spec = jobSpec(ctx, req, prompts, req.max_tokens ?? 16, [], abortOnClose(res).signal);
  const m = meta(ctx, 'cmpl');
  return run(ctx, res, spec, !!req.stream, !!req.stream_options?.include_usage, m, {
    object: 'text_completion',
    chunk: (choice, delta) => completionChunk(m, choice, delta, null),
    finish: (choice, f) => completionChunk(m, choice, '', f),
    full: (r) =>
      completionResponse(
        m,
        r.choices.map((c) => ({ text: c.text, finish: c.finishReason })),
        usage(r.promptTokens, r.completionTokens),
      ),
  });
}

export async function handleChat(ctx: GenerationContext, body: unknown, res: ServerResponse): Promise<number> {
  const req = parseBody(ChatRequestSchema, body);
  checkModel(ctx, req.model);
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
  const maxTokens = req.max_completion_tokens ?? req.max_tokens ?? Math.min(ctx.limits.maxTokens, room);
  const spec = jobSpec(ctx, req, [prompt], maxTokens, rendered.stop, abortOnClose(res).signal);
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
    chunk: (choice, delta) => chatChunk(m, choice, { content: delta }, null),
    finish: (choice, f) => chatChunk(m, choice, {}, f),
    full: (r) =>
      chatResponse(
        m,
        r.choices.map((c) => ({ text: c.text, finish: c.finishReason })),
        usage(r.promptTokens, r.completionTokens),
      ),
  });
}
