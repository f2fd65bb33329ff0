/**
 * The OpenAI fields lm-eval-harness, vLLM clients and web pages rely on, driven through the official `openai`
 * package (streaming and not): logprobs / top_logprobs (checked against a full forward pass of the steered
 * model), completions' echo (with max_tokens 0 for loglikelihoods), presence/frequency penalties,
 * GET /v1/models/{id} and --served-model-name, opt-in CORS, the steer-value bound, the OpenAI error body on
 * every 4xx, and sampling defaults from the model's generation_config.json.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { generate } from '../../src/runtime/generate.js';
import { loadModel } from '../../src/runtime/loadModel.js';
import { logSoftmax } from '../../src/runtime/sampling.js';
import { startServer } from '../../src/server/server.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import { modelPath, postJson, serve, skip, type Fixture } from './fixtures.js';

const ORIGIN = 'http://app.example:3000';

describe('OpenAI fields through the openai SDK', { skip }, () => {
  let f: Fixture;
  let client: OpenAI;
  before(async () => {
    f = await serve(
      { servedModelNames: ['tiny-steered', 'alias'], cors: [ORIGIN], maxTokensLimit: 64 },
      {},
      { maxValue: 50 },
    );
    client = new OpenAI({ baseURL: `${f.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  });
  after(async () => f?.close());

  const steers = () => SteerSet.load(f.model, [f.steerDirs.sentiment, f.steerDirs.style]);

  /** The steered model's log-softmax after each prefix of `ids` (one full forward pass), row t = after ids[..t]. */
  async function reference(ids: number[], values: Record<string, number>): Promise<Float64Array[]> {
    const set = steers();
    const scale = set.resolve(values).scale!;
    const { logits } = await f.model.decoder.forward([ids], {
      steer: { ...set.directions!, scale: { dtype: 'float32', shape: [1, scale.length], data: scale } },
    });
    const V = f.model.cfg.vocabSize;
    return ids.map((_, t) => logSoftmax(logits.data.subarray(t * V, (t + 1) * V)));
  }

  async function sampleAlone(prompt: string, values: Record<string, number>, seed: number, n: number, extra = {}) {
    const set = steers();
    const [r] = await generate(
      f.model.decoder,
      f.model.tokenizer,
      [{ prompt, seed, steerScale: set.resolve(values).scale }],
      { maxNewTokens: n, steer: set.directions, ...extra },
    );
    return r!.samples[0]!;
  }

  test('completions logprobs: the chosen tokens and top alternatives of the steered model, streamed or not', async () => {
    const steer = { sentiment: -3 };
    const body = { model: 'alias', prompt: 'Once upon a time', max_tokens: 12, seed: 4, logprobs: 3, steer } as any;
    const c = await client.completions.create(body);
    assert.equal(c.model, 'tiny-steered', 'responses name the first served name');
    const lp = c.choices[0]!.logprobs!;
    const sample = await sampleAlone('Once upon a time', steer, 4, 12);
    assert.equal(c.choices[0]!.text, sample.text);
    assert.equal(lp.tokens!.length, sample.tokenIds.length);
    assert.deepEqual(
      lp.tokens,
      sample.tokenIds.map((id) => f.model.tokenizer.tokenString(id)),
    );
    const prompt = f.model.tokenizer.encode('Once upon a time');
    const ref = await reference([...prompt, ...sample.tokenIds], steer);
    sample.tokenIds.forEach((id, k) => {
      const row = ref[prompt.length + k - 1]!;
      assert.ok(
        Math.abs(lp.token_logprobs![k]! - row[id]!) < 1e-3,
        `token ${k}: ${lp.token_logprobs![k]} vs ${row[id]}`,
      );
      const top = lp.top_logprobs![k]!;
      assert.ok(Object.keys(top).length >= 3 && Object.keys(top).length <= 4, JSON.stringify(top));
      assert.ok(lp.tokens![k]! in top, 'the chosen token is always listed');
      const best = Math.max(...row);
      assert.ok(Math.abs(Math.max(...Object.values(top)) - best) < 1e-3, 'the most likely token is listed');
    });
    assert.equal(lp.text_offset![0], 0);

    const stream = (await client.completions.create({ ...body, stream: true })) as any as AsyncIterable<any>;
    const tokens: string[] = [];
    const values: number[] = [];
    let text = '';
    for await (const chunk of stream) {
      const ch = chunk.choices[0];
      if (!ch) continue;
      text += ch.text;
      tokens.push(...(ch.logprobs?.tokens ?? []));
      values.push(...((ch.logprobs?.token_logprobs ?? []) as number[]));
    }
    assert.equal(text, c.choices[0]!.text);
    assert.deepEqual(tokens, lp.tokens);
    assert.deepEqual(values, lp.token_logprobs);
  });

  test('echo: the prompt back with its log-probabilities (null first), max_tokens 0 as lm-eval-harness asks', async () => {
    const ids = f.model.tokenizer.encode('The little dog ran home');
    const steer = { 'style.formal': 2 };
    const c = await client.completions.create({
      model: 'tiny-steered',
      prompt: ids,
      max_tokens: 0,
      echo: true,
      logprobs: 1,
      temperature: 0,
      steer,
    } as any);
    const lp = c.choices[0]!.logprobs!;
    assert.equal(c.choices[0]!.text, f.model.tokenizer.decode(ids));
    assert.equal(c.usage!.completion_tokens, 0);
    assert.equal(lp.token_logprobs![0], null);
    assert.equal(lp.top_logprobs![0], null);
    assert.equal(lp.tokens!.length, ids.length);
    const ref = await reference(ids, steer);
    for (let t = 1; t < ids.length; t++) assert.ok(Math.abs(lp.token_logprobs![t]! - ref[t - 1]![ids[t]!]!) < 1e-5);

    // Echo with generated tokens: prompt text + continuation; the prompt's logprobs, then the new tokens'.
    const both = await client.completions.create({
      prompt: 'The little dog',
      max_tokens: 3,
      echo: true,
      logprobs: 0,
      seed: 1,
    } as any);
    const ch = both.choices[0]!;
    assert.ok(ch.text.startsWith('The little dog'));
    const promptLen = f.model.tokenizer.encode('The little dog').length;
    assert.equal(ch.logprobs!.tokens!.length, promptLen + both.usage!.completion_tokens);
    assert.equal(ch.logprobs!.text_offset![promptLen], 'The little dog'.length);
    const streamed: string[] = [];
    for await (const chunk of (await client.completions.create({
      prompt: 'The little dog',
      max_tokens: 3,
      echo: true,
      seed: 1,
      stream: true,
    } as any)) as any as AsyncIterable<any>)
      streamed.push(chunk.choices[0]?.text ?? '');
    assert.equal(streamed.join(''), ch.text);
    const noEcho = await postJson(`${f.url}/v1/completions`, { prompt: 'x', max_tokens: 0 });
    assert.equal(noEcho.status, 400);
    assert.equal(noEcho.json.error.param, 'max_tokens');
  });

  test('chat logprobs / top_logprobs, streamed or not; top_logprobs needs logprobs', async () => {
    const body = {
      model: 'tiny-steered',
      messages: [{ role: 'user' as const, content: 'Tell me a story' }],
      max_tokens: 10,
      seed: 3,
      logprobs: true,
      top_logprobs: 2,
    };
    const c = await client.chat.completions.create(body);
    const content = c.choices[0]!.logprobs!.content!;
    assert.equal(content.length, c.usage!.completion_tokens);
    for (const e of content) {
      assert.equal(e.top_logprobs.length, 2);
      assert.ok(e.top_logprobs[0]!.logprob >= e.top_logprobs[1]!.logprob);
      assert.ok(e.logprob <= e.top_logprobs[0]!.logprob + 1e-9);
      assert.deepEqual(e.bytes, [...Buffer.from(e.token, 'utf8')]);
    }
    const streamed: typeof content = [];
    for await (const chunk of await client.chat.completions.create({ ...body, stream: true }))
      streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    assert.deepEqual(streamed, content);
    const plain = await client.chat.completions.create({ ...body, logprobs: undefined, top_logprobs: undefined });
    assert.equal(plain.choices[0]!.logprobs, null);
    await assert.rejects(
      client.chat.completions.create({ ...body, logprobs: false }),
      (e: any) => e.status === 400 && e.param === 'top_logprobs',
    );
  });

  test('presence and frequency penalties sample as generate() does with them', async () => {
    const body = { prompt: 'Once upon a time', max_tokens: 40, seed: 8, presence_penalty: 1.5, frequency_penalty: 1 };
    const c = await client.completions.create({ model: 'tiny-steered', ...body });
    const want = await sampleAlone('Once upon a time', {}, 8, 40, { presencePenalty: 1.5, frequencyPenalty: 1 });
    assert.equal(c.choices[0]!.text, want.text);
    const plain = await sampleAlone('Once upon a time', {}, 8, 40);
    assert.notEqual(want.text, plain.text, 'the penalties change nothing here; pick another prompt');
    await assert.rejects(
      client.completions.create({ model: 'tiny-steered', ...body, presence_penalty: 2.5 }),
      (e: any) => e.status === 400 && e.param === 'presence_penalty',
    );
  });

  test('models: list and retrieve by served name; other names are 404 model_not_found', async () => {
    assert.deepEqual(
      (await client.models.list()).data.map((m) => m.id),
      ['tiny-steered', 'alias'],
    );
    const m = await client.models.retrieve('alias');
    assert.equal(m.id, 'alias');
    assert.equal(m.object, 'model');
    await assert.rejects(client.models.retrieve('gpt-4'), (e: any) => e.status === 404 && e.code === 'model_not_found');
    await assert.rejects(
      client.completions.create({ model: f.model.id, prompt: 'x', max_tokens: 1 }),
      (e: any) => e.status === 404 && e.code === 'model_not_found' && e.param === 'model',
    );
  });

  test('steer values beyond --max-steer-value are a 400 naming the field', async () => {
    const ok = await postJson(`${f.url}/v1/completions`, { prompt: 'x', max_tokens: 1, steer: { sentiment: 50 } });
    assert.equal(ok.status, 200);
    const big = await postJson(`${f.url}/v1/completions`, { prompt: 'x', max_tokens: 1, steer: { sentiment: -51 } });
    assert.equal(big.status, 400);
    assert.equal(big.json.error.param, 'steer.sentiment');
    assert.match(big.json.error.message, /±50/);
  });

  test('CORS: preflight and headers for the --cors origin only', async () => {
    const pre = await fetch(`${f.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: {
        Origin: ORIGIN,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'authorization, content-type, x-stainless-os',
      },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(pre.headers.get('access-control-allow-methods')!, /POST/);
    assert.equal(pre.headers.get('access-control-allow-headers'), 'authorization, content-type, x-stainless-os');
    const r = await postJson(`${f.url}/v1/completions`, { prompt: 'Hi', max_tokens: 2 }, { Origin: ORIGIN });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN);
    const err = await postJson(`${f.url}/v1/completions`, { prompt: 'Hi', max_tokens: -1 }, { Origin: ORIGIN });
    assert.equal(err.status, 400);
    assert.equal(err.headers.get('access-control-allow-origin'), ORIGIN, 'a page can read its errors');
    const other = await fetch(`${f.url}/v1/models`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example' } });
    assert.equal(other.status, 403);
    assert.equal(other.headers.get('access-control-allow-origin'), null);
    const plain = await fetch(`${f.url}/v1/models`);
    assert.equal(plain.headers.get('access-control-allow-origin'), null, 'no Origin, no CORS headers');
  });

  test('every 4xx carries the OpenAI error body, including the ones Node answers itself', async () => {
    const shape = (body: any) => {
      assert.equal(typeof body.error.message, 'string');
      assert.equal(typeof body.error.type, 'string');
      assert.ok('code' in body.error && 'param' in body.error, JSON.stringify(body));
    };
    for (const [path, init, status] of [
      ['/v1/nothing', {}, 404],
      ['/v1/completions', {}, 405],
      ['/v1/models', { method: 'POST' }, 405],
      ['/v1/models/none', {}, 404],
      ['/v1/completions', { method: 'POST', body: '{' }, 400],
      ['/v1/completions', { method: 'POST', body: JSON.stringify({ prompt: 'x', n: 0 }) }, 400],
      ['/v1/steers/none', {}, 404],
      ['/v1/models', { headers: { Origin: 'http://evil.example' } }, 403],
    ] as const) {
      const r = await fetch(`${f.url}${path}`, init as RequestInit);
      assert.equal(r.status, status, path);
      shape(await r.json());
    }
    const raw = await new Promise<string>((resolve, reject) => {
      const s = connect(f.server.port, '127.0.0.1', () =>
        s.write('GET / HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n'),
      );
      let got = '';
      s.on('data', (d) => (got += d));
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 400/);
    shape(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)));
  });
});

test('request defaults come from generation_config.json, under request fields', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-gencfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(modelPath(), dir, { recursive: true });
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ do_sample: false, max_new_tokens: 7 }));
  const model = await loadModel(dir, { cacheDir: false, threads: 1 });
  const server = await startServer(model, SteerSet.empty(), { port: 0 });
  t.after(async () => {
    await server.close();
    model.close();
  });
  const [greedy] = await generate(model.decoder, model.tokenizer, [{ prompt: 'Once' }], {
    maxNewTokens: 7,
    temperature: 0,
  });
  const r = await postJson(`${server.url}/v1/completions`, { prompt: 'Once', seed: 123 });
  assert.equal(r.json.choices[0].text, greedy!.samples[0]!.text, 'greedy, 7 tokens: the file says so');
  assert.equal(r.json.usage.completion_tokens, greedy!.samples[0]!.tokenIds.length);
  assert.deepEqual(server.generationNotes, ['greedy (do_sample false)', 'max_new_tokens 7']);
  const [sampled] = await generate(model.decoder, model.tokenizer, [{ prompt: 'Once', seed: 123 }], {
    maxNewTokens: 7,
    temperature: 1,
  });
  const s = await postJson(`${server.url}/v1/completions`, { prompt: 'Once', seed: 123, temperature: 1 });
  assert.equal(s.json.choices[0].text, sampled!.samples[0]!.text, 'a request field wins');
});
