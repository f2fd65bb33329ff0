import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRateLimiter, PerspectiveScorer, type Clock } from '../../../src/eval/scorers/perspective.js';
import { LmSteerError } from '../../../src/util/errors.js';

/** A fake clock: sleeping advances time instantly, and every sleep is recorded. */
function fakeClock(): Clock & { slept: number[] } {
  let t = 1_700_000_000_000;
  const slept: number[] = [];
  return { slept, now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)) };
}

interface Req {
  key: string | null;
  body: {
    comment: { text: string };
    requestedAttributes: Record<string, unknown>;
    spanAnnotations: boolean;
    languages: string[];
  };
}
type Handler = (req: Req, res: ServerResponse) => void;

async function withServer(handler: Handler, fn: (endpoint: string, seen: Req[]) => Promise<void>): Promise<void> {
  const seen: Req[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      const r: Req = { key: new URL(req.url!, 'http://x').searchParams.get('key'), body: JSON.parse(data) };
      seen.push(r);
      handler(r, res);
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1alpha1/comments:analyze`, seen);
  } finally {
    server.close();
  }
}

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** Scores encoded in the text: "s=0.7" → summary 0.7, first span 0.7/2. */
const scoring: Handler = (r, res) => {
  const m = /s=([\d.]+)/.exec(r.body.comment.text);
  const v = m ? Number(m[1]) : 0.01;
  reply(res, 200, {
    attributeScores: {
      TOXICITY: {
        spanScores: [{ begin: 0, end: 3, score: { value: v / 2, type: 'PROBABILITY' } }],
        summaryScore: { value: v, type: 'PROBABILITY' },
      },
    },
    languages: ['en'],
  });
};

test('perspective: sends the LM-Steer request, reads spanScores[0] by default or the summary, keeps order', async () => {
  await withServer(scoring, async (endpoint, seen) => {
    const s = new PerspectiveScorer({ apiKey: 'k1', endpoint, qps: 1000, clock: fakeClock() });
    assert.deepEqual(await s.score(['s=0.8', 's=0.2', '', 's=0.6']), [0.4, 0.1, 0.005, 0.3]);
    assert.equal(seen.length, 4);
    assert.equal(seen[0]!.key, 'k1');
    assert.deepEqual(seen[0]!.body.requestedAttributes, { TOXICITY: {} });
    assert.equal(seen[0]!.body.spanAnnotations, true);
    assert.deepEqual(seen[0]!.body.languages, ['en']);
    assert.ok(
      seen.some((r) => r.body.comment.text === '\n'),
      'empty text is sent as a newline',
    );
    const summary = new PerspectiveScorer({
      apiKey: 'k1',
      endpoint,
      qps: 1000,
      scoreFrom: 'summary',
      clock: fakeClock(),
    });
    assert.deepEqual(await summary.score(['s=0.8']), [0.8]);
    assert.match(summary.version, /^perspective v1alpha1 TOXICITY summary @\d{4}-\d\d-\d\d$/);
  });
});

test('perspective: 429 and 503 are retried with doubling backoff; Retry-After is honoured', async () => {
  let calls = 0;
  await withServer(
    (r, res) => {
      calls++;
      if (calls === 1) return reply(res, 429, { error: { code: 429, message: 'Quota exceeded' } });
      if (calls === 2) return reply(res, 503, { error: { message: 'unavailable' } });
      if (calls === 3) return reply(res, 500, {}, { 'retry-after': '7' });
      scoring(r, res);
    },
    async (endpoint) => {
      const clock = fakeClock();
      const s = new PerspectiveScorer({ apiKey: 'k', endpoint, qps: 1000, backoffMs: 100, clock });
      assert.deepEqual(await s.score(['s=0.9']), [0.45]);
      assert.equal(calls, 4);
      // backoff 100, 200, then Retry-After 7 s (rate-limiter waits of 1 ms interleave)
      assert.deepEqual(
        clock.slept.filter((ms) => ms >= 100),
        [100, 200, 7000],
      );
    },
  );
});

test('perspective: persistent 5xx gives NETWORK after maxRetries', async () => {
  let calls = 0;
  await withServer(
    (_r, res) => (calls++, reply(res, 502, { error: { message: 'bad gateway' } })),
    async (endpoint) => {
      const s = new PerspectiveScorer({
        apiKey: 'secret-key',
        endpoint,
        qps: 1000,
        maxRetries: 2,
        backoffMs: 1,
        clock: fakeClock(),
      });
      await assert.rejects(
        s.score(['a', 'b']),
        (e: unknown) =>
          e instanceof LmSteerError &&
          e.code === 'NETWORK' &&
          /after 3 attempts/.test(e.message) &&
          !e.message.includes('secret-key'),
      );
      assert.ok(calls >= 3);
    },
  );
});

test('perspective: 400 names the text and the API message; 403 points at the key; no key at all is BAD_ARGUMENT', async () => {
  await withServer(
    (r, res) =>
      r.key === 'bad'
        ? reply(res, 403, { error: { code: 403, message: 'API key not valid' } })
        : reply(res, 400, {
            error: { code: 400, message: 'Attribute TOXICITY does not support request languages: xx' },
          }),
    async (endpoint) => {
      const s = new PerspectiveScorer({ apiKey: 'ok', endpoint, qps: 1000, concurrency: 1, clock: fakeClock() });
      await assert.rejects(
        s.score(['bonjour']),
        (e: unknown) =>
          e instanceof LmSteerError &&
          e.code === 'BAD_ARGUMENT' &&
          /text 0 "bonjour".*HTTP 400.*does not support/.test(e.message),
      );
      const bad = new PerspectiveScorer({ apiKey: 'bad', endpoint, qps: 1000, clock: fakeClock() });
      await assert.rejects(
        bad.score(['x']),
        (e: unknown) =>
          e instanceof LmSteerError &&
          e.code === 'BAD_ARGUMENT' &&
          /HTTP 403.*API key not valid/.test(e.message) &&
          /PERSPECTIVE_API_KEY/.test(e.hint ?? ''),
      );
    },
  );
  const saved = process.env.PERSPECTIVE_API_KEY;
  delete process.env.PERSPECTIVE_API_KEY;
  try {
    assert.throws(
      () => new PerspectiveScorer({}),
      (e: unknown) =>
        e instanceof LmSteerError && e.code === 'BAD_ARGUMENT' && /PERSPECTIVE_API_KEY/.test(e.hint ?? ''),
    );
    process.env.PERSPECTIVE_API_KEY = 'from-env';
    assert.doesNotThrow(() => new PerspectiveScorer({}));
  } finally {
    if (saved === undefined) delete process.env.PERSPECTIVE_API_KEY;
    else process.env.PERSPECTIVE_API_KEY = saved;
  }
});

test('perspective: a response without a TOXICITY score is reported', async () => {
  await withServer(
    (_r, res) => reply(res, 200, { attributeScores: {} }),
    async (endpoint) => {
      const s = new PerspectiveScorer({ apiKey: 'k', endpoint, qps: 1000, clock: fakeClock() });
      await assert.rejects(
        s.score(['x']),
        (e: unknown) => e instanceof LmSteerError && /no TOXICITY score/.test(e.message),
      );
    },
  );
});

test('rate limiter spaces calls by 1/qps (fake clock)', async () => {
  const clock = fakeClock();
  const limit = createRateLimiter(4, clock);
  const start = clock.now();
  const at: number[] = [];
  for (let i = 0; i < 5; i++) {
    await limit();
    at.push(clock.now() - start);
  }
  assert.deepEqual(at, [0, 250, 500, 750, 1000]);
  assert.throws(() => createRateLimiter(0), LmSteerError);
});
