/**
 * The library's front door (src/api/model.ts) on the embedded stories260K, offline: every verb agrees with the
 * lower-level modules it wraps.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model } from '../../src/api/model.js';
import { generate } from '../../src/runtime/generate.js';
import { LmSteerError } from '../../src/util/errors.js';

const HUB_CLOSED = { offline: true };
let model: Model;
let tmp = '';

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'lmsteer-api-'));
  model = await Model.open(undefined, { cacheDir: join(tmp, 'cache'), threads: 1, hub: HUB_CLOSED });
});
after(() => {
  model.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('generate / generateMany / steered / stream agree with generate() and with each other', async () => {
  const mood = model.steers('stories260K-sentiment');
  const opts = { seed: 3, maxNewTokens: 16 };
  const plain = await model.generate('Once upon a time', opts);
  const [low] = await generate(model.loaded.decoder, model.tokenizer, [{ prompt: 'Once upon a time', seed: 3 }], {
    maxNewTokens: 16,
  });
  assert.equal(plain, low!.samples[0]!.text);
  const happy = await model.generate('Once upon a time', { ...opts, steers: mood, values: { sentiment: 12 } });
  assert.notEqual(happy, plain, 'the steer changes the text');
  assert.equal(await model.steered(mood, { sentiment: 12 }).generate('Once upon a time', opts), happy);
  // every slot at 0: the base model exactly
  assert.equal(await model.generate('Once upon a time', { ...opts, steers: mood, values: { sentiment: 0 } }), plain);
  // per-row values in one batch
  const both = await model.generateMany(
    [
      { prompt: 'Once upon a time', seed: 3, values: { sentiment: 12 } },
      { prompt: 'Once upon a time', seed: 3, values: { sentiment: 0 } },
    ],
    { maxNewTokens: 16, steers: mood },
  );
  assert.deepEqual(
    both.map((r) => r.samples[0]!.text),
    [happy, plain],
  );
  let streamed = '';
  for await (const piece of model.steered(mood, { sentiment: 12 }).stream('Once upon a time', opts)) streamed += piece;
  assert.equal(streamed, happy);
  await assert.rejects(
    model.generate('x', { values: { sentiment: 1 } }),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT',
  );
});

test('inspect: per-token log-probabilities; the steer moves them', async () => {
  const mood = model.steers('stories260K-sentiment');
  const a = await model.inspect('Once upon a time there was a happy girl');
  const b = await model.inspect('Once upon a time there was a happy girl', { steers: mood, values: { sentiment: 12 } });
  assert.equal(a.tokens.length, b.tokens.length);
  assert.equal(a.tokens[0]!.logprob, null);
  assert.ok(a.tokens.slice(1).every((t) => t.logprob !== null && t.logprob <= 0));
  assert.notDeepEqual(a.logits, b.logits);
  assert.deepEqual(a.hidden, b.hidden, 'hidden is the unsteered state');
});

test('trainSteer on labelled texts (20 steps) → a steer that loads and steers; evaluate and explain it', async () => {
  const pos = [
    'she was so happy and glad',
    'a lovely kind sunny day',
    'they laughed and smiled',
    'what a fun happy game',
  ];
  const neg = ['he was sad and angry', 'a dark cold scary night', 'they cried and yelled', 'what a mean bad day'];
  const data = [...pos.map((text) => ({ text, label: 1 })), ...neg.map((text) => ({ text, label: -1 }))];
  const out = join(tmp, 'mood');
  const steps: number[] = [];
  const { steers, run } = await model.trainSteer({
    data,
    outDir: out,
    train: { slotName: 'mood', steps: 20, rank: 4, batchSize: 8, dummySlot: false },
    cacheDir: false,
    onProgress: (p) => steps.push(p.step),
  });
  assert.equal(steps.length, 20);
  assert.ok(existsSync(join(out, 'steer.json')) && existsSync(join(out, 'train.jsonl')));
  assert.ok(Number.isFinite(run.finalLoss));
  assert.deepEqual(steers.names(), ['mood']);
  const text = await model.generate('Once upon a time', { steers, values: { mood: 50 }, seed: 1, maxNewTokens: 12 });
  assert.equal(typeof text, 'string');

  const evalDir = join(tmp, 'eval');
  const r = await model.evaluate({
    prompts: ['Once upon a time', 'The little dog'],
    outDir: evalDir,
    steers,
    sweep: { name: 'mood', values: [-20, 20] },
    samples: 2,
    maxNewTokens: 8,
    scorer: 'vader',
    baseline: false,
  });
  assert.equal(r.settings.length, 2);
  assert.ok(existsSync(r.files.reportMd));
  assert.match(readFileSync(r.files.reportMd, 'utf8'), /mood=-20/);

  const dims = model.explainDims(steers, 'mood', { dims: 2, top: 3 });
  assert.equal(dims.dims.length, 2);
  const ex = await model.explainText(steers, 'mood', 'she was so happy and glad', { grid: [-1, 0, 1] });
  assert.equal(ex.slot, 'mood');
});
