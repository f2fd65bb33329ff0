import { test } from 'node:test';
import assert from 'node:assert/strict';
import { outputEmbeddings, parseDecoderConfig } from '../../src/models/registry.js';
import { OrtDecoder } from '../../src/runtime/ortDecoder.js';
import { createDecoderSession } from '../../src/runtime/session.js';
import type { Steer } from '../../src/steer/steer.js';
import { MaskedForward } from '../../src/train/maskedForward.js';
import { domainWarning, labelSlot, steerLoss, type LabelledIds } from '../../src/train/steerLoss.js';
import { tensor } from '../../src/util/tensor.js';
import { maskedLlamaHidden } from '../helpers/maskedReference.js';
import { mulberry32 } from '../helpers/random.js';
import { tinyCheckpoint } from '../helpers/tinyModels.js';

const PAD = 2;
const EPS = 0.05;
const EXAMPLES: LabelledIds[] = [
  { ids: [1, 7, 9, 4], label: 1 },
  { ids: [1, 12], label: -1 },
  { ids: [1, 5, 5, 30, 8, 21], label: 0.5 },
  { ids: [1, 44, 3], label: -1 },
  { ids: [1, 9, 9, 9, 9], label: 1 },
];

function randomSteer(d: number, V: number): Steer {
  const r = mulberry32(5);
  const S = 2;
  const rank = 2;
  const rand = () =>
    tensor(
      [S, d, rank],
      Float32Array.from({ length: S * d * rank }, () => r() * 2 - 1),
    );
  return {
    config: {
      formatVersion: 1,
      baseModel: { id: 'tiny', embeddingFingerprint: 'x', vocabSize: V, hiddenSize: d },
      eps: EPS,
      rank,
      slots: [
        { name: 'sentiment', defaultValue: 0 },
        { name: 'formality', defaultValue: 0 },
      ],
    },
    p1: rand(),
    p2: rand(),
  };
}

/** The float64 loss, position by position over each right-padded batch under the attention mask. */
function independentLoss(
  cfg: ReturnType<typeof parseDecoderConfig>,
  ck: ReturnType<typeof tinyCheckpoint>,
  steer: Steer,
  values: (label: number) => number[],
  batchSize: number,
) {
  const E = outputEmbeddings(cfg, ck.weights);
  const [V, d] = E.shape as [number, number];
  const r = steer.config.rank;
  let inc = 0;
  let nInc = 0;
  let ex = 0;
  let nEx = 0;
  for (let s = 0; s < EXAMPLES.length; s += batchSize) {
    const batch = EXAMPLES.slice(s, s + batchSize);
    const T = Math.max(...batch.map((e) => e.ids.length));
    for (const e of batch) {
      const row = [...e.ids, ...Array(T - e.ids.length).fill(PAD)];
      const hs = maskedLlamaHidden(cfg, ck.weights, row, e.ids.length);
      const v = values(e.label);
      for (let t = 0; t < T - 1; t++) {
        const h = hs[t]!;
        const steered = Float64Array.from(h);
        v.forEach((value, slot) => {
          for (let j = 0; j < r; j++) {
            let a = 0;
            for (let i = 0; i < d; i++) a += h[i]! * steer.p1.data[(slot * d + i) * r + j]!;
            for (let i = 0; i < d; i++) steered[i]! += EPS * value * a * steer.p2.data[(slot * d + i) * r + j]!;
          }
        });
        const z = Array.from({ length: V }, (_, k) => {
          let acc = 0;
          for (let i = 0; i < d; i++) acc += steered[i]! * E.data[k * d + i]!;
          return acc;
        });
        const max = Math.max(...z);
        const lse = max + Math.log(z.reduce((a, x) => a + Math.exp(x - max), 0));
        const ce = lse - z[row[t + 1]!]!;
        inc += ce;
        nInc++;
        if (t + 1 < e.ids.length) {
          ex += ce;
          nEx++;
        }
      }
    }
  }
  return { include: inc / nInc, exclude: ex / nEx, nInc, nEx };
}

test('steer loss: both pad conventions, with and without a fixed extra slot, equal a float64 loop (≤ 1e-5)', async () => {
  const ck = tinyCheckpoint('llama', { seed: 7, vocab: 64 });
  const cfg = parseDecoderConfig(ck.config, 'tiny llama');
  const decoder = new OrtDecoder(await createDecoderSession(cfg, ck.weights, { cacheDir: false, threads: 1 }), cfg);
  const mf = await MaskedForward.open({ decoder });
  const E = outputEmbeddings(cfg, ck.weights);
  const steer = randomSteer(cfg.hiddenSize, cfg.vocabSize);
  try {
    for (const fixed of [{}, { formality: 2 }] as Record<string, number>[]) {
      const other = fixed.formality ?? 0;
      const r = await steerLoss(steer, E, EXAMPLES, (rows, n) => mf.hidden(rows, n), {
        slot: 'sentiment',
        values: fixed,
        batchSize: 3,
        padId: PAD,
        intraOpNumThreads: 1,
      });
      const want = {
        ce: independentLoss(cfg, ck, steer, (l) => [l, other], 3),
        flipped: independentLoss(cfg, ck, steer, (l) => [-l, other], 3),
        off: independentLoss(cfg, ck, steer, () => [0, 0], 3),
      };
      // Batches [4, 2, 6 tokens] → T 6, [3, 5] → T 5: 3·5 + 2·4 positions, 3+1+5+2+4 real targets.
      assert.equal(r.include.nTargets, 23);
      assert.equal(r.exclude.nTargets, 15);
      assert.equal(want.ce.nInc, 23);
      const close = (a: number, b: number, what: string) =>
        assert.ok(Math.abs(a - b) <= 1e-5, `${what} (${JSON.stringify(fixed)}): ${a} vs ${b}`);
      for (const conv of ['include', 'exclude'] as const) {
        close(r[conv].ce, want.ce[conv], `${conv} ce`);
        close(r[conv].ceFlipped, want.flipped[conv], `${conv} ce_flipped`);
        close(r[conv].ceOff, want.off[conv], `${conv} ce_off`);
      }
      assert.ok(Math.abs(r.exclude.ce - r.exclude.ceOff) > 1e-3, 'the steer changes the loss');
      assert.ok(Math.abs(r.include.ce - r.exclude.ce) > 1e-3, 'pad targets change the mean');
    }
    // The batch size changes the include convention (the padded length), never the exclude one.
    const a = await steerLoss(steer, E, EXAMPLES, (rows, n) => mf.hidden(rows, n), { padId: PAD, slot: 'sentiment' });
    const b = await steerLoss(steer, E, EXAMPLES, (rows, n) => mf.hidden(rows, n), {
      padId: PAD,
      slot: 'sentiment',
      batchSize: 1,
    });
    assert.ok(Math.abs(a.exclude.ce - b.exclude.ce) < 1e-6);
    assert.equal(b.include.nTargets, b.exclude.nTargets);
  } finally {
    await mf.close();
  }
});

test('steer loss: the labelled slot is named or implied, never also fixed; the domain warning', () => {
  const steer = randomSteer(4, 8);
  assert.equal(labelSlot(steer, 'formality'), 1);
  assert.throws(() => labelSlot(steer), /2 slots besides base/);
  assert.throws(() => labelSlot(steer, 'nope'), /no slot "nope"/);
  const base = { texts: 10, slot: 'sentiment', batchSize: 32 };
  const conv = { ce: 3.2, ceFlipped: 3.204, ceOff: 4.34, nTargets: 100 };
  const dummyOn = { ...base, values: { sentiment: NaN, base: 1 }, exclude: conv, include: conv };
  assert.match(domainWarning(dummyOn, conv)!, /mostly learned the domain.*1\.140.*0\.004.*--no-dummy/s);
  const noDummy = { ...dummyOn, values: { sentiment: NaN } };
  assert.equal(domainWarning(noDummy, conv), undefined, 'no always-on slot: nothing to blame');
  const styled = { ...conv, ceFlipped: 3.5 };
  assert.equal(domainWarning(dummyOn, styled), undefined);
});

test('steer loss: the label slot cannot also get a --value', async () => {
  const steer = randomSteer(4, 8);
  const E = tensor([8, 4]);
  await assert.rejects(
    steerLoss(steer, E, [{ ids: [1, 2], label: 1 }], async () => tensor([1, 2, 4]), {
      slot: 'sentiment',
      values: { sentiment: 3 },
      padId: 0,
    }),
    /cannot also have a fixed --value/,
  );
});
