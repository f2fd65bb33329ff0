import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createScorer, describeScorers, SCORER_NAMES } from '../../../src/eval/scorers/registry.js';
import { saveLinearClassifier, trainLinearClassifier } from '../../../src/eval/scorers/linearClassifier.js';
import { LmSteerError } from '../../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../../helpers/shared.js';

const isErr = (code: string, re?: RegExp) => (e: unknown) =>
  e instanceof LmSteerError && e.code === code && (!re || re.test(e.message + ' ' + e.hint));

test('registry lists every scorer; unknown names and missing model paths are clear errors', async () => {
  assert.deepEqual([...SCORER_NAMES].sort(), ['linear', 'offensive-linear', 'onnx-classifier', 'perspective', 'vader']);
  assert.equal(describeScorers().length, 5);
  await assert.rejects(createScorer('toxic-bert'), isErr('NOT_FOUND', /choose one of: .*vader/));
  await assert.rejects(createScorer('constructor'), isErr('NOT_FOUND'));
  await assert.rejects(createScorer('offensive-linear'), isErr('BAD_ARGUMENT', /needs a model file/));
  await assert.rejects(createScorer('linear'), isErr('BAD_ARGUMENT'));
  await assert.rejects(createScorer('onnx-classifier'), isErr('BAD_ARGUMENT', /needs a model file/));
});

test('registry creates vader, linear and perspective scorers', async () => {
  const v = await createScorer('vader');
  assert.equal(v.name, 'vader');
  const dir = mkdtempSync(join(tmpdir(), 'reg-'));
  const ex = Array.from({ length: 20 }, (_, i) => ({
    text: i % 2 ? 'toxic rude' : 'kind nice',
    label: (i % 2) as 0 | 1,
  }));
  saveLinearClassifier(join(dir, 'm.json'), trainLinearClassifier(ex, { attribute: 'rudeness', heldOutFraction: 0 }));
  const l = await createScorer('linear', { modelPath: join(dir, 'm.json') });
  assert.equal(l.attribute, 'rudeness');
  assert.ok((await l.score(['rude']))[0]! > 0.5);
  const p = await createScorer('perspective', { perspective: { apiKey: 'x', endpoint: 'http://127.0.0.1:9/' } });
  assert.equal(p.attribute, 'toxicity');
});

test(
  'registry loads offensive-linear from the given path',
  { skip: skipUnlessShared('evaluators/offensive-linear/model.json') },
  async () => {
    const s = await createScorer('offensive-linear', {
      modelPath: sharedPath('evaluators/offensive-linear/model.json')!,
    });
    assert.equal(s.attribute, 'toxicity');
    const [p] = await s.score(['go to hell, you scum']);
    assert.ok(p! > 0.99);
  },
);
