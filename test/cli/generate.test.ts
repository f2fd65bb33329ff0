/** `lmsteer generate` and `lmsteer inspect` as a user runs them, on the real stories260K. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const skip = skipUnlessShared('models/stories260K/hf');
const model = () => sharedPath('models/stories260K/hf')!;
const cacheEnv = () => ({ LMSTEER_CACHE: mkdtempSync(join(tmpdir(), 'lmsteer-cache-')) });

test('generate --json: greedy text and ids match the documented stories260K output', { skip }, async () => {
  const expected = JSON.parse(readFileSync(sharedPath('models/stories260K/expected.json')!, 'utf8')).greedy_from_bos;
  const r = await runCli(['generate', '--model', model(), '--ids', '1', '-t', '0', '-n', '64', '--json'], {
    env: cacheEnv(),
  });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.model, model());
  assert.deepEqual(out.samples[0].token_ids, expected.ids);
  assert.equal(out.samples[0].text, expected.text);
});

test('generate: streams text; the same seed gives the same samples', { skip }, async () => {
  const env = cacheEnv();
  const a = await runCli(
    ['generate', '--model', model(), '--prompt', 'The cat', '-n', '20', '--seed', '5', '--num-samples', '3', '--json'],
    { env },
  );
  const b = await runCli(
    ['generate', '--model', model(), '--prompt', 'The cat', '-n', '20', '--seed', '5', '--num-samples', '3', '--json'],
    { env },
  );
  assert.equal(a.code, 0, a.stderr);
  assert.deepEqual(JSON.parse(a.stdout).samples, JSON.parse(b.stdout).samples);
  assert.equal(JSON.parse(a.stdout).samples.length, 3);
  const s = await runCli(['generate', '--model', model(), '--prompt', 'The cat', '-n', '10', '-t', '0'], { env });
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^The cat\S*\s.+/);
  assert.match(s.stderr, /weights in fp32: its float32 weights \(.+\) fit in 25% of this machine's/);
});

test('generate --dtype q8 --head q8 --verbose: quantized text, the load told (cold, then warm)', { skip }, async () => {
  const env = cacheEnv();
  const args = ['generate', '--model', model(), '--prompt', 'The cat', '-n', '10', '-t', '0', '--dtype', 'q8'];
  const cold = await runCli([...args, '--head', 'q8', '--verbose'], { env });
  assert.equal(cold.code, 0, cold.stderr);
  assert.match(cold.stdout, /^The cat\S*\s.+/);
  assert.match(
    cold.stderr,
    /load .* s, cold \(graph built\), .*graph .* on disk, peak RSS .* after the build, peak RSS/,
  );
  assert.doesNotMatch(cold.stderr, /weights in/, 'a dtype given is not announced');
  // A cold load tells its build as it goes (stderr is no terminal here: a line when it starts, one when it ends).
  assert.match(
    cold.stderr,
    /lmsteer: building the graph \([\d.]+ [KMG]iB of weights; first load of this model in this precision, kept in .+\) …\nlmsteer: graph built in [\d.]+ s; opening it …\n/,
  );
  const warm = await runCli([...args, '--head', 'q8', '--verbose'], { env });
  assert.match(warm.stderr, /warm \(graph from the cache\)/);
  assert.doesNotMatch(warm.stderr, /building the graph/, 'a warm load builds nothing');
  assert.equal(warm.stdout, cold.stdout);
});

test('generate --no-prepack (fp32): the same greedy text; refused for a quantized body', { skip }, async () => {
  const env = cacheEnv();
  const args = ['generate', '--model', model(), '--prompt', 'The cat', '-n', '16', '-t', '0', '--num-samples', '2'];
  const packed = await runCli(args, { env });
  const unpacked = await runCli([...args, '--no-prepack'], { env });
  assert.equal(unpacked.code, 0, unpacked.stderr);
  assert.equal(unpacked.stdout, packed.stdout);
  const q8 = await runCli([...args, '--no-prepack', '--dtype', 'q8'], { env });
  assert.equal(q8.code, 2);
  assert.match(q8.stderr, /^lmsteer: --no-prepack is for float32 graphs; .* would load in q8 \(q8 head\)/);
  assert.match(q8.stderr, /hint: add --dtype fp32 --head fp32, or leave out --no-prepack/);
});

test('inspect --json: per-token log-probs, top-5, and the last hidden state and logits', { skip }, async () => {
  const r = await runCli(['inspect', '--model', model(), '--prompt', 'Once upon a time', '--json'], {
    env: cacheEnv(),
  });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(
    out.tokens.map((t: { id: number }) => t.id),
    [1, 403, 407, 261, 378],
  );
  assert.equal(out.tokens[0].logprob, null);
  assert.ok(out.tokens.slice(1).every((t: { logprob: number }) => t.logprob < 0));
  assert.equal(out.tokens[1].top.length, 5);
  assert.equal(out.hidden.length, 64);
  assert.equal(out.logits.length, 512);
});

test('bad input: clear messages and exit code 2', { skip }, async () => {
  const env = cacheEnv();
  const cases: [string[], RegExp][] = [
    [['generate', '--model', model(), '--prompt', ''], /--prompt is empty/],
    [['generate', '--model', model(), '--prompt', 'x', '-n', '0'], /--max-new-tokens must be an integer from 1/],
    [['generate', '--model', model(), '--prompt', 'x', '-n', '100000'], /max|position|limit/i],
    [['generate', '--model', model(), '--prompt', 'x', '--temperature', 'NaN'], /--temperature must be a number/],
    [['generate', '--model', model(), '--prompt', 'x', '--value', 'a=1'], /no --steer/],
    [['generate', '--model', '/nonexistent/model', '--prompt', 'x'], /does not exist/],
    [['inspect', '--model', model(), '--ids', '1,99999'], /outside the vocabulary/],
    [
      ['generate', '--model', model(), '--prompt', 'x', '--dtype', 'int3'],
      /--dtype "int3" is not a weight precision[\s\S]*fp32, q8, q4/,
    ],
    [
      ['generate', '--model', model(), '--prompt', 'x', '--head', 'q2'],
      /--head "q2" is not an LM head precision[\s\S]*fp32, q8, q4 \(fp32: the exact steer; q8: .*~1%; q4: .*~10%\)/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCli(args, { env });
    assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(' '));
  }
});

test('offline with an empty Hugging Face cache: the default is the embedded stories260K; a hub id says what to do', async () => {
  const home = mkdtempSync(join(tmpdir(), 'lmsteer-hf-'));
  const env = { HF_HOME: home, HF_HUB_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:9', ...cacheEnv() };
  const r = await runCli(['generate', '--ids', '1', '-t', '0', '-n', '64', '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.model, 'stories260K');
  // llama2.c's doc/stories260K.md, greedy from BOS
  assert.match(
    out.samples[0].text,
    /^Once upon a time, there was a little girl named Lily\. She loved to play outside/,
  );
  const expected = sharedPath('models/stories260K/expected.json');
  if (expected) {
    const greedy = JSON.parse(readFileSync(expected, 'utf8')).greedy_from_bos;
    assert.deepEqual(out.samples[0].token_ids, greedy.ids);
  }
  const hub = await runCli(['generate', '--model', 'gpt2', '--prompt', 'Once upon a time'], { env });
  assert.equal(hub.code, 2, hub.stderr);
  assert.match(hub.stderr, /--model stories260K/);
});
