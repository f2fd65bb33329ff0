/**
 * The evaluation protocol's samples from OpenAI-compatible servers (`lmsteer eval --endpoint URL`): lmsteer serve
 * replicas, which take the steer values in each request, or vLLM (or any server) serving one LoRA adapter per
 * steer value (`--endpoint-adapter NAME{value}`, exported by `lmsteer steer export --sweep`).
 *
 * Identity with a local run: each prompt is one completions request with its token ids (tokenized here, so
 * both sides see the same prompt), `n` = samples, `seed` = the prompt's seed (run.ts promptSeed), and
 * max_tokens = min_tokens = K (EOS never ends a sample early, as locally). lmsteer serve gives choice j the
 * stream rngStream(seed, 0, j) — generate()'s for a request with its own seed — so its samples are the local
 * ones, bit for bit, whatever else shares its batch. Steer values are sent for every slot (all 0 for the
 * baseline), so the server's own defaults never enter. vLLM samples with its own generator: same protocol,
 * other random draws.
 *
 * Requests run with bounded concurrency, round-robin over the endpoints; network failures, timeouts, 408, 429
 * and 5xx are retried with exponential backoff (a retry is the same request, so the same samples). A sample
 * that ends before K tokens means the server ignored min_tokens: refused, as it would change the protocol.
 */
import { LmSteerError } from '../util/errors.js';
import type { SampleGenerator, SamplingSettings, SettingRequest } from './run.js';

export interface EndpointOptions {
  /** Base URLs: http://host:port (then /v1 is added) or the full API root (…/v1). */
  urls: string[];
  /** The `model` of requests (default: the first model the first endpoint lists). With `adapter`: the base model. */
  model?: string;
  /** Adapter name per steered setting, `{value}` replaced by its steer value (vLLM's --lora-modules names). */
  adapter?: string;
  /** Requests in flight at once, over all endpoints (default 8). */
  concurrency?: number;
  /** Retries of a failed request (default 5). */
  retries?: number;
  /** Time limit of one request (default 600000 ms). */
  timeoutMs?: number;
  /** Sent as "Authorization: Bearer KEY". */
  apiKey?: string;
  /** First backoff (default 500 ms), doubled per retry, at most 30 s. */
  backoffMs?: number;
}

/** What the endpoints are checked against before any sample is asked for. */
export interface EndpointExpectations {
  /** The local model's embedding fingerprint: an lmsteer server reports its own (GET /v1/models). */
  fingerprint?: string;
  /** Steer names the requests use (steer-field mode): an lmsteer server must have them loaded. */
  steers?: string[];
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** `http://host:8080` → `http://host:8080/v1`; a URL with a path is taken as the API root. */
export function apiRoot(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new LmSteerError('BAD_ARGUMENT', `--endpoint "${url}" is not a URL`, 'e.g. --endpoint http://127.0.0.1:8080');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `--endpoint "${url}" is not http(s)`,
      'e.g. --endpoint http://127.0.0.1:8080',
    );
  const path = u.pathname.replace(/\/+$/, '');
  return `${u.origin}${path === '' ? '/v1' : path}`;
}

export class EndpointGenerator implements SampleGenerator {
  readonly identity: Record<string, unknown>;
  readonly description: string;
  private next = 0;

  private constructor(
    private readonly roots: string[],
    private readonly model: string,
    private readonly o: EndpointOptions,
  ) {
    const mode = o.adapter ? 'adapter' : 'steer';
    this.identity = { kind: 'openai-endpoint', mode, model, ...(o.adapter ? { adapter: o.adapter } : {}) };
    this.description = o.adapter
      ? `OpenAI-compatible endpoint: model "${model}" unsteered, adapter "${o.adapter}" per steer value`
      : `OpenAI-compatible endpoint: model "${model}", steer values in each request (lmsteer serve)`;
  }

  /** Check the endpoints (models, and for lmsteer servers the model's fingerprint and steers) and pick the model. */
  static async connect(o: EndpointOptions, expect: EndpointExpectations = {}): Promise<EndpointGenerator> {
    if (o.urls.length === 0) throw new LmSteerError('BAD_ARGUMENT', 'no --endpoint given');
    const roots = o.urls.map(apiRoot);
    let model = o.model;
    for (const root of roots) {
      const list = (await getJson(root, '/models', o)) as {
        data?: { id?: unknown; embedding_fingerprint?: unknown }[];
      };
      const cards = Array.isArray(list?.data) ? list.data : [];
      model ??= typeof cards[0]?.id === 'string' ? cards[0].id : undefined;
      if (model === undefined)
        throw new LmSteerError('BAD_DATA', `${root}/models lists no model`, 'name one with --endpoint-model');
      const card = cards.find((c) => c.id === model);
      if (!card)
        throw new LmSteerError(
          'NOT_FOUND',
          `${root} does not serve model "${model}" (it lists ${cards.map((c) => JSON.stringify(c.id)).join(', ') || 'none'})`,
          'give --endpoint-model one of those names',
        );
      if (
        expect.fingerprint &&
        typeof card.embedding_fingerprint === 'string' &&
        card.embedding_fingerprint !== expect.fingerprint
      )
        throw new LmSteerError(
          'MODEL_MISMATCH',
          `${root} serves another model than --model (embeddings ${card.embedding_fingerprint}, here ${expect.fingerprint})`,
          'serve the model given as --model, whose perplexities and tokens this run uses',
        );
      if (!o.adapter && expect.steers?.length) {
        const steers = (await getJson(root, '/steers', o, 'an lmsteer server (GET /v1/steers)')) as {
          data?: { name?: unknown }[];
        };
        const names = new Set((steers?.data ?? []).map((s) => s.name));
        const missing = expect.steers.filter((n) => !names.has(n));
        if (missing.length)
          throw new LmSteerError(
            'NOT_FOUND',
            `${root} has no steer ${missing.map((n) => `"${n}"`).join(', ')} loaded`,
            'start lmsteer serve with the same --steer folders as this eval',
          );
      }
    }
    return new EndpointGenerator(roots, model!, o);
  }

  async generate(
    batch: { ids: number[]; seed: number }[],
    setting: SettingRequest,
    s: SamplingSettings,
    opts: { signal?: AbortSignal; onTokens: (n: number) => void },
  ): Promise<string[][]> {
    const model = this.modelFor(setting);
    const out: string[][] = new Array(batch.length);
    let cursor = 0;
    let failed = false; // one failure ends the chunk: the other workers send nothing more
    const worker = async () => {
      while (cursor < batch.length && !failed) {
        const i = cursor++;
        const { ids, seed } = batch[i]!;
        const body = {
          model,
          prompt: ids,
          n: s.samples,
          max_tokens: s.maxNewTokens,
          min_tokens: s.maxNewTokens,
          temperature: s.temperature,
          top_p: s.topP,
          top_k: s.topK > 0 ? s.topK : -1,
          seed,
          repetition_penalty: 1,
          presence_penalty: 0,
          frequency_penalty: 0,
          ...(this.o.adapter || Object.keys(setting.steer).length === 0 ? {} : { steer: setting.steer }),
        };
        const r = await this.request(body, opts.signal, `${setting.label}, prompt ${i + 1} of the chunk`);
        out[i] = this.texts(r, s, setting.label);
        opts.onTokens(Number((r as { usage?: { completion_tokens?: unknown } }).usage?.completion_tokens) || 0);
      }
    };
    const n = Math.max(1, Math.min(this.o.concurrency ?? 8, batch.length));
    await Promise.all(
      Array.from({ length: n }, () =>
        worker().catch((e: unknown) => {
          failed = true;
          throw e;
        }),
      ),
    );
    return out;
  }

  private modelFor(setting: SettingRequest): string {
    if (!this.o.adapter || setting.baseline) return this.model;
    if (!this.o.adapter.includes('{value}')) return this.o.adapter;
    if (setting.steerValue === undefined)
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `--endpoint-adapter "${this.o.adapter}" needs one steer value per setting, and "${setting.label}" has none`,
        'sweep one value (--sweep name=…) or give one --value',
      );
    return this.o.adapter.replaceAll('{value}', String(setting.steerValue));
  }

  /** The choices' texts in order, checked: n of them, each exactly K tokens long (finish_reason "length"). */
  private texts(r: unknown, s: SamplingSettings, label: string): string[] {
    const choices = (r as { choices?: { index?: unknown; text?: unknown; finish_reason?: unknown }[] }).choices;
    if (!Array.isArray(choices) || choices.length !== s.samples)
      throw new LmSteerError(
        'BAD_DATA',
        `the endpoint answered ${Array.isArray(choices) ? choices.length : 'no'} choices for n = ${s.samples} (${label})`,
        'use a server that honours n (lmsteer serve, vLLM)',
      );
    const texts: string[] = new Array(s.samples);
    for (const [k, c] of choices.entries()) {
      const index = typeof c.index === 'number' ? c.index : k;
      if (typeof c.text !== 'string' || index < 0 || index >= s.samples)
        throw new LmSteerError('BAD_DATA', `the endpoint's choice ${k} has no text or a bad index (${label})`);
      if (c.finish_reason !== 'length')
        throw new LmSteerError(
          'BAD_DATA',
          `the endpoint ended a sample early (finish_reason ${JSON.stringify(c.finish_reason)}, ${label}): the protocol needs exactly max_tokens`,
          'use a server that honours min_tokens (lmsteer serve, vLLM)',
        );
      texts[index] = c.text;
    }
    return texts;
  }

  /** POST /completions with retries, rotating over the endpoints. */
  private async request(body: unknown, signal: AbortSignal | undefined, what: string): Promise<unknown> {
    const retries = this.o.retries ?? 5;
    let last = '';
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw cancelled(signal);
      const root = this.roots[this.next++ % this.roots.length]!;
      const limit = withTimeout(signal, this.o.timeoutMs ?? 600_000);
      try {
        const res = await fetch(`${root}/completions`, {
          method: 'POST',
          headers: headers(this.o),
          body: JSON.stringify(body),
          signal: limit.signal,
        });
        const text = await res.text();
        if (res.ok) return JSON.parse(text);
        last = `${res.status} ${errorMessage(text)}`;
        if (!RETRY_STATUS.has(res.status))
          throw new LmSteerError(
            res.status === 404 ? 'NOT_FOUND' : 'BAD_ARGUMENT',
            `${root}/completions refused the request (${what}): ${last}`,
            res.status === 404 ? 'check --endpoint-model / --endpoint-adapter against the names it serves' : undefined,
          );
      } catch (e) {
        if (e instanceof LmSteerError) throw e;
        if (signal?.aborted) throw cancelled(signal);
        last = (e as Error).message;
      } finally {
        limit.dispose();
      }
      if (attempt >= retries)
        throw new LmSteerError(
          'NETWORK',
          `the endpoint failed ${attempt + 1} times (${what}); last: ${last}`,
          'rerun the same command to resume once the server is back (done prompts are kept)',
        );
      const wait = Math.min(30_000, (this.o.backoffMs ?? 500) * 2 ** attempt) * (0.5 + Math.random() / 2);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

function headers(o: EndpointOptions): Record<string, string> {
  return { 'Content-Type': 'application/json', ...(o.apiKey ? { Authorization: `Bearer ${o.apiKey}` } : {}) };
}

async function getJson(
  root: string,
  path: string,
  o: EndpointOptions,
  what = 'an OpenAI-compatible server',
): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${root}${path}`, { headers: headers(o), signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    throw new LmSteerError('NETWORK', `cannot reach ${root}${path}: ${(e as Error).message}`, 'is the server running?');
  }
  const text = await res.text();
  if (!res.ok)
    throw new LmSteerError(
      res.status === 404 ? 'NOT_FOUND' : 'NETWORK',
      `${root}${path} answered ${res.status} ${errorMessage(text)}`,
      res.status === 404 ? `is ${root} ${what}?` : undefined,
    );
  try {
    return JSON.parse(text);
  } catch {
    throw new LmSteerError('BAD_DATA', `${root}${path} did not answer JSON`, `is ${root} ${what}?`);
  }
}

function errorMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const m = typeof j.error === 'string' ? j.error : (j.error?.message ?? j.message);
    if (typeof m === 'string') return m.slice(0, 500);
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}

/** A signal that aborts on `signal` or after `timeoutMs`; dispose() when done (AbortSignal.any needs Node 20.3). */
function withTimeout(signal: AbortSignal | undefined, timeoutMs: number): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  const onAbort = () => ac.abort(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: ac.signal,
    dispose: () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    },
  };
}

function cancelled(signal: AbortSignal): LmSteerError {
  return new LmSteerError('CANCELLED', 'evaluation stopped', 'run the same command again to resume', {
    cause: signal.reason,
  });
}
