import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/runtime/loadModel.js';
import { hashExamples, type Dataset } from '../../src/train/data.js';
import { limitDataset, runTraining } from '../../src/train/run.js';
import { heldOutLoss } from '../../src/train/steerLoss.js';
import { initProjectors } from '../../src/train/trainLoop.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const dataset = (labels: number[]): Dataset => {
  const examples = labels.map((label, i) => ({ text: `t${i}`, label, file: 'f', line: i + 1 }));
  return {
    examples,
    summary: { files: [], perLabel: [], total: examples.length, balancing: 'not balanced' },
    hash: hashExamples(examples),
  };
};

test('limitDataset: a seeded random subset in file order, every label kept, summary and hash updated', () => {
  const ds = dataset([...Array(50).fill(-1), ...Array(50).fill(1)]);
  const a = limitDataset(ds, 10, 0);
  assert.equal(a.examples.length, 10);
  assert.deepEqual(a.examples, limitDataset(ds, 10, 0).examples);
  assert.notDeepEqual(a.examples, limitDataset(ds, 10, 1).examples);
  const lines = a.examples.map((e) => e.line);
  assert.deepEqual(
    lines,
    [...lines].sort((x, y) => x - y),
  );
  assert.deepEqual(
    a.summary.perLabel.map((p) => p.label),
    [-1, 1],
    'not just the first file’s label',
  );
  assert.equal(a.hash, hashExamples(a.examples));
  assert.equal(limitDataset(ds, 500, 0), ds);
  assert.throws(() => limitDataset(ds, 0, 0), /--limit/);
});

test(
  'runTraining: the disk cache is filled once and reused; memory mode extracts per batch',
  { skip: skipUnlessShared('models/stories260K/hf') },
  async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'lmsteer-run-'));
    const data = join(tmp, 'd.jsonl');
    writeFileSync(
      data,
      ['happy day', 'sad day', 'a fun game', 'a bad cold', 'we laughed', 'he cried']
        .map((text, i) => JSON.stringify({ text, label: i % 2 ? 'neg' : 'pos' }))
        .join('\n'),
    );
    const model = await loadModel(sharedPath('models/stories260K/hf')!, { cacheDir: join(tmp, 'graphs'), threads: 1 });
    try {
      const base = {
        model: model.id,
        loaded: model,
        data: [data],
        progress: false,
        log: () => {},
        train: { rank: 2, batchSize: 2, steps: 4 },
      };
      const a = await runTraining({ ...base, outDir: join(tmp, 'a'), cacheDir: join(tmp, 'hidden') });
      assert.equal(a.extraction.texts, 6);
      assert.equal(a.training.steps, 4);
      const b = await runTraining({ ...base, outDir: join(tmp, 'b'), cacheDir: join(tmp, 'hidden') });
      assert.equal(b.extraction.texts, 0, 'second run reads the cache');
      assert.deepEqual(b.result.steer.p1.data, a.result.steer.p1.data, 'same data, same seed, same steer');
      const c = await runTraining({ ...base, outDir: join(tmp, 'c'), cacheDir: false });
      assert.equal(c.extraction.texts, 6);
      assert.deepEqual(c.result.steer.p1.data, a.result.steer.p1.data, 'cache or not, the same steer');
      const cfg = JSON.parse(readFileSync(join(tmp, 'a', 'steer.json'), 'utf8'));
      assert.equal(cfg.baseModel.embeddingFingerprint, model.fingerprint());
      assert.match(cfg.training.hiddenStates, /^hid1-/);
      assert.equal(cfg.training.dataset, data);
    } finally {
      model.close();
    }
  },
);

test(
  'runTraining --include-padding: the first step’s loss is the reference loss of that batch (steerLoss, masked pads); the held-out diagnostic',
  { skip: skipUnlessShared('models/stories260K/hf') },
  async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'lmsteer-run-pad-'));
    const data = join(tmp, 'd.jsonl');
    const texts = [
      'happy day',
      'a very sad and long rainy day',
      'a fun game',
      'bad',
      'we laughed and played',
      'he cried',
    ];
    writeFileSync(data, texts.map((text, i) => JSON.stringify({ text, label: i % 2 ? 'neg' : 'pos' })).join('\n'));
    const model = await loadModel(sharedPath('models/stories260K/hf')!, { cacheDir: join(tmp, 'graphs'), threads: 1 });
    try {
      const train = { rank: 2, batchSize: 6, steps: 2, includePadding: true, seed: 3 };
      const base = { model: model.id, loaded: model, data: [data], progress: false, log: () => {}, train };
      const a = await runTraining({ ...base, outDir: join(tmp, 'a'), cacheDir: join(tmp, 'hidden') });
      // Step 1 sees the initial steer on one batch of all six texts: exactly steerLoss's include convention.
      const S = 2;
      const d = model.cfg.hiddenSize;
      const init = initProjectors(S, d, 2, 1e-2, 3);
      const steer = { config: a.result.steer.config, ...init };
      const labels = texts.map((_, i) => (i % 2 ? -1 : 1));
      const ref = await heldOutLoss(
        model,
        steer,
        texts.map((text, i) => ({ text, label: labels[i]! })),
        { slot: 'value', batchSize: 6, threads: 1 },
      );
      const first = a.result.history[0]!;
      assert.equal(first.tokens, ref.include.nTargets, 'all B·(T−1) positions');
      assert.ok(Math.abs(first.loss - ref.include.ce) < 1e-5, `${first.loss} vs ${ref.include.ce}`);
      assert.ok(ref.include.nTargets > ref.exclude.nTargets);
      // Cached pad rows: a second run extracts nothing and learns the same steer; memory mode too.
      const b = await runTraining({ ...base, outDir: join(tmp, 'b'), cacheDir: join(tmp, 'hidden') });
      assert.equal(b.extraction.texts, 0);
      assert.deepEqual(b.result.steer.p1.data, a.result.steer.p1.data);
      const c = await runTraining({ ...base, outDir: join(tmp, 'c'), cacheDir: false, holdout: 2 });
      assert.equal(c.dataset.examples.length, 4);
      assert.ok(c.heldOut && c.heldOut.texts === 2);
      const cfg = JSON.parse(readFileSync(join(tmp, 'c', 'steer.json'), 'utf8'));
      assert.equal(cfg.metrics.heldOut.texts, 2);
      assert.ok(Number.isFinite(cfg.metrics.heldOut.exclude.ceOff));
    } finally {
      model.close();
    }
  },
);
