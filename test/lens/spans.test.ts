import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { bestSpans, type SpanOptions } from '../../src/lens/spans.js';

/** Every legal span list, recursively; returns the best total (0 for no spans). */
function bruteForce(ev: number[], o: SpanOptions): number {
  const go = (from: number, left: number): number => {
    let best = 0;
    if (left === 0) return 0;
    for (let s = from; s < ev.length; s++) {
      let sum = 0;
      for (let e = s + 1; e <= Math.min(ev.length, s + o.maxLen); e++) {
        sum += ev[e - 1]!;
        best = Math.max(best, sum + go(e + o.minGap, left - 1));
      }
    }
    return best;
  };
  return go(0, o.maxSpans);
}

function checkLegal(n: number, spans: [number, number][], o: SpanOptions): void {
  assert.ok(spans.length <= o.maxSpans);
  let prevEnd = -Infinity;
  for (const [a, b] of spans) {
    assert.ok(a >= 0 && b <= n && b > a && b - a <= o.maxLen, `span [${a}, ${b})`);
    assert.ok(a >= prevEnd + o.minGap, `gap before [${a}, ${b})`);
    prevEnd = b;
  }
}

test('bestSpans matches brute force on random small evidence (integers, so sums are exact)', () => {
  const rng = xoroshiro128plus(42);
  for (let trial = 0; trial < 400; trial++) {
    const n = uniformInt(rng, 1, 9);
    const ev = Array.from({ length: n }, () => uniformInt(rng, -5, 5));
    const o: SpanOptions = {
      maxSpans: uniformInt(rng, 0, 3),
      maxLen: uniformInt(rng, 1, 4),
      minGap: uniformInt(rng, 0, 2),
    };
    const r = bestSpans(ev, o);
    checkLegal(n, r.spans, o);
    const sum = r.spans.reduce((s, [a, b]) => s + ev.slice(a, b).reduce((x, y) => x + y, 0), 0);
    assert.equal(r.total, sum);
    assert.equal(r.total, bruteForce(ev, o), `ev=${ev} opts=${JSON.stringify(o)} spans=${JSON.stringify(r.spans)}`);
  }
});

test('bestSpans defaults: 4 spans of ≤ 10 tokens, apart', () => {
  const ev = [-1, 2, 3, -1, 5, ...Array(12).fill(1), -3, 4];
  const r = bestSpans(ev);
  checkLegal(ev.length, r.spans, { maxSpans: 4, maxLen: 10, minGap: 1 });
  assert.equal(r.total, bruteForce(ev, { maxSpans: 4, maxLen: 10, minGap: 1 }));
});

test('bestSpans edge cases', () => {
  assert.deepEqual(bestSpans([-1, -2, -0.5]), { spans: [], total: 0 }, 'all negative → nothing');
  assert.deepEqual(bestSpans([]), { spans: [], total: 0 });
  assert.deepEqual(bestSpans([0.7]), { spans: [[0, 1]], total: 0.7 });
  assert.deepEqual(bestSpans([-0.7]), { spans: [], total: 0 });
  assert.deepEqual(bestSpans([0, 0, 0]), { spans: [], total: 0 }, 'ties prefer no highlight');
  assert.deepEqual(bestSpans([1, 1, 1], { minGap: 0, maxLen: 1, maxSpans: 3 }).spans, [
    [0, 1],
    [1, 2],
    [2, 3],
  ]);
  assert.throws(() => bestSpans([1], { maxLen: 0 }), { code: 'BAD_ARGUMENT' });
  assert.throws(() => bestSpans([1, NaN]), { code: 'BAD_DATA', message: /evidence\[1\]/ });
});
