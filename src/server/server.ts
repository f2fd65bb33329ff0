/**
 * `startServer`: a loaded model + steers → a listening HTTP server (routes.ts) over one continuous-batching
 * scheduler (scheduler.ts). Used by `lmsteer serve` and by the tests (port 0).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LoadedModel } from '../runtime/loadModel.js';
import { LmSteerError } from '../util/errors.js';
import { fallbackTemplate, type ChatTemplate } from './chatTemplate.js';
import { createLens, type Lens } from './lens.js';
import { Metrics } from './metrics.js';
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
  apiKey?: string;
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
};

export async function startServer(model: LoadedModel, steers: SteerSet, o: ServerOptions = {}): Promise<RunningServer> {
  const decoder = model.decoder;
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
  const handler = createHandler({
    modelId: model.id,
    tokenizer: model.tokenizer,
    scheduler,
    metrics,
    chat: o.chatTemplate ?? fallbackTemplate,
    limits: { maxTokens, context, timeoutMs: timeoutMs > 0 ? timeoutMs : undefined },
    base: model,
    apiKey: o.apiKey || undefined,
    maxBodyBytes: o.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    lens: o.lens === false ? undefined : (o.lens ?? createLens(model, { maxTextTokens: context })),
    startedAt: Date.now(),
  });
  const http = createServer(handler);
  // Generation can run for minutes: no request timeout from node itself (ours is --timeout-ms).
  http.requestTimeout = 0;
  http.keepAliveTimeout = 5000;
  const host = o.host ?? DEFAULTS.host;
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
    async close() {
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeIdleConnections();
        void sched.close().then(() => setTimeout(() => http.closeAllConnections(), 200).unref());
      });
      await sched.close();
    },
  };
}
