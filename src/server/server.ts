/**
 * `startServer`: a loaded model + steers → a listening HTTP server (routes.ts) over one continuous-batching
 * scheduler (scheduler.ts). Used by `lmsteer serve` and by the tests (port 0).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { generationDefaults } from '../runtime/generationDefaults.js';
import type { LoadedModel } from '../runtime/loadModel.js';
import { LmSteerError } from '../util/errors.js';
import { fallbackTemplate, type ChatTemplate } from './chatTemplate.js';
import { accessPolicy, isLoopbackHost } from './access.js';
import { createLens, type Lens } from './lens.js';
import { Metrics } from './metrics.js';
import { PromptEncoder } from './promptEncoder.js';
import { createHandler } from './routes.js';
import { Scheduler } from './scheduler.js';
import type { SteerSet } from '../steer/steerSet.js';

export interface ServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Rows decoded together (default 16). */
  maxBatch?: number;
  /** Tokens of context per request, prompt + new tokens (default: the model's, at most 2048). */
  context?: number;
  /** Largest max_tokens a request may ask for (default: the context). */
  maxTokensLimit?: number;
  /** Requests waiting for a slot before 429s (default 256). */
  maxQueue?: number;
  /** Per-request limit, queue wait included (default 300000 ms; 0 = none). */
  timeoutMs?: number;
  /** Largest request body (default 1 MiB). */
  maxBodyBytes?: number;
  /** Required as "Authorization: Bearer KEY" on the API; must not be empty when given. */
  apiKey?: string;
  /** Host names accepted besides loopback names and IP literals ('*': any; see access.ts). */
  allowHosts?: string[];
  /** Origins (scheme://host[:port], or "*") whose web pages may call the API: CORS (default none). */
  cors?: string[];
  /** Names requests may give as `model`; the first is reported (default: the model as given, model.id). */
  servedModelNames?: string[];
  /** Folders POST /v1/steers may load from (default none: loading over HTTP is off). */
  allowSteerLoad?: string[];
  /** Listen on a non-loopback address without an API key (refused otherwise). */
  allowUnauthenticated?: boolean;
  /** Time a client has to send its headers / its whole request (defaults 20 s / 60 s). */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  chatTemplate?: ChatTemplate;
  /** The lens endpoints (default: over src/lens/explain.ts; false: off). */
  lens?: Lens | false;
}

export interface RunningServer {
  url: string;
  port: number;
  scheduler: Scheduler;
  metrics: Metrics;
  http: Server;
  /** What the model's generation_config.json set as request defaults (and what it asks that is not honoured). */
  generationNotes: string[];
  /** Stop listening, fail what is still running, wait for the loop to end. Leaves the model open. */
  close(): Promise<void>;
}

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  maxBatch: 16,
  maxContext: 2048,
  maxQueue: 256,
  timeoutMs: 300_000,
  maxBodyBytes: 1 << 20,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 60_000,
  /**
   * `lmsteer serve --max-steer-value`: ten times the range trained steers are used in (±10; the paper sweeps
   * ±5). A network service need not take the 1e4 a library caller may pass (steerSet.ts DEFAULT_MAX_STEER_VALUE).
   */
  maxSteerValue: 100,
};

export async function startServer(model: LoadedModel, steers: SteerSet, o: ServerOptions = {}): Promise<RunningServer> {
  const decoder = model.decoder;
  const host = o.host ?? DEFAULTS.host;
  if (o.apiKey !== undefined && o.apiKey.trim() === '')
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'the API key is empty',
      'give a non-empty key, or none for a loopback server',
    );
  if (!o.apiKey && !isLoopbackHost(host) && !o.allowUnauthenticated) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `--host ${host} exposes the server to the network, and no API key is set`,
      'set LMSTEER_API_KEY or --api-key-file FILE; or pass --allow-unauthenticated if every client on that network may use it',
    );
  }
  const access = accessPolicy({ allowHosts: o.allowHosts, allowOrigins: o.cors, steerRoots: o.allowSteerLoad });
  const names = [...new Set(o.servedModelNames?.length ? o.servedModelNames : [model.id])];
  if (names.some((n) => n.trim() === '' || /\p{Cc}/u.test(n)))
    throw new LmSteerError(
      'BAD_ARGUMENT',
      '--served-model-name must be a non-empty name without control characters',
      'e.g. --served-model-name gpt2-steered',
    );
  const gen = generationDefaults(model.generationConfig, `${model.id} generation_config.json`);
  const context = o.context ?? Math.min(model.cfg.maxPositions, DEFAULTS.maxContext);
  if (context < 2 || context > model.cfg.maxPositions) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `--context ${context} must be from 2 to the model's ${model.cfg.maxPositions} positions`,
      `e.g. --context ${Math.min(model.cfg.maxPositions, 1024)}`,
    );
  }
  const maxTokens = Math.min(o.maxTokensLimit ?? context, context - 1);
  const maxBatch = o.maxBatch ?? DEFAULTS.maxBatch;
  let scheduler: Scheduler | undefined;
  const metrics = new Metrics(() => ({
    queueDepth: scheduler?.queuedJobs ?? 0,
    batchSize: scheduler?.activeRows ?? 0,
    steers: scheduler?.steers.size ?? 0,
  }));
  scheduler = new Scheduler(
    decoder,
    model.tokenizer,
    steers,
    { maxRows: maxBatch, capacity: context, maxQueue: o.maxQueue ?? DEFAULTS.maxQueue },
    { onTokens: (n) => metrics.generated(n), onStep: () => metrics.step() },
  );
  const timeoutMs = o.timeoutMs ?? DEFAULTS.timeoutMs;
  const encoder = new PromptEncoder(model.tokenizer, context);
  const handler = createHandler({
    modelNames: names,
    defaults: gen.settings,
    tokenizer: model.tokenizer,
    encoder,
    scheduler,
    metrics,
    chat: o.chatTemplate ?? fallbackTemplate,
    limits: { maxTokens, context, timeoutMs: timeoutMs > 0 ? timeoutMs : undefined },
    base: model,
    apiKey: o.apiKey || undefined,
    access,
    maxBodyBytes: o.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    lens: o.lens === false ? undefined : (o.lens ?? createLens(model, { maxTextTokens: context })),
    startedAt: Date.now(),
  });
  // Node's request timeout covers receiving the request (headers and body), not generating the answer
  // (ours is --timeout-ms): a client trickling its body is dropped (408) instead of holding a socket forever.
  const requestTimeout = o.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
  const http = createServer(
    {
      requestTimeout,
      headersTimeout: Math.min(o.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs, requestTimeout),
      connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(requestTimeout / 4))),
    },
    handler,
  );
  http.keepAliveTimeout = 5000;
  // Errors Node answers itself (malformed HTTP, headers too large, a request not received in time) get the
  // same OpenAI error body as every other 4xx; Node's default handler sends a bare status line.
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const message =
      status === 431
        ? 'the request headers are too large'
        : status === 408
          ? 'the request was not received in time'
          : 'the request is not valid HTTP';
    const body = JSON.stringify({
      error: { message, type: 'invalid_request_error', code: status === 408 ? 'timeout' : 'bad_request', param: null },
    });
    socket.end(
      `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new LmSteerError(
              'BAD_ARGUMENT',
              `port ${o.port} on ${host} is already in use`,
              'pick another --port, or 0 for any free one',
            )
          : e,
      ),
    );
    http.listen(o.port ?? DEFAULTS.port, host, () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const sched = scheduler;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    scheduler: sched,
    metrics,
    http,
    generationNotes: gen.notes,
    async close() {
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeIdleConnections();
        void sched.close().then(() => setTimeout(() => http.closeAllConnections(), 200).unref());
      });
      await sched.close();
      await encoder.close();
    },
  };
}
