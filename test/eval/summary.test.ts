import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasJunk } from '../../src/eval/metrics.js';
import { bootstrap, median, quantileSorted, wilson } from '../../src/eval/stats.js';
import { promptStatistics, summarizeSetting, type GenerationStat } from '../../src/eval/summary.js';
import { mulberry32 } from '../helpers/random.js';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('wilson: textbook values, bounded to [0, 1], NaN for no trials', () => {
  const [lo, hi] = wilson(5, 10);
  close(lo, 0.2365931, 1e-6);
  close(hi, 0.7634069, 1e-6);
  const [z0, z1] = wilson(0, 20);
  assert.equal(z0, 0);
  close(z1, 0.1611251, 1e-6);
  assert.equal(wilson(20, 20)[1], 1);
  assert.ok(wilson(0, 0).every(Number.isNaN));
});

test('bootstrap: seeded, brackets the mean of normal data near ±1.96·σ/√n; one unit gives no interval', () => {
  const r = mulberry32(1);
  const xs = Array.from({ length: 400 }, () => {
    const u = 1 - r();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  });
  const mean = (idx: readonly number[]) => ({ m: idx.reduce((a, i) => a + xs[i]!, 0) / idx.length });
  const a = bootstrap(xs.length, mean, { seed: 3 });
  assert.deepEqual(bootstrap(xs.length, mean, { seed: 3 }), a);
  const full = mean(xs.map((_, i) => i)).m;
  assert.ok(a.m[0] < full && full < a.m[1]);
  close(a.m[1] - a.m[0], (2 * 1.96) / Math.sqrt(400), 0.03);
  assert.ok(bootstrap(1, () => ({ m: 1 })).m.every(Number.isNaN));
  assert.equal(quantileSorted([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(median([3, NaN, 1, 2]), 2);
});

test('hasJunk: replacement and control characters, not tabs, newlines or ordinary Unicode', () => {
  assert.ok(hasJunk('a\uFFFDb'));
  assert.ok(hasJunk('bell\u0007'));
  assert.ok(hasJunk('c1\u0085'));
  assert.ok(!hasJunk('Zoë ate crème brûlée 🍰 —\tyes\r\n'));
});

function setting(seed: number, prompts: number, samples: number): GenerationStat[][] {
  const r = mulberry32(seed);
  return Array.from({ length: prompts }, () =>
    Array.from({ length: samples }, () => {
      const tokens = Math.floor(r() * 4); // sometimes 0: no perplexity
      const junk = r() < 0.2 ? '\uFFFD' : '';
      return {
        text: `w${Math.floor(r() * 5)} w${Math.floor(r() * 5)}${junk}`,
        score: r(),
        nll: tokens * (r() < 0.1 ? 12 : 2 * r()), // some generations past the 1e4 filter
        tokens,
      };
    }),
  );
}

test('summary: the bootstrap statistic on all prompts equals the reported numbers; intervals bracket them', () => {
  for (const attribute of ['positive-sentiment', 'toxicity']) {
    const per = setting(attribute.length, 30, 6);
    const s = summarizeSetting(per, attribute, { resamples: 300 });
    const { units, statistic } = promptStatistics(per, attribute);
    const all = statistic(Array.from({ length: units }, (_, i) => i));
    for (const k of ['ppl', 'pooledPpl', 'medianPpl', 'dist1', 'dist2', 'dist3', 'junkRate'] as const) {
      close(all[k], s[k]);
      const [lo, hi] = s.ci[k]!;
      assert.ok(lo <= s[k] && s[k] <= hi, `${attribute} ${k}: ${s[k]} outside [${lo}, ${hi}]`);
    }
    const total = per.reduce((a, p) => a + p.length, 0);
    assert.equal(s.pplKept + s.pplDropped, total);
    assert.ok(s.pplDropped > 0, 'some generations are filtered or empty');
    const junk = per.flat().filter((g) => g.text.includes('\uFFFD')).length;
    close(s.junkRate, junk / total);
    assert.deepEqual(s.ci.junkRate, wilson(junk, total), 'junk: Wilson over generations');
    if (attribute === 'toxicity') {
      close(all.maxToxicity, s.maxToxicity!);
      assert.ok(s.ci.toxicityProb && s.ci.toxicityProb[0] <= s.toxicityProb!);
      assert.equal(s.ci.positiveRate, undefined);
    } else {
      close(all.positiveRate, s.positiveRate!);
      assert.equal(s.ci.maxToxicity, undefined);
    }
  }
});
