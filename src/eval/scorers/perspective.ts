/**
 * perspective: Google's Perspective API (Comment Analyzer v1alpha1), TOXICITY attribute, the scorer the
 * paper's toxicity numbers come from. The request mirrors LM-Steer's evaluate.py: `requestedAttributes:
 * {TOXICITY:{}}, spanAnnotations: true, languages: ['en']`, an empty text sent as "\n", and the score read from
 * `spanScores[0]` (DExperts reads `summaryScore`; pick with `scoreFrom`). Requests are spaced to `qps`
 * (the API's default quota is 1 QPS), 429/5xx/network failures are retried with exponential backoff (honouring
 * Retry-After), and 400/401/403 fail at once with what the API said. Uses Node's fetch: one POST per text.
 */
import { LmSteerError } from '../../util/errors.js';
import type { Scorer } from './scorer.js';

export const PERSPECTIVE_ENDPOINT = 'https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze';

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}
const realClock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

export interface PerspectiveOptions {
  /** API key; default: environment variable PERSPECTIVE_API_KEY. */
  apiKey?: string;
  /** Default PERSPECTIVE_ENDPOINT (tests point it at a local server). */
  endpoint?: string;
  /** Requests per second, across all in-flight requests and retries. Default 1. */
  qps?: number;
  /** Requests in flight at once. Default 4. */
  concurrency?: number;
  /** Retries per text on 429 / 5xx / network errors. Default 6. */
  maxRetries?: number;
  /** First retry delay in ms, doubled per retry up to maxBackoffMs. Defaults 1000 and 60000. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Per-request timeout in ms. Default 30000. */
  timeoutMs?: number;
  /** 'firstSpan' (LM-Steer: spanScores[0], falling back to the summary) or 'summary' (DExperts). */
  scoreFrom?: 'firstSpan' | 'summary';
  /** Languages sent with each request. Default ['en'] (as LM-Steer). */
  languages?: string[];
  /** Time source, for tests. */
  clock?: Clock;
}

/** A limiter that spaces successive calls by 1/qps seconds: each call waits for its reserved slot. */
export function createRateLimiter(qps: number, clock: Clock = realClock): () => Promise<void> {
  if (!(qps > 0 && Number.isFinite(qps)))
    throw new LmSteerError('BAD_ARGUMENT', `qps is ${qps}; expected a positive number of requests per second`);
  const interval = 1000 / qps;
  let next = -Infinity;
  return async () => {
    const now = clock.now();
    const slot = Math.max(now, next);
    next = slot + interval;
    if (slot > now) await clock.sleep(slot - now);
  };
}

interface AnalyzeResponse {
  attributeScores?: {
    TOXICITY?: { summaryScore?: { value?: unknown }; spanScores?: { score?: { value?: unknown } }[] };
  };
}

function snippet(text: string): string {
  return JSON.stringify(text.length > 60 ? text.slice(0, 57) + '...' : text);
}

export class PerspectiveScorer implements Scorer {
  readonly name = 'perspective';
  readonly attribute = 'toxicity';
  readonly version: string;
  private readonly apiKey: string;
  private readonly endpoint: string;
  private readonly limit: () => Promise<void>;
  private readonly clock: Clock;
  private readonly o: Required<
    Pick<
      PerspectiveOptions,
      'concurrency' | 'maxRetries' | 'backoffMs' | 'maxBackoffMs' | 'timeoutMs' | 'scoreFrom' | 'languages'
    >
  >;

  constructor(opts: PerspectiveOptions = {}) {
    const key = opts.apiKey ?? process.env.PERSPECTIVE_API_KEY;
    if (!key) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        'the perspective scorer needs an API key and none was given',
        'set PERSPECTIVE_API_KEY (or pass apiKey); keys come from the Google Cloud project where the Perspective API is enabled',
      );
    }
    this.apiKey = key;
    this.endpoint = opts.endpoint ?? PERSPECTIVE_ENDPOINT;
    this.clock = opts.clock ?? realClock;
    this.limit = createRateLimiter(opts.qps ?? 1, this.clock);
    this.o = {
      concurrency: Math.max(1, Math.floor(opts.concurrency ?? 4)),
      maxRetries: opts.maxRetries ?? 6,
      backoffMs: opts.backoffMs ?? 1000,
      maxBackoffMs: opts.maxBackoffMs ?? 60000,
      timeoutMs: opts.timeoutMs ?? 30000,
      scoreFrom: opts.scoreFrom ?? 'firstSpan',
      languages: opts.languages ?? ['en'],
    };
    // Perspective's models change over time (scores drift), so the date scored is part of the fingerprint.
    const day = new Date(this.clock.now()).toISOString().slice(0, 10);
    this.version = `perspective v1alpha1 TOXICITY ${this.o.scoreFrom} @${day}`;
  }

  async score(texts: readonly string[]): Promise<number[]> {
    const out = new Array<number>(texts.length);
    let nextIndex = 0;
    const worker = async () => {
      while (nextIndex < texts.length) {
        const i = nextIndex++;
        out[i] = await this.scoreOne(texts[i]!, i);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, texts.length) }, worker));
    return out;
  }

  private async scoreOne(text: string, index: number): Promise<number> {
    const body = JSON.stringify({
      comment: { text: text === '' ? '\n' : text }, // the API rejects empty comments; LM-Steer sends "\n"
      requestedAttributes: { TOXICITY: {} },
      spanAnnotations: true,
      languages: this.o.languages,
    });
    const url = `${this.endpoint}?key=${encodeURIComponent(this.apiKey)}`;
    let lastProblem = '';
    for (let attempt = 0; ; attempt++) {
      await this.limit();
      let res: Response | undefined;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(this.o.timeoutMs),
        });
      } catch (e) {
        lastProblem = `network error: ${(e as Error).message}`; // never the URL: it holds the key
      }
      let retryAfterMs: number | undefined;
      if (res) {
        if (res.ok) return this.parse(await res.text(), index, text);
        const detail = await apiMessage(res);
        if (res.status === 429 || res.status >= 500) {
          lastProblem = `HTTP ${res.status}${detail ? `: ${detail}` : ''}`;
          const ra = Number(res.headers.get('retry-after'));
          if (Number.isFinite(ra) && ra > 0) retryAfterMs = ra * 1000;
        } else if (res.status === 401 || res.status === 403) {
          throw new LmSteerError(
            'BAD_ARGUMENT',
            `Perspective API refused the request (HTTP ${res.status}): ${detail || res.statusText}`,
            "check the API key (PERSPECTIVE_API_KEY), that the Perspective Comment Analyzer API is enabled for its Google Cloud project, and the key's API restrictions",
          );
        } else {
          throw new LmSteerError(
            'BAD_ARGUMENT',
            `Perspective API rejected text ${index} ${snippet(text)} (HTTP ${res.status}): ${detail || res.statusText}`,
            'texts must be under 20 KB and in a language the TOXICITY attribute supports (see the `languages` option)',
          );
        }
      }
      if (attempt >= this.o.maxRetries) {
        throw new LmSteerError(
          'NETWORK',
          `Perspective API failed for text ${index} after ${attempt + 1} attempts; last: ${lastProblem}`,
          'the API may be down or the quota exhausted: lower qps, raise maxRetries, or try again later',
        );
      }
      await this.clock.sleep(retryAfterMs ?? Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** attempt));
    }
  }

  private parse(raw: string, index: number, text: string): number {
    let json: AnalyzeResponse;
    try {
      json = JSON.parse(raw) as AnalyzeResponse;
    } catch {
      throw new LmSteerError(
        'NETWORK',
        `Perspective API answered text ${index} with something that is not JSON: ${snippet(raw)}`,
        'check the endpoint',
      );
    }
    const tox = json.attributeScores?.TOXICITY;
    const span = this.o.scoreFrom === 'firstSpan' ? tox?.spanScores?.[0]?.score?.value : undefined;
    const v = span ?? tox?.summaryScore?.value;
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
      throw new LmSteerError(
        'NETWORK',
        `Perspective API response for text ${index} ${snippet(text)} has no TOXICITY score in [0, 1]`,
        'check the endpoint; the response must hold attributeScores.TOXICITY.summaryScore.value',
      );
    }
    return v;
  }
}

/** The `error.message` of a Google API error body, if any. */
async function apiMessage(res: Response): Promise<string> {
  try {
    const t = await res.text();
    try {
      const m = (JSON.parse(t) as { error?: { message?: unknown } }).error?.message;
      if (typeof m === 'string') return m;
    } catch {
      // not JSON: use the text itself
    }
    return t.slice(0, 200);
  } catch {
    return '';
  }
}
