import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { explainSteerDims } from '../../src/lens/explain.js';
import { loadModel, type LoadedModel } from '../../src/runtime/loadModel.js';
import { packSteers, steerInputs } from '../../src/steer/pack.js';
import type { Steer } from '../../src/steer/steer.js';
import { loadSteer, saveSteer } from '../../src/steer/steerFile.js';
import { transferSteerBetweenModels } from '../../src/transfer/run.js';
import {
  boostSteer,
  disjointVocabDir,
  meanHiddenDirection,
  randomLlamaDir,
  removeTempDirs,
  tempDir,
  widenedStoriesDir,
} from '../helpers/lensFixtures.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';
import { randomSteer } from '../steer/randomSteer.js';

const skip = skipUnlessShared('models/stories260K/hf');
const HAPPY = 393; // ' happy'
const TEXTS = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside.',
  'Tim was sad because his toy was broken. His mom said she would fix it.',
];
const opened: LoadedModel[] = [];
const open = async (dir: string) => {
  const m = await loadModel(dir, { cacheDir: false, threads: 1 });
  opened.push(m);
  return m;
};
let stories: LoadedModel;
let boost: Steer;

before(async () => {
  if (skip) return;
  stories = await open(sharedPath('models/stories260K/hf')!);
  boost = boostSteer(stories, HAPPY, await meanHiddenDirection(stories, TEXTS[0]!), { sigma: 2, withDummy: true });
});
after(() => {
  opened.forEach((m) => m.close());
  removeTempDirs();
});

/** Mean over positions of log p(token) with the steer's first slot at `value` (dummy at 1). */
async function meanLogProb(model: LoadedModel, steer: Steer, value: number, token: number): Promise<number> {
  const packed = packSteers([steer]);
  let sum = 0;
  let n = 0;
  for (const text of TEXTS) {
    const ids = model.tokenizer.encode(text);
    const out = await model.decoder.forward([ids], {
      steer: steerInputs(packed, [[steer.config.slots.map((s, k) => (k === 0 ? value : s.defaultValue))]]),
    });
    const V = model.cfg.vocabSize;
    for (let t = 0; t < ids.length; t++) {
      const row = out.logits.data.subarray(t * V, (t + 1) * V);
      const max = Math.max(...row);
      sum += row[token]! - max - Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
      n++;
    }
  }
  return sum / n;
}

test('a steer transferred from a model to itself comes back unchanged', { skip }, () => {
  const { steer, report } = transferSteerBetweenModels(boost, stories, stories, { sourcePath: '/somewhere/boost' });
  assert.ok(report.sharedTokens > 300, `shared ${report.sharedTokens}`);
  assert.ok(
    report.heldOutError! < 1e-5 && report.trainError < 1e-5,
    `errors ${report.heldOutError} ${report.trainError}`,
  );
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
  assert.ok(maxDiff(steer.p1.data, boost.p1.data) < 1e-4 && maxDiff(steer.p2.data, boost.p2.data) < 1e-4);
  assert.deepEqual(steer.config.slots, boost.config.slots);
  assert.equal(steer.config.eps, boost.config.eps);
  assert.equal(steer.config.baseModel.embeddingFingerprint, stories.fingerprint());
  assert.equal(steer.config.source?.kind, 'transfer');
  assert.equal(steer.config.source?.path, '/somewhere/boost');
});

test(
  'transfer to a random llama of another width: bound to it, fit error reported, loads and explains there',
  { skip },
  async () => {
    const b = await open(randomLlamaDir(sharedPath('models/stories260K/hf')!, { d: 48 }));
    const { steer, report } = transferSteerBetweenModels(boost, stories, b, { maxTrainTokens: 300, refineSteps: 1 });
    assert.deepEqual(steer.p1.shape, [2, 48, 1]);
    assert.ok(
      report.heldOutError !== null && report.heldOutError > 0.05 && report.heldOutError < 2,
      `a random model's embeddings fit poorly: ${report.heldOutError}`,
    );
    assert.equal(report.to.embeddingFingerprint, b.fingerprint());
    const src = steer.config.source!;
    assert.equal((src.fromModel as { embeddingFingerprint: string }).embeddingFingerprint, stories.fingerprint());
    assert.equal(src.heldOutError, report.heldOutError);
    assert.equal(src.sharedTokens, report.sharedTokens);
    const dir = join(tempDir(), 'moved');
    saveSteer(dir, steer);
    const back = loadSteer(dir, { expectFingerprint: b.fingerprint(), expectHiddenSize: 48 });
    assert.throws(() => loadSteer(dir, { expectFingerprint: stories.fingerprint() }), { code: 'MODEL_MISMATCH' });
    assert.equal(explainSteerDims(b, back, { dims: 1, top: 3 }).dims.length, 1);
  },
);

test(
  'the steered direction keeps its sign: a steer boosting " happy" on stories boosts it on a wider model',
  { skip },
  async () => {
    const { dir } = widenedStoriesDir(sharedPath('models/stories260K/hf')!, stories);
    const b = await open(dir);
    assert.equal(b.cfg.hiddenSize, 96);
    // The construction is right: B predicts like A (same logits) with other embeddings and width.
    const ids = stories.tokenizer.encode(TEXTS[1]!);
    const [la, lb] = [await stories.decoder.forward([ids]), await b.decoder.forward([ids])];
    la.logits.data.forEach((x, i) =>
      assert.ok(Math.abs(x - lb.logits.data[i]!) < 2e-3, `logit ${i}: ${x} vs ${lb.logits.data[i]}`),
    );

    const { steer, report } = transferSteerBetweenModels(boost, stories, b);
    assert.ok(
      report.heldOutError! < 1e-4,
      `B's embeddings are A's rescaled: the fit is exact (${report.heldOutError})`,
    );
    const gainA = (await meanLogProb(stories, boost, 0.5, HAPPY)) - (await meanLogProb(stories, boost, -0.5, HAPPY));
    const gainB = (await meanLogProb(b, steer, 0.5, HAPPY)) - (await meanLogProb(b, steer, -0.5, HAPPY));
    assert.ok(gainA > 1, `premise: the steer boosts " happy" on A (${gainA})`);
    assert.ok(gainB > 0.5, `transferred steer boosts " happy" on B (${gainB} nats, A: ${gainA})`);
  },
);

test(
  'transfer refuses models that share no vocabulary, and a steer from another model unless forced',
  { skip },
  async () => {
    const other = await open(disjointVocabDir());
    assert.throws(() => transferSteerBetweenModels(boost, stories, other), {
      code: 'MODEL_MISMATCH',
      message: /share no tokens/,
    });
    const foreign = randomSteer({ d: 64, rank: 2, slots: ['a'] });
    assert.throws(() => transferSteerBetweenModels(foreign, stories, stories), {
      code: 'MODEL_MISMATCH',
      message: /trained for test\/tiny/,
    });
    assert.equal(
      transferSteerBetweenModels(foreign, stories, stories, { force: true }).steer.config.baseModel
        .embeddingFingerprint,
      stories.fingerprint(),
    );
    assert.throws(
      () =>
        transferSteerBetweenModels(randomSteer({ d: 32, rank: 2, slots: ['a'] }), stories, stories, { force: true }),
      { code: 'MODEL_MISMATCH', message: /hidden size 32/ },
    );
  },
);

test(
  'a real sentiment steer moved to another model keeps its sign in VADER sentiment of generations',
  { skip },
  async (t) => {
    // The sentiment steer shipped in steers/ (trained on SST-2 for stories260K), moved to a 96-wide model whose
    // output embeddings are stories260K's under an unknown linear map; generations there must get more
    // positive (VADER) at +v than at −v, as they do on stories260K itself.
    const sentiment = loadSteer(join(process.cwd(), 'steers', 'stories260K-sentiment'), {
      expectFingerprint: stories.fingerprint(),
    });
    const { dir } = widenedStoriesDir(sharedPath('models/stories260K/hf')!, stories, { seed: 3 });
    const b = await open(dir);
    const { steer } = transferSteerBetweenModels(sentiment, stories, b);
    const { generate } = await import('../../src/runtime/generate.js');
    const { vaderCompound } = await import('../../src/eval/scorers/vader.js');
    const prompts = ['Once upon a time', 'The little dog', 'Tom went to the park', 'One day, Lily'];
    const meanCompound = async (m: LoadedModel, s: Steer, value: number) => {
      const packed = packSteers([s]);
      const scale = steerInputs(packed, [[[value]]]).scale.data as Float32Array;
      const results = await generate(
        m.decoder,
        m.tokenizer,
        prompts.map((prompt) => ({ prompt, numSamples: 12, steerScale: scale })),
        {
          maxNewTokens: 24,
          seed: 7,
          topK: 50,
          steer: { p1: packed.p1, p2t: packed.p2t },
        },
      );
      const scores = results.flatMap((r, i) => r.samples.map((x) => vaderCompound(prompts[i] + x.text)));
      return scores.reduce((a, x) => a + x, 0) / scores.length;
    };
    const onA = [await meanCompound(stories, sentiment, -8), await meanCompound(stories, sentiment, 8)];
    const onB = [await meanCompound(b, steer, -8), await meanCompound(b, steer, 8)];
    t.diagnostic(
      `mean VADER compound at −8 / +8: stories260K ${onA.map((x) => x.toFixed(3))}, moved to the 96-wide model ${onB.map((x) => x.toFixed(3))}`,
    );
    assert.ok(onA[1] - onA[0] > 0.1, `premise: the steer works on stories260K (${onA})`);
    assert.ok(
      onB[1] - onB[0] > 0.1,
      `the moved steer keeps its sign on the other model: VADER ${onB[0].toFixed(3)} at −8 vs ${onB[1].toFixed(3)} at +8 (stories260K: ${onA.map((x) => x.toFixed(3))})`,
    );
  },
);
