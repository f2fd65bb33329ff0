import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { explainSteerDims, explainText, gridEdge } from '../../src/lens/explain.js';
import { isWordLike } from '../../src/lens/dims.js';
import { loadModel, type LoadedModel } from '../../src/runtime/loadModel.js';
import { loadSteer, saveSteer } from '../../src/steer/steerFile.js';
import type { Steer } from '../../src/steer/steer.js';
import { boostSteer, meanHiddenDirection, removeTempDirs, tempDir } from '../helpers/lensFixtures.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';
import { randomSteer } from '../steer/randomSteer.js';

const skip = skipUnlessShared('models/stories260K/hf');
const HAPPY = 393; // ' happy' in stories260K's tok512
const TEXT = 'Lily was happy. She played with her dog in the park, and she was happy. Tim was happy too.';
let model: LoadedModel;
let boost: Steer;

before(async () => {
  if (skip) return;
  model = await loadModel(sharedPath('models/stories260K/hf')!, { cacheDir: false, threads: 1 });
  const read = await meanHiddenDirection(
    model,
    'Once upon a time, there was a little girl named Lily. She loved to play outside.',
  );
  boost = boostSteer(model, HAPPY, read, { sigma: 2, withDummy: true });
});
after(() => {
  model?.close();
  removeTempDirs();
});

/** log p(ids[t] | ids[<t]) for t ≥ 1, from a plain forward call with the steer's `boost` slot at `value`. */
async function logProbs(ids: number[], value: number | undefined): Promise<number[]> {
  const { packSteers, steerInputs } = await import('../../src/steer/pack.js');
  const steer = value === undefined ? undefined : steerInputs(packSteers([boost]), [[[value, 1]]]);
  const out = await model.decoder.forward([ids], { steer });
  const V = model.cfg.vocabSize;
  return ids.slice(1).map((id, i) => {
    const row = out.logits.data.subarray(i * V, (i + 1) * V);
    const max = Math.max(...row);
    return row[id]! - max - Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
  });
}

test('explain dims: the token a steer writes along tops its first direction', { skip }, () => {
  const r = explainSteerDims(model, boost, { top: 5, dims: 3 });
  assert.equal(r.slot, 'boost', 'the only settable slot is the default');
  assert.equal(r.singularValues.length, 1, 'a rank-1 steer has one direction');
  assert.ok(Math.abs(r.singularValues[0]! - 2) < 1e-4, `σ = ‖p1‖·‖p2‖ = 2, got ${r.singularValues[0]}`);
  assert.equal(r.dims[0]!.positive[0]!.id, HAPPY);
  assert.equal(r.dims[0]!.positive[0]!.token, ' happy');
  for (const t of [...r.dims[0]!.positive, ...r.dims[0]!.negative])
    assert.ok(isWordLike(t.token), `${JSON.stringify(t.token)} is word-like`);
  const all = explainSteerDims(model, boost, { top: 40, dims: 1, allTokens: true });
  assert.ok(
    [...all.dims[0]!.positive, ...all.dims[0]!.negative].some((t) => !isWordLike(t.token)),
    '--all-tokens keeps sub-word tokens',
  );
  assert.ok(
    all.dims[0]!.positive.every((t) => !model.tokenizer.isSpecial(t.id)),
    'special tokens never ranked',
  );
  // JSON-able: survives a round trip unchanged.
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
});

test(
  'explain dims on a saved random steer: directions in order, the base slot explainable, bad slots refused',
  { skip },
  () => {
    const dir = join(tempDir(), 'rand');
    const s = randomSteer({ d: 64, rank: 3, slots: ['a', 'b'], seed: 4 });
    s.config.baseModel = { id: model.id, embeddingFingerprint: model.fingerprint(), vocabSize: 512, hiddenSize: 64 };
    saveSteer(dir, s);
    const steer = loadSteer(dir, { expectFingerprint: model.fingerprint() });
    const r = explainSteerDims(model, steer, { slot: 'b', dims: 5, top: 3 });
    assert.equal(r.slot, 'b');
    assert.equal(r.dims.length, 3, 'rank 3 → 3 directions');
    for (let i = 1; i < 3; i++) assert.ok(r.singularValues[i]! <= r.singularValues[i - 1]!);
    assert.notDeepEqual(
      explainSteerDims(model, steer, { slot: 'a', dims: 1 }).singularValues,
      r.singularValues.slice(0, 1),
    );
    assert.throws(() => explainSteerDims(model, steer, {}), { code: 'BAD_ARGUMENT', message: /2 slots/ });
    assert.throws(
      () => explainSteerDims(model, steer, { slot: 'nope' }),
      (e: { code: string; message: string; hint: string }) =>
        e.code === 'NOT_FOUND' && /no slot "nope"/.test(e.message) && /a, b/.test(e.hint),
    );
    assert.equal(explainSteerDims(model, boost, { slot: 'base', dims: 1 }).slot, 'base');
    const wide = randomSteer({ d: 32, rank: 2, slots: ['a'] });
    assert.throws(() => explainSteerDims(model, wide, {}), { code: 'MODEL_MISMATCH' });
  },
);

test(
  'explain text: the boosted token has the highest evidence and falls in a span; grid rows match plain passes',
  { skip },
  async () => {
    const r = await explainText(model, boost, TEXT);
    const ids = model.tokenizer.encode(TEXT);
    assert.equal(ids[0], 1, 'stories adds BOS');
    assert.deepEqual(
      r.tokens.map((t) => t.id),
      ids.slice(1),
      'BOS is context, not shown',
    );
    assert.ok(
      r.tokens.every((t) => t.evidence !== null),
      'with BOS every text token is predicted',
    );
    // Evidence = log p(+1) − log p(−1), as two separate plain forward calls give it.
    const plus = await logProbs(ids, 1);
    const minus = await logProbs(ids, -1);
    r.tokens.forEach((t, i) =>
      assert.ok(
        Math.abs(t.evidence! - (plus[i]! - minus[i]!)) < 1e-3,
        `token ${i}: ${t.evidence} vs ${plus[i]! - minus[i]!}`,
      ),
    );

    const happy = r.tokens.map((t, i) => (t.id === HAPPY ? i : -1)).filter((i) => i >= 0);
    assert.equal(happy.length, 3);
    const ranked = r.tokens.map((t, i) => [t.evidence!, i] as const).sort((a, b) => b[0] - a[0]);
    assert.deepEqual(
      new Set(ranked.slice(0, 3).map(([, i]) => i)),
      new Set(happy),
      `top evidence at ${ranked.slice(0, 3).map(([e, i]) => `${i}:${e.toFixed(2)}`)}`,
    );
    for (const i of happy)
      assert.ok(
        r.spans.some(([a, b]) => a <= i && i < b),
        `token ${i} (happy) is in a span`,
      );
    assert.ok(r.spans.length >= 1 && r.spans.length <= 4 && r.spans.every(([a, b]) => b - a <= 10));

    // Grid: 13 values, the row at value 0 is the unsteered model.
    assert.equal(r.grid.values.length, 13);
    const base = await logProbs(ids, undefined);
    const zero = r.grid.values.indexOf(0);
    assert.ok(Math.abs(r.grid.meanLosses[zero]! + base.reduce((a, b) => a + b, 0) / base.length) < 1e-4);
    assert.ok(Math.abs(r.grid.distribution.reduce((a, b) => a + b, 0) - 1) < 1e-9);
    assert.equal(r.grid.best, r.grid.values[r.grid.meanLosses.indexOf(Math.min(...r.grid.meanLosses))]);
    // One row per forward call gives the same numbers as all rows in one call.
    const small = await explainText(model, boost, TEXT, { maxBatchFloats: 1, grid: r.grid.values });
    small.grid.meanLosses.forEach((l, i) => assert.ok(Math.abs(l - r.grid.meanLosses[i]!) < 1e-5));
    assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
  },
);

test('explain text: a text that favours the steer is best explained by a positive value', { skip }, async () => {
  const r = await explainText(model, boost, 'happy happy happy happy happy happy', { grid: [-2, -1, 0, 1, 2] });
  assert.ok(r.grid.best > 0, `best value ${r.grid.best}, losses ${r.grid.meanLosses.map((x) => x.toFixed(2))}`);
  assert.equal(r.grid.edge, r.grid.best === 2 ? 'high' : null);
});

test('gridEdge: the best value on either end of the grid is flagged', () => {
  assert.equal(gridEdge([-2, -1, 0, 1, 2], 2), 'high');
  assert.equal(gridEdge([-2, -1, 0, 1, 2], -2), 'low');
  assert.equal(gridEdge([-2, -1, 0, 1, 2], 1), null);
  assert.equal(gridEdge([3], 3), null);
});

test(
  'explain text refuses one-token texts and unknown slots; the base slot is explained like any slot',
  { skip },
  async () => {
    await assert.rejects(explainText(model, boost, 'happy'), {
      code: 'BAD_ARGUMENT',
      message: /1 token; evidence needs at least 2/,
    });
    await assert.rejects(explainText(model, boost, ''), { code: 'BAD_ARGUMENT', message: /0 tokens/ });
    await assert.rejects(
      explainText(model, boost, TEXT, { slot: 'joy' }),
      (e: { code: string; hint: string }) => e.code === 'NOT_FOUND' && /boost/.test(e.hint),
    );
    assert.equal((await explainText(model, boost, TEXT, { slot: 'base', grid: [0, 1] })).slot, 'base');
    await assert.rejects(explainText(model, boost, TEXT, { grid: [] }), { code: 'BAD_ARGUMENT' });
  },
);
