/**
 * The OpenAI-compatible API against a real server (stories260K, two random steers) over loopback fetch:
 * outputs equal generate() with the same seed, streaming equals non-streaming, steer semantics, the OpenAI
 * SDK's request shapes, steer loading/unloading, errors, limits, disconnects, metrics and the lens endpoints.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { generate } from '../../src/runtime/generate.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import { makeSteer, postJson, postStream, serve, skip, streamTexts, type Fixture } from './fixtures.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomSteer } from '../steer/randomSteer.js';
import { saveSteer } from '../../src/steer/steerFile.js';

async function waitFor(cond: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('lmsteer serve API', { skip }, () => {
  let f: Fixture;
  let completions: string;
  let chat: string;
  before(async () => {
    f = await serve({ maxBodyBytes: 4096, maxTokensLimit: 200, maxBatch: 8 }, { sentiment: 2 });
    completions = `${f.url}/v1/completions`;
    chat = `${f.url}/v1/chat/completions`;
  });
  after(async () => f?.close());

  /** generate() run alone with the same steers, values and seed. */
  async function alone(
    prompt: string,
    values: Record<string, number>,
    seed: number,
    maxNewTokens: number,
    numSamples = 1,
  ) {
    const active = SteerSet.load(f.model, [f.steerDirs.sentiment, f.steerDirs.style]);
    const [r] = await generate(
      f.model.decoder,
      f.model.tokenizer,
      [{ prompt, seed, numSamples, steerScale: active.resolve(values).scale }],
      { maxNewTokens, steer: active.directions },
    );
    return r;
  }

  test('a seeded completion equals generate() with the same seed and steer values; usage and steer are reported', async () => {
    const r = await postJson(completions, {
      prompt: 'Once upon a time',
      max_tokens: 30,
      seed: 7,
      n: 2,
      steer: { sentiment: -3, 'style.casual': 1.5 },
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const want = await alone('Once upon a time', { sentiment: -3, 'style.casual': 1.5 }, 7, 30, 2);
    assert.deepEqual(
      r.json.choices.map((c: any) => c.text),
      want.samples.map((s) => s.text),
    );
    assert.equal(r.json.object, 'text_completion');
    assert.match(r.json.id, /^cmpl-/);
    assert.equal(r.json.model, f.model.id);
    assert.deepEqual(r.json.steer, { sentiment: -3, 'style.formal': 0, 'style.casual': 1.5 });
    const completionTokens = want.samples.reduce((a, s) => a + s.tokenIds.length, 0);
    assert.deepEqual(r.json.usage, {
      prompt_tokens: want.promptTokens,
      completion_tokens: completionTokens,
      total_tokens: want.promptTokens + completionTokens,
    });
    for (const c of r.json.choices) assert.ok(['stop', 'length'].includes(c.finish_reason));
  });

  test('steer absent → the server defaults; explicit 0 → off (the unsteered text)', async () => {
    const absent = await postJson(completions, { prompt: 'The dog', max_tokens: 24, seed: 3 });
    assert.deepEqual(absent.json.steer, { sentiment: 2, 'style.formal': 0, 'style.casual': 0 });
    assert.equal(absent.json.choices[0].text, (await alone('The dog', { sentiment: 2 }, 3, 24)).samples[0].text);
    const off = await postJson(completions, { prompt: 'The dog', max_tokens: 24, seed: 3, steer: { sentiment: 0 } });
    assert.equal(off.json.steer.sentiment, 0);
    const [plain] = await generate(f.model.decoder, f.model.tokenizer, [{ prompt: 'The dog', seed: 3 }], {
      maxNewTokens: 24,
    });
    assert.equal(off.json.choices[0].text, plain.samples[0].text);
  });

  test('streaming gives the same text as non-streaming, in OpenAI chunk shapes, ending with [DONE] and usage', async () => {
    const body = { prompt: 'Lily went', max_tokens: 40, seed: 11, n: 2, steer: { 'style.formal': 3 } };
    const plain = await postJson(completions, body);
    const s = await postStream(completions, { ...body, stream: true, stream_options: { include_usage: true } });
    assert.equal(s.status, 200);
    assert.ok(s.done, 'no [DONE]');
    assert.deepEqual(
      streamTexts(s.events),
      plain.json.choices.map((c: any) => c.text),
    );
    const last = s.events.at(-1);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, plain.json.usage);
    for (const e of s.events.slice(0, -1)) {
      assert.equal(e.object, 'text_completion');
      assert.equal(e.usage, null);
      assert.equal(e.id, last.id);
    }
    const finishes = s.events.flatMap((e) =>
      e.choices.filter((c: any) => c.finish_reason).map((c: any) => [c.index, c.finish_reason]),
    );
    assert.deepEqual(finishes.map(([i]: any) => i).sort(), [0, 1]);
  });

  test('chat: non-streaming and streaming agree; the first chunk carries the role; usage only when asked', async () => {
    const body = {
      messages: [
        { role: 'system', content: 'Tell stories.' },
        { role: 'user', content: 'A story about a cat' },
      ],
      max_tokens: 30,
      seed: 5,
    };
    const plain = await postJson(chat, body);
    assert.equal(plain.status, 200, JSON.stringify(plain.json));
    assert.equal(plain.json.object, 'chat.completion');
    assert.equal(plain.json.choices[0].message.role, 'assistant');
    const s = await postStream(chat, { ...body, stream: true });
    assert.ok(s.done);
    assert.deepEqual(s.events[0].choices[0].delta, { role: 'assistant', content: '' });
    assert.equal(streamTexts(s.events)[0], plain.json.choices[0].message.content);
    assert.ok(s.events.every((e) => e.object === 'chat.completion.chunk' && !('usage' in e)));
  });

  test('the OpenAI SDK works against it, steer passed as an extra body field', async () => {
    const client = new OpenAI({ baseURL: `${f.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
    const c = await client.completions.create({
      model: f.model.id,
      prompt: 'Once upon a time',
      max_tokens: 16,
      seed: 2,
      steer: { sentiment: 1 },
    } as any);
    assert.equal(c.choices.length, 1);
    assert.deepEqual((c as any).steer.sentiment, 1);
    const stream = await client.chat.completions.create({
      model: f.model.id,
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 16,
      seed: 2,
      stream: true,
      stream_options: { include_usage: true },
      steer: { sentiment: -1 },
    } as any);
    let text = '';
    let usage: any;
    for await (const chunk of stream as any) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    const plain = await client.chat.completions.create({
      model: f.model.id,
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 16,
      seed: 2,
      steer: { sentiment: -1 },
    } as any);
    assert.equal(text, plain.choices[0].message.content);
    assert.equal(usage.completion_tokens, plain.usage!.completion_tokens);
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((m) => m.id),
      [f.model.id],
    );
  });

  test('stop strings cut the text, and the server defaults to a random seed', async () => {
    const base = await postJson(completions, { prompt: 'Once upon a time', max_tokens: 40, seed: 9 });
    const text: string = base.json.choices[0].text;
    const cut = text.indexOf(' ', 3);
    assert.ok(cut > 0, `no space in ${JSON.stringify(text)}`);
    const stop = text.slice(cut, cut + 3);
    const r = await postJson(completions, { prompt: 'Once upon a time', max_tokens: 40, seed: 9, stop });
    assert.equal(r.json.choices[0].text, text.slice(0, text.indexOf(stop)));
    assert.equal(r.json.choices[0].finish_reason, 'stop');
    const texts = new Set<string>();
    for (let i = 0; i < 4; i++)
      texts.add((await postJson(completions, { prompt: 'Once upon a time', max_tokens: 20 })).json.choices[0].text);
    assert.ok(texts.size > 1, 'four unseeded requests all gave the same text');
  });

  test('bad requests: 400 naming the field (unknown steer lists the known ones, non-numbers, NaN, limits)', async () => {
    const unknown = await postJson(completions, { prompt: 'x', steer: { joy: 1 } });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.json.error.type, 'invalid_request_error');
    assert.match(unknown.json.error.message, /joy/);
    assert.match(unknown.json.error.message, /sentiment/);
    assert.match(unknown.json.error.message, /style\.formal/);
    const str = await postJson(completions, { prompt: 'x', steer: { sentiment: '5' } });
    assert.equal(str.status, 400);
    assert.match(str.json.error.message, /steer\.sentiment/);
    const nan = await fetch(completions, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"prompt": "x", "steer": {"sentiment": NaN}}',
    });
    assert.equal(nan.status, 400);
    assert.match((await nan.json()).error.message, /JSON/);
    const tooMany = await postJson(completions, { prompt: 'x', max_tokens: 201 });
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.json.error.message, /200/);
    const temp = await postJson(completions, { prompt: 'x', temperature: -1 });
    assert.equal(temp.status, 400);
    assert.equal(temp.json.error.param, 'temperature');
    const bias = await postJson(completions, { prompt: 'x', logit_bias: { '5': 1 } });
    assert.equal(bias.status, 400);
    assert.equal(bias.json.error.code, 'unsupported');
    assert.match(bias.json.error.message, /logit_bias/);
    const noPrompt = await postJson(completions, { max_tokens: 3 });
    assert.equal(noPrompt.status, 400);
    assert.match(noPrompt.json.error.message, /prompt/);
    const badIds = await postJson(completions, { prompt: [1, 2, 99999] });
    assert.equal(badIds.status, 400);
    const model = await postJson(completions, { prompt: 'x', model: 'gpt-4' });
    assert.equal(model.status, 404);
    const method = await fetch(completions);
    assert.equal(method.status, 405);
    const route = await fetch(`${f.url}/v1/nothing`);
    assert.equal(route.status, 404);
    const notJson = await fetch(completions, { method: 'POST', body: 'hello' });
    assert.equal(notJson.status, 400);
    const long = await postJson(completions, { prompt: 'x'.repeat(2000), max_tokens: 200 });
    assert.ok([400, 413].includes(long.status), `got ${long.status}`);
  });

  test('a body over --max-body-bytes gets 413 and the server carries on', async () => {
    const r = await fetch(completions, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'a '.repeat(5000) }),
    });
    assert.equal(r.status, 413);
    assert.equal((await r.json()).error.code, 'limit');
    const ok = await postJson(completions, { prompt: 'Hi', max_tokens: 2 });
    assert.equal(ok.status, 200);
  });

  test('steers: list, load (fingerprint-checked), use, unload', async () => {
    const list = await (await fetch(`${f.url}/v1/steers`)).json();
    assert.deepEqual(
      list.data.map((s: any) => s.name),
      ['sentiment', 'style'],
    );
    assert.deepEqual(list.data[0].slots, [{ name: 'on', value_name: 'sentiment', default: 2, file_default: 0 }]);
    const loaded = await postJson(`${f.url}/v1/steers`, { path: f.steerDirs.extra });
    assert.equal(loaded.status, 201, JSON.stringify(loaded.json));
    assert.equal(loaded.json.name, 'extra');
    const dup = await postJson(`${f.url}/v1/steers`, { path: f.steerDirs.extra });
    assert.equal(dup.status, 400);
    const used = await postJson(completions, { prompt: 'Once', max_tokens: 8, seed: 1, steer: { extra: 2 } });
    assert.equal(used.status, 200);
    assert.equal(used.json.steer.extra, 2);
    const one = await (await fetch(`${f.url}/v1/steers/extra`)).json();
    assert.equal(one.name, 'extra');
    const del = await fetch(`${f.url}/v1/steers/extra`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.deepEqual(await del.json(), { id: 'extra', object: 'steer', deleted: true });
    const gone = await postJson(completions, { prompt: 'Once', max_tokens: 8, steer: { extra: 2 } });
    assert.equal(gone.status, 400);
    assert.equal((await fetch(`${f.url}/v1/steers/extra`, { method: 'DELETE' })).status, 404);
    // a steer for another model is refused
    const tmp = mkdtempSync(join(f.tmp, 'other-'));
    try {
      const other = randomSteer({ d: f.model.cfg.hiddenSize, rank: 2, slots: ['x'], name: 'other', vocab: 512 });
      saveSteer(join(tmp, 'other'), other);
      const r = await postJson(`${f.url}/v1/steers`, { path: join(tmp, 'other') });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.code, 'model_mismatch');
      const missing = await postJson(`${f.url}/v1/steers`, { path: join(tmp, 'nope') });
      assert.equal(missing.status, 404);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('loading a steer while a request streams: the request finishes under its steers (drain), then the steer is in force', async () => {
    const body = { prompt: 'Once upon a time', max_tokens: 120, min_tokens: 120, seed: 21, steer: { sentiment: 3 } };
    const want = (await postJson(completions, body)).json.choices[0].text;
    const streaming = postStream(completions, { ...body, stream: true });
    await waitFor(async () => f.server.scheduler.activeRows > 0, 'the stream to start');
    const tmp = mkdtempSync(join(f.tmp, 'drain-'));
    try {
      const dir = makeSteer(f.model, tmp, 'late', 31);
      const [s, loaded] = await Promise.all([streaming, postJson(`${f.url}/v1/steers`, { path: dir })]);
      assert.equal(loaded.status, 201);
      assert.equal(streamTexts(s.events)[0], want);
      assert.equal((await postJson(completions, { prompt: 'Hi', max_tokens: 2, steer: { late: 1 } })).status, 200);
      assert.equal((await fetch(`${f.url}/v1/steers/late`, { method: 'DELETE' })).status, 200);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('a client that disconnects cancels its generation: its rows leave the batch', async () => {
    const ac = new AbortController();
    const r = await fetch(completions, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 200, min_tokens: 200, n: 3, stream: true }),
      signal: ac.signal,
    });
    const reader = r.body!.getReader();
    await reader.read(); // the stream is running
    assert.ok(f.server.scheduler.activeRows > 0);
    ac.abort();
    await waitFor(async () => f.server.scheduler.activeRows === 0, 'the cancelled rows to leave');
    const health = await (await fetch(`${f.url}/health`)).json();
    assert.equal(health.status, 'ok');
    assert.equal(health.active, 0);
  });

  test('/metrics: Prometheus text with requests by status, tokens, queue, batch and latency histogram', async () => {
    const text = await (await fetch(`${f.url}/metrics`)).text();
    assert.match(text, /^lmsteer_requests_total\{route="POST \/v1\/completions",status="200"\} \d+$/m);
    assert.match(text, /^lmsteer_requests_total\{route="POST \/v1\/completions",status="400"\} \d+$/m);
    assert.match(text, /^lmsteer_generated_tokens_total [1-9]\d*$/m);
    assert.match(text, /^lmsteer_tokens_per_second [\d.]+$/m);
    assert.match(text, /^lmsteer_queue_depth 0$/m);
    assert.match(text, /^lmsteer_batch_size \d+$/m);
    assert.match(text, /^lmsteer_request_duration_seconds_bucket\{route="POST \/v1\/completions",le="\+Inf"\} \d+$/m);
    assert.match(text, /^# TYPE lmsteer_request_duration_seconds histogram$/m);
  });

  test('lens endpoints: the words a steer moves, and evidence in a text', async () => {
    const dims = await (await fetch(`${f.url}/v1/steers/sentiment/dims?top=5&dims=2`)).json();
    assert.equal(dims.steer, 'sentiment');
    assert.equal(dims.dims.length, 2);
    assert.equal(dims.dims[0].positive.length, 5);
    const multi = await fetch(`${f.url}/v1/steers/style/dims?slot=casual&top=3&dims=1`);
    assert.equal(multi.status, 200);
    assert.equal((await fetch(`${f.url}/v1/steers/nope/dims`)).status, 404);
    assert.equal((await fetch(`${f.url}/v1/steers/sentiment/dims?top=0`)).status, 400);
    const text = 'Once upon a time, there was a happy dog.';
    const ex = await postJson(`${f.url}/v1/explain`, { steer: 'sentiment', text });
    assert.equal(ex.status, 200, JSON.stringify(ex.json));
    assert.equal(ex.json.tokens.map((t: any) => t.text).join(''), ' ' + text);
    assert.ok(ex.json.tokens.every((t: any) => typeof t.evidence === 'number'));
    assert.ok(Array.isArray(ex.json.spans));
    const noSlot = await postJson(`${f.url}/v1/explain`, { steer: 'style', text });
    assert.equal(noSlot.status, 400);
    assert.equal((await postJson(`${f.url}/v1/explain`, { steer: 'style', slot: 'formal', text })).status, 200);
  });

  test('the playground is served at / with its script and stylesheet', async () => {
    const html = await (await fetch(`${f.url}/`)).text();
    assert.match(html, /<script src="\/app\.js"/);
    for (const p of ['/app.js', '/style.css']) {
      const r = await fetch(`${f.url}${p}`);
      assert.equal(r.status, 200);
      assert.ok((await r.text()).length > 100);
    }
  });
});

describe('lmsteer serve limits: API key, queue, timeout', { skip }, () => {
  let f: Fixture;
  const key = 'sekret-key';
  const auth = { Authorization: `Bearer ${key}` };
  before(async () => {
    f = await serve({ apiKey: key, maxBatch: 1, maxQueue: 1 });
  });
  after(async () => f?.close());

  test('401 without the key or with a wrong one; /health and the playground stay open', async () => {
    const none = await postJson(`${f.url}/v1/completions`, { prompt: 'x', max_tokens: 2 });
    assert.equal(none.status, 401);
    assert.equal(none.json.error.type, 'authentication_error');
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    const wrong = await postJson(
      `${f.url}/v1/completions`,
      { prompt: 'x', max_tokens: 2 },
      { Authorization: 'Bearer nope' },
    );
    assert.equal(wrong.status, 401);
    assert.equal((await fetch(`${f.url}/v1/models`)).status, 401);
    assert.equal((await fetch(`${f.url}/metrics`)).status, 401);
    assert.equal((await postJson(`${f.url}/v1/completions`, { prompt: 'x', max_tokens: 2 }, auth)).status, 200);
    assert.equal((await fetch(`${f.url}/health`)).status, 200);
    assert.equal((await fetch(`${f.url}/`)).status, 200);
  });

  test('429 when the queue is full; the queued request still completes', async () => {
    const long = new AbortController();
    const r = await fetch(`${f.url}/v1/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...auth },
      body: JSON.stringify({ prompt: 'Once', max_tokens: 500, min_tokens: 500, stream: true }),
      signal: long.signal,
    });
    const reader = r.body!.getReader();
    await reader.read(); // running: the one slot is taken
    const queued = postJson(`${f.url}/v1/completions`, { prompt: 'Hi', max_tokens: 4 }, auth);
    await waitFor(async () => f.server.scheduler.queuedJobs === 1, 'the second request to queue');
    const refused = await postJson(`${f.url}/v1/completions`, { prompt: 'Hi', max_tokens: 4 }, auth);
    assert.equal(refused.status, 429);
    assert.equal(refused.json.error.type, 'rate_limit_error');
    long.abort();
    assert.equal((await queued).status, 200);
  });
});

describe('lmsteer serve timeout', { skip }, () => {
  test('a request past --timeout-ms gets 504 and leaves the batch', async () => {
    const f = await serve({ timeoutMs: 1 });
    try {
      const r = await postJson(`${f.url}/v1/completions`, { prompt: 'Once', max_tokens: 400, min_tokens: 400 });
      assert.equal(r.status, 504);
      assert.equal(r.json.error.type, 'timeout_error');
      await waitFor(async () => f.server.scheduler.activeRows === 0, 'the timed-out row to leave');
    } finally {
      await f.close();
    }
  });
});
