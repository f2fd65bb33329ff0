/**
 * Continuous batching end to end: 16 concurrent streaming requests with different steers, seeds, prompts,
 * lengths and n (more rows than the batch holds, so rows join and leave mid-flight) return exactly the texts
 * the same requests give one at a time, and the server stays up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { postJson, postStream, serve, skip, streamTexts } from './fixtures.js';

const PROMPTS = [
  'Once upon a time',
  'The dog',
  'Lily and Ben went to the park. They saw',
  'One day',
  'Tom had a red ball.',
];

function requests(): { path: string; body: any }[] {
  return Array.from({ length: 16 }, (_, i) => {
    const steer = [
      { sentiment: (i % 11) - 5 },
      { 'style.formal': i / 4, 'style.casual': -i / 5 },
      {},
      { sentiment: 0, style: undefined },
    ][i % 4];
    const cleaned = Object.fromEntries(Object.entries(steer).filter(([, v]) => v !== undefined));
    const common = {
      max_tokens: 12 + ((i * 7) % 40),
      seed: 100 + i,
      temperature: 0.9,
      top_k: i % 3 === 0 ? 20 : 0,
      top_p: i % 5 === 0 ? 0.9 : 1,
      n: i % 6 === 0 ? 2 : 1,
      steer: cleaned,
      stream: true,
    };
    return i % 5 === 4
      ? {
          path: '/v1/chat/completions',
          body: { ...common, messages: [{ role: 'user', content: PROMPTS[i % PROMPTS.length] }] },
        }
      : { path: '/v1/completions', body: { ...common, prompt: PROMPTS[i % PROMPTS.length] } };
  });
}

test(
  '16 concurrent streaming requests with different steers and seeds give the texts each gives alone',
  { skip },
  async () => {
    const f = await serve({ maxBatch: 8 });
    try {
      const reqs = requests();
      const together = await Promise.all(reqs.map((r) => postStream(f.url + r.path, r.body)));
      const alone = [];
      for (const r of reqs) alone.push(await postStream(f.url + r.path, r.body));
      for (const [i, s] of together.entries()) {
        assert.equal(s.status, 200, `request ${i}: ${JSON.stringify(s.events[0])}`);
        assert.ok(s.done, `request ${i} has no [DONE]`);
        assert.deepEqual(streamTexts(s.events), streamTexts(alone[i]!.events), `request ${i} differs`);
      }
      // the steers made a difference (same seed and prompt, other values → other text)
      const a = await postJson(`${f.url}/v1/completions`, {
        prompt: 'Once upon a time',
        max_tokens: 30,
        seed: 1,
        steer: { sentiment: 5 },
      });
      const b = await postJson(`${f.url}/v1/completions`, {
        prompt: 'Once upon a time',
        max_tokens: 30,
        seed: 1,
        steer: { sentiment: -5 },
      });
      assert.notEqual(a.json.choices[0].text, b.json.choices[0].text);
      const health = await (await fetch(`${f.url}/health`)).json();
      assert.deepEqual([health.status, health.active, health.queued], ['ok', 0, 0]);
    } finally {
      await f.close();
    }
  },
);
