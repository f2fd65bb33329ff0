import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linePlotSvg, paddedDomain, scatterPlotSvg } from '../../src/util/svgPlot.js';
import { LmSteerError } from '../../src/util/errors.js';

/** Minimal well-formedness: one <svg> root, every tag closed in order, nothing after the root. */
function assertWellFormedSvg(svg: string): void {
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(svg); m; m = tag.exec(svg)) {
    assert.ok(!/[<>]/.test(svg.slice(last, m.index)), `stray < or > before offset ${m.index}`);
    last = tag.lastIndex;
    const [, close, name, , self] = m;
    if (self) continue;
    if (close) assert.equal(stack.pop(), name, `mismatched </${name}>`);
    else stack.push(name!);
  }
  assert.equal(stack.length, 0, `unclosed: ${stack.join(',')}`);
  assert.equal(svg.slice(last).trim(), '');
}

test('line plot: well-formed SVG with the title, axis labels and series names (escaped)', async () => {
  const svg = await linePlotSvg({
    title: 'Training loss <steer> & co',
    xLabel: 'step',
    yLabel: 'loss',
    series: [
      {
        name: 'train',
        points: [
          [0, 3],
          [1, 2.5],
          [2, NaN],
          [3, 2],
        ],
      },
      {
        name: 'held-out',
        points: [
          [0, 3.1],
          [3, 2.4],
        ],
      },
    ],
    logY: true,
  });
  assertWellFormedSvg(svg);
  assert.ok(svg.includes('Training loss &lt;steer&gt; &amp; co'));
  for (const s of ['train', 'held-out', 'step', 'loss']) assert.ok(svg.includes(`>${s}<`), s);
});

test('scatter plot: well-formed SVG with series names and point labels', async () => {
  const svg = await scatterPlotSvg({
    title: 'Toxicity vs perplexity',
    xLabel: 'perplexity',
    yLabel: 'max toxicity',
    series: [
      {
        name: 'LM-Steer',
        points: [
          [20, 0.4],
          [30, 0.2],
          [45, 0.1],
        ],
        labels: [0, -3, -5],
      },
    ],
  });
  assertWellFormedSvg(svg);
  assert.ok(svg.includes('Toxicity vs perplexity'));
  assert.ok(svg.includes('>LM-Steer<'));
  assert.ok(svg.includes('>-5<'));
});

test('plots reject bad input clearly', async () => {
  const base = { title: 't', xLabel: 'x', yLabel: 'y' };
  const err = (re: RegExp) => (e: unknown) =>
    e instanceof LmSteerError && e.code === 'BAD_ARGUMENT' && re.test(e.message);
  assert.throws(() => linePlotSvg({ ...base, series: [] }), err(/no series/));
  assert.throws(
    () =>
      linePlotSvg({
        ...base,
        series: [
          { name: 'a', points: [] },
          { name: 'a', points: [] },
        ],
      }),
    err(/two series named 'a'/),
  );
  assert.throws(
    () => linePlotSvg({ ...base, logY: true, series: [{ name: 'a', points: [[1, 0]] }] }),
    err(/point 0 has y = 0/),
  );
  assert.throws(
    () => scatterPlotSvg({ ...base, series: [{ name: 'a', points: [[1, 1]], labels: [] }] }),
    err(/1 points but 0 labels/),
  );
});

test('axes pad past every point and error bar; a single point gets a readable axis', () => {
  assert.deepEqual(paddedDomain([0, 10]), [-0.5, 10.5]);
  assert.deepEqual(paddedDomain([2, NaN, 4, 6]), [1.8, 6.2]);
  assert.deepEqual(paddedDomain([50]), [45, 55]);
  assert.deepEqual(paddedDomain([0]), [-1, 1]);
  const [lo, hi] = paddedDomain([10, 1000], true)!;
  assert.ok(Math.abs(lo - 10 ** 0.9) < 1e-9 && Math.abs(hi - 10 ** 3.1) < 1e-9);
  assert.equal(paddedDomain([NaN]), undefined);
});

test('error bars and a dashed baseline are drawn; a one-point scatter renders', async () => {
  const plain = await linePlotSvg({
    title: 't',
    xLabel: 'x',
    yLabel: 'y',
    series: [
      {
        name: 'a',
        points: [
          [-8, 25],
          [8, 63],
        ],
      },
    ],
  });
  assert.doesNotMatch(plain, /mark-rule role-mark/);
  assert.doesNotMatch(plain, /stroke-dasharray/);
  const svg = await linePlotSvg({
    title: 't',
    xLabel: 'x',
    yLabel: 'y',
    series: [
      {
        name: 'a',
        points: [
          [-8, 25],
          [8, 63],
        ],
        yErrors: [
          [20, 30],
          [NaN, NaN],
        ],
      },
      {
        name: 'unsteered',
        points: [
          [-8, 50],
          [8, 50],
        ],
        dashed: true,
      },
    ],
  });
  assertWellFormedSvg(svg);
  assert.match(svg, /mark-rule role-mark/);
  assert.match(svg, /stroke-dasharray="6,4"/);
  const one = await scatterPlotSvg({
    title: 'one',
    xLabel: 'ppl',
    yLabel: 'rate',
    series: [{ name: 's', points: [[5.8, 49.3]], labels: ['0'], xErrors: [[5.5, 6.1]], yErrors: [[44, 54]] }],
  });
  assertWellFormedSvg(one);
  assert.equal(one.match(/mark-rule role-mark/g)?.length, 2, 'x and y bars');
  assert.throws(
    () =>
      scatterPlotSvg({ title: 'e', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: [[1, 1]], yErrors: [] }] }),
    /1 points but 0 y errors/,
  );
});
