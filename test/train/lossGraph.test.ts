import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LossSession, referenceLossSum, type LossBatch } from '../../src/train/lossGraph.js';
import { adamInit, adamStep } from '../../src/train/adam.js';
import { tensor, type Tensor } from '../../src/util/tensor.js';
import { mulberry, randomTensor } from './fixtures/fakeModel.js';

const V = 40;
const d = 6;
const K = 4;
const M = 9;

function fixture(): { E: Tensor; batch: LossBatch; p1: Tensor; p2t: Tensor } {
  const r = mulberry(7);
  const E = randomTensor([V, d], 1);
  const batch: LossBatch = {
    hidden: randomTensor([M, d], 2),
    targets: Int32Array.from({ length: M }, () => Math.floor(r() * V)),
    weight: Float32Array.from({ length: M }, (_, i) => (i === 4 ? 0 : 1)), // one pad row
    // Large "eps × value" so the steer term matters at test sizes.
    scale: randomTensor([M, K], 3, 2),
  };
  return { E, batch, p1: randomTensor([d, K], 4, 0.5), p2t: randomTensor([K, d], 5, 0.5) };
}

test('graph loss matches the float64 reference and ignores weight-0 rows; chunking changes nothing', async () => {
  const { E, batch, p1, p2t } = fixture();
  const whole = await LossSession.create(E, { chunkRows: 100 });
  const chunked = await LossSession.create(E, { chunkRows: 2 });
  try {
    const a = await whole.run(batch, p1, p2t);
    const b = await chunked.run(batch, p1, p2t);
    const ref = referenceLossSum(E, batch, p1, p2t);
    assert.ok(Math.abs(a.lossSum - ref) <= 1e-4 * Math.abs(ref), `graph ${a.lossSum} vs reference ${ref}`);
    assert.equal(a.count, M - 1);
    assert.ok(Math.abs(b.lossSum - a.lossSum) <= 1e-5 * Math.abs(ref));
    for (let i = 0; i < a.gradP1.length; i++) assert.ok(Math.abs(a.gradP1[i]! - b.gradP1[i]!) <= 1e-5);
    // A pad row with a wild target contributes nothing.
    const t2 = Int32Array.from(batch.targets as Int32Array);
    t2[4] = (t2[4]! + 1) % V;
    const c = await whole.run({ ...batch, targets: t2 }, p1, p2t);
    assert.equal(c.lossSum, a.lossSum);
  } finally {
    await whole.close();
    await chunked.close();
  }
  // E in an external-data file (the path for vocabularies past protobuf's 2 GiB) gives the same numbers.
  const external = await LossSession.create(E, { inlineLimitBytes: 16 });
  try {
    const e = await external.run(batch, p1, p2t);
    const ref = referenceLossSum(E, batch, p1, p2t);
    assert.ok(Math.abs(e.lossSum - ref) <= 1e-4 * Math.abs(ref));
  } finally {
    await external.close();
  }
});

test('gradients match central finite differences of the float64 reference', async () => {
  const { E, batch, p1, p2t } = fixture();
  const s = await LossSession.create(E);
  try {
    const g = await s.run(batch, p1, p2t);
    const h = 1e-3;
    for (const [name, P, grad] of [
      ['p1', p1, g.gradP1],
      ['p2t', p2t, g.gradP2t],
    ] as const) {
      let checked = 0;
      for (let i = 0; i < P.data.length; i++) {
        const plus = tensor(P.shape, Float32Array.from(P.data));
        const minus = tensor(P.shape, Float32Array.from(P.data));
        plus.data[i]! += h;
        minus.data[i]! -= h;
        const f = (x: Tensor) =>
          name === 'p1' ? referenceLossSum(E, batch, x, p2t) : referenceLossSum(E, batch, p1, x);
        // The perturbation itself is rounded to float32, so divide by the step actually taken.
        const fd = (f(plus) - f(minus)) / (plus.data[i]! - minus.data[i]!);
        const tol = 1e-3 * Math.max(1, Math.abs(fd));
        assert.ok(Math.abs(fd - grad[i]!) <= tol, `${name}[${i}]: finite difference ${fd}, graph ${grad[i]}`);
        checked++;
      }
      assert.equal(checked, d * K);
    }
    // Not trivially zero.
    assert.ok(g.gradP1.some((x) => Math.abs(x) > 1e-3) && g.gradP2t.some((x) => Math.abs(x) > 1e-3));
  } finally {
    await s.close();
  }
});

test('a few Adam steps on a fixed batch lower the loss', async () => {
  const { E, batch, p1, p2t } = fixture();
  const s = await LossSession.create(E);
  try {
    const state = adamInit([p1.data.length, p2t.data.length]);
    const first = (await s.run(batch, p1, p2t)).lossSum;
    let last = first;
    for (let i = 0; i < 20; i++) {
      const g = await s.run(batch, p1, p2t);
      last = g.lossSum;
      adamStep({ lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, state, [p1.data, p2t.data], [g.gradP1, g.gradP2t]);
    }
    assert.ok(last < first * 0.9, `loss ${first} → ${last}`);
  } finally {
    await s.close();
  }
});

test('a target id outside the vocabulary is a clear error', async () => {
  const { E, batch, p1, p2t } = fixture();
  const s = await LossSession.create(E);
  try {
    const t = Int32Array.from(batch.targets as Int32Array);
    t[2] = V;
    await assert.rejects(
      s.run({ ...batch, targets: t }, p1, p2t),
      /token id 40 at position 2 is outside the vocabulary/,
    );
  } finally {
    await s.close();
  }
});

test('an LM head bias (GPT-J) shifts the logits: loss and gradients match the float64 reference with it', async () => {
  const { E, batch, p1, p2t } = fixture();
  const b = randomTensor([V], 9, 3);
  const s = await LossSession.create(E, { headBias: b });
  try {
    const g = await s.run(batch, p1, p2t);
    const ref = referenceLossSum(E, batch, p1, p2t, { headBias: b });
    assert.ok(Math.abs(g.lossSum - ref) <= 1e-4 * Math.abs(ref), `graph ${g.lossSum} vs reference ${ref}`);
    assert.ok(Math.abs(ref - referenceLossSum(E, batch, p1, p2t)) > 1e-2, 'the bias changes the loss');
    const h = 1e-3;
    for (const i of [0, 5, 11]) {
      const plus = tensor(p1.shape, Float32Array.from(p1.data));
      const minus = tensor(p1.shape, Float32Array.from(p1.data));
      plus.data[i]! += h;
      minus.data[i]! -= h;
      const fd =
        (referenceLossSum(E, batch, plus, p2t, { headBias: b }) -
          referenceLossSum(E, batch, minus, p2t, { headBias: b })) /
        (plus.data[i]! - minus.data[i]!);
      assert.ok(Math.abs(fd - g.gradP1[i]!) <= 1e-3 * Math.max(1, Math.abs(fd)), `p1[${i}]: ${fd} vs ${g.gradP1[i]}`);
    }
  } finally {
    await s.close();
  }
});

test('final logit soft-capping (Gemma 2): loss matches the capped reference, gradients match finite differences', async () => {
  const { E, batch, p1, p2t } = fixture();
  const cap = 0.5; // small enough to bite at these logits (|z| ≈ 1)
  const s = await LossSession.create(E, { softcap: cap });
  try {
    const g = await s.run(batch, p1, p2t);
    const ref = referenceLossSum(E, batch, p1, p2t, { softcap: cap });
    assert.ok(Math.abs(g.lossSum - ref) <= 1e-4 * Math.abs(ref), `loss ${g.lossSum} vs ${ref}`);
    const uncapped = referenceLossSum(E, batch, p1, p2t);
    assert.ok(Math.abs(ref - uncapped) > 0.1, `the cap should change the loss (${ref} vs ${uncapped})`);
    const h = 1e-3;
    for (const [name, P, grad] of [
      ['p1', p1, g.gradP1],
      ['p2t', p2t, g.gradP2t],
    ] as const) {
      for (let i = 0; i < P.data.length; i++) {
        const plus = tensor(P.shape, Float32Array.from(P.data));
        const minus = tensor(P.shape, Float32Array.from(P.data));
        plus.data[i]! += h;
        minus.data[i]! -= h;
        const f = (x: Tensor) =>
          name === 'p1'
            ? referenceLossSum(E, batch, x, p2t, { softcap: cap })
            : referenceLossSum(E, batch, p1, x, { softcap: cap });
        const fd = (f(plus) - f(minus)) / (plus.data[i]! - minus.data[i]!);
        assert.ok(Math.abs(fd - grad[i]!) <= 1e-3 * Math.max(1, Math.abs(fd)), `${name}[${i}]: ${fd} vs ${grad[i]}`);
      }
    }
  } finally {
    await s.close();
  }
});
