import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOffensiveLinear } from '../../../src/eval/scorers/offensiveLinear.js';
import { LmSteerError } from '../../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../../helpers/shared.js';

const DIR = 'evaluators/offensive-linear';

interface Vector {
  id: number;
  text: string;
  probability: number;
  label: number;
  decision_values: number[];
  tokens: string[] | null;
  tokens_sha256: string;
}

test(
  'offensive-linear matches all test vectors: probability, label, fold decision values, tokens',
  { skip: skipUnlessShared(DIR, 'model.json') },
  async () => {
    const scorer = await loadOffensiveLinear(sharedPath(DIR, 'model.json')!);
    const tv = JSON.parse(readFileSync(sharedPath(DIR, 'test_vectors.json')!, 'utf8')) as { vectors: Vector[] };
    assert.ok(tv.vectors.length >= 70);
    const scores = await scorer.score(tv.vectors.map((v) => v.text));
    tv.vectors.forEach((v, i) => {
      const toks = scorer.tokens(v.text);
      assert.equal(
        createHash('sha256').update(toks.join('\n'), 'utf8').digest('hex'),
        v.tokens_sha256,
        `tokens of vector ${v.id}`,
      );
      if (v.tokens) assert.deepEqual(toks, v.tokens);
      assert.ok(Math.abs(scores[i]! - v.probability) <= 1e-9, `vector ${v.id}: ${scores[i]} vs ${v.probability}`);
      assert.equal(scores[i]! > 0.5 ? 1 : 0, v.label);
      scorer.decisionValues(v.text).forEach((f, k) => assert.ok(Math.abs(f - v.decision_values[k]!) < 1e-9));
    });
    assert.equal(scorer.name, 'offensive-linear');
    assert.match(scorer.version, /^offensive-linear\/1 sha256:3fa6ffd30ada242e$/);
    // README: empty / out-of-vocabulary text scores a constant.
    const [empty, oov, ctor] = await scorer.score(['', 'zzqxv qqq', 'constructor __proto__']);
    assert.ok(Math.abs(empty! - 0.03636671521227377) < 1e-12);
    assert.equal(oov, empty);
    assert.equal(ctor, empty);
  },
);

test('offensive-linear: missing file is NOT_FOUND, wrong JSON is BAD_FILE, other vectorizer settings UNSUPPORTED', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'offlin-'));
  await assert.rejects(
    loadOffensiveLinear(join(dir, 'nope.json')),
    (e: unknown) => e instanceof LmSteerError && e.code === 'NOT_FOUND',
  );
  writeFileSync(join(dir, 'bad.json'), '{"format": "offensive-linear/1"');
  await assert.rejects(
    loadOffensiveLinear(join(dir, 'bad.json')),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE',
  );
  const tiny = {
    format: 'offensive-linear/1',
    vectorizer: {
      lowercase: true,
      token_pattern: '(?u)\\b\\w\\w+\\b',
      ngram_range: [1, 2],
      binary: false,
      norm: 'l2',
      sublinear_tf: false,
      stop_words: [],
      n_features: 1,
      vocabulary: { hi: 0 },
      idf: [1],
    },
    classifier: { method: 'sigmoid', folds: [{ intercept: 0, a: -1, b: 0, coef: [1] }] },
  };
  writeFileSync(join(dir, 'bigram.json'), JSON.stringify(tiny));
  await assert.rejects(
    loadOffensiveLinear(join(dir, 'bigram.json')),
    (e: unknown) => e instanceof LmSteerError && e.code === 'UNSUPPORTED' && /ngram_range/.test(e.message),
  );
  tiny.vectorizer.ngram_range = [1, 1];
  tiny.vectorizer.idf = [1, 2];
  writeFileSync(join(dir, 'idf.json'), JSON.stringify(tiny));
  await assert.rejects(
    loadOffensiveLinear(join(dir, 'idf.json')),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE' && /idf/.test(e.message),
  );
  tiny.vectorizer.idf = [1];
  writeFileSync(join(dir, 'ok.json'), JSON.stringify(tiny));
  const s = await loadOffensiveLinear(join(dir, 'ok.json'));
  // one in-vocab word: x = [1], f = 1, p = 1/(1+exp(-1))
  assert.ok(Math.abs((await s.score(['Hi hi there']))[0]! - 1 / (1 + Math.exp(-1))) < 1e-15);
});
