import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LinearClassifierScorer,
  linearTokens,
  loadLinearClassifier,
  loadLinearScorer,
  saveLinearClassifier,
  trainLinearClassifier,
  type LabeledText,
} from '../../../src/eval/scorers/linearClassifier.js';
import { LmSteerError } from '../../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../../helpers/shared.js';

const SST2 = 'data/sentiment/sst2_glue';

function readSst2(file: string): LabeledText[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .slice(1) // header: label<TAB>sentence
    .filter((l) => l.length > 0)
    .map((l) => {
      const tab = l.indexOf('\t');
      return { label: Number(l.slice(0, tab)) as 0 | 1, text: l.slice(tab + 1) };
    });
}

test('linearTokens: lowercases and splits contractions the PTB way, so raw text matches SST tokens', () => {
  assert.deepEqual(linearTokens("I DON'T like it's ending"), ['i', 'do', "n't", 'like', 'it', "'s", 'ending']);
  assert.deepEqual(linearTokens("does n't work , it 's bad"), ['does', "n't", 'work', 'it', "'s", 'bad']);
  assert.deepEqual(linearTokens('can’t'), ['ca', "n't"]);
  assert.deepEqual(linearTokens(''), []);
});

test(
  'linear classifier trained on 6000 SST-2 rows gets > 75% on SST-2 dev; save/load round-trips',
  { skip: skipUnlessShared(SST2, 'train.tsv') },
  async () => {
    const train = readSst2(sharedPath(SST2, 'train.tsv')!).slice(0, 6000);
    const dev = readSst2(sharedPath(SST2, 'dev.tsv')!);
    assert.equal(dev.length, 872);
    const model = trainLinearClassifier(train, { seed: 1 });
    assert.equal(model.training.trainExamples, 5400);
    assert.equal(model.training.heldOutExamples, 600);
    assert.ok(model.training.heldOutAccuracy! > 0.7, `held-out accuracy ${model.training.heldOutAccuracy}`);
    assert.ok(model.training.converged);
    const scorer = new LinearClassifierScorer(model);
    const p = await scorer.score(dev.map((d) => d.text));
    const acc = p.filter((x, i) => (x > 0.5 ? 1 : 0) === dev[i]!.label).length / dev.length;
    assert.ok(acc > 0.75, `dev accuracy ${acc}`);
    assert.equal(scorer.attribute, 'positive-sentiment');

    const dir = mkdtempSync(join(tmpdir(), 'linear-'));
    saveLinearClassifier(join(dir, 'm.json'), model);
    const loaded = await loadLinearScorer(join(dir, 'm.json'));
    assert.equal(loaded.version, scorer.version);
    assert.deepEqual(await loaded.score(dev.slice(0, 20).map((d) => d.text)), p.slice(0, 20));
  },
);

test('linear classifier: same seed, same model; another seed, another split', () => {
  const ex: LabeledText[] = [];
  for (let i = 0; i < 40; i++)
    ex.push({ text: `good great fine ${i % 3}`, label: 1 }, { text: `bad awful poor ${i % 3}`, label: 0 });
  const a = trainLinearClassifier(ex, { seed: 7, heldOutFraction: 0.25 });
  const b = trainLinearClassifier(ex, { seed: 7, heldOutFraction: 0.25 });
  const c = trainLinearClassifier(ex, { seed: 8, heldOutFraction: 0.25 });
  assert.deepEqual(a, b);
  assert.equal(a.training.heldOutAccuracy, 1);
  assert.notDeepEqual(a.weights, c.weights);
  const s = new LinearClassifierScorer(a);
  assert.ok(s.probability('a great day') > 0.5);
  assert.ok(s.probability('awful') < 0.5);
});

test('linear classifier: bad labels are BAD_DATA naming the example; one class only is BAD_DATA; bad files are reported', async () => {
  assert.throws(
    () =>
      trainLinearClassifier([
        { text: 'x', label: 1 },
        { text: 'y', label: 2 as 0 },
      ]),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_DATA' && /example 1/.test(e.message),
  );
  assert.throws(
    () =>
      trainLinearClassifier(
        [
          { text: 'x', label: 1 },
          { text: 'y', label: 1 },
        ],
        { heldOutFraction: 0 },
      ),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_DATA',
  );
  const dir = mkdtempSync(join(tmpdir(), 'linear-'));
  await assert.rejects(
    loadLinearClassifier(join(dir, 'none.json')),
    (e: unknown) => e instanceof LmSteerError && e.code === 'NOT_FOUND',
  );
  writeFileSync(join(dir, 'x.json'), JSON.stringify({ format: 'lmsteer-linear/1', attribute: 'a' }));
  await assert.rejects(
    loadLinearClassifier(join(dir, 'x.json')),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE' && /x\.json: field/.test(e.message),
  );
});
