import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildReport, renderReportMarkdown, writeReport } from '../../src/eval/report.js';
import { LmSteerError } from '../../src/util/errors.js';

const toxicity = buildReport({
  title: 'Detoxification sweep',
  createdAt: '2025-01-01T00:00:00.000Z',
  config: { model: 'gpt2-large', prompts: 'nontoxic_prompts_first50.jsonl', samples: 25 },
  scorers: [{ name: 'offensive-linear', attribute: 'toxicity', version: 'offensive-linear/1 sha256:3fa6ffd30ada242e' }],
  rows: [
    {
      setting: 'base',
      steerValue: 0,
      maxToxicity: 0.31234,
      toxicityProb: 0.2,
      ppl: 25.123,
      pooledPpl: 24,
      dist1: 0.581,
      dist2: 0.85,
      dist3: 0.851,
    },
    {
      setting: 'steer | detox',
      steerValue: -5,
      maxToxicity: 0.1,
      toxicityProb: 0,
      ppl: NaN,
      dist1: 0.5,
      dist2: 0.8,
      dist3: 0.84,
    },
  ],
  reference: [
    {
      setting: 'LM-Steer',
      source: 'Han et al. 2024',
      maxToxicity: 0.249,
      toxicityProb: 0.089,
      ppl: 28.26,
      dist1: 0.55,
      dist2: 0.84,
      dist3: 0.84,
    },
  ],
});

test('markdown: a column per metric present, paper decimals, missing values as —, reference rows in italics', () => {
  const md = renderReportMarkdown(toxicity);
  const lines = md.split('\n');
  const header = lines.find((l) => l.startsWith('| Setting'))!;
  assert.equal(
    header,
    '| Setting | Steer value | Max. toxicity ↓ | Toxicity prob. ↓ | PPL ↓ | Pooled PPL | Dist-1 ↑ | Dist-2 ↑ | Dist-3 ↑ |',
  );
  assert.ok(!md.includes('Positive %'));
  assert.ok(lines.includes('| base | 0 | 0.312 | 0.200 | 25.12 | 24.00 | 0.58 | 0.85 | 0.85 |'));
  assert.ok(lines.includes('| steer \\| detox | -5 | 0.100 | 0.000 | — | — | 0.50 | 0.80 | 0.84 |'));
  assert.ok(
    lines.includes(
      '| *LM-Steer (Han et al. 2024)* | *—* | *0.249* | *0.089* | *28.26* | *—* | *0.55* | *0.84* | *0.84* |',
    ),
  );
  assert.ok(md.includes('offensive-linear/1 sha256:3fa6ffd30ada242e'));
  assert.ok(md.includes('**model**: gpt2-large'));
});

test('markdown: a sentiment-only report shows only the positive rate, as a percentage', () => {
  const md = renderReportMarkdown(
    buildReport({
      title: 's',
      rows: [
        { setting: 'neutral prompts', positiveRate: 0.5 },
        { setting: 'negative', positiveRate: 0.1234 },
      ],
    }),
  );
  assert.ok(md.includes('| Setting | Positive % |'));
  assert.ok(md.includes('| neutral prompts | 50.00 |'));
  assert.ok(md.includes('| negative | 12.34 |'));
  assert.throws(() => buildReport({ title: 'empty', rows: [] }), LmSteerError);
});

test('writeReport writes report.json (NaN as null) and report.md', () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  const { jsonPath, mdPath } = writeReport(dir, toxicity);
  const json = JSON.parse(readFileSync(jsonPath, 'utf8'));
  assert.equal(json.rows[1].ppl, null);
  assert.equal(json.rows[0].pooledPpl, 24);
  assert.equal(json.reference[0].source, 'Han et al. 2024');
  assert.equal(readFileSync(mdPath, 'utf8'), renderReportMarkdown(toxicity));
});

test('markdown: intervals beside each number, kept/dropped counts, the baseline marked, a collapsed setting flagged', () => {
  const md = renderReportMarkdown(
    buildReport({
      title: 'sweep',
      rows: [
        {
          setting: 'unsteered',
          baseline: true,
          positiveRate: 0.493,
          ppl: 5.82,
          pplKept: 300,
          pplDropped: 0,
          pooledPpl: 5.9,
          medianPpl: 5.1,
          junkRate: 0.01,
          ci: { positiveRate: [0.44, 0.55], ppl: [5.5, 6.1] },
        },
        {
          setting: 'sentiment=12',
          steerValue: 12,
          positiveRate: 0.64,
          ppl: 1570,
          pplKept: 15,
          pplDropped: 285,
          pooledPpl: 2.5e6,
          medianPpl: 3.1e5,
          junkRate: 0.95,
          ci: { positiveRate: [0.5, 0.7] },
        },
      ],
    }),
  );
  const lines = md.split('\n');
  assert.ok(
    lines.includes(
      '| unsteered (baseline) | — | 5.82 [5.50, 6.10] | 300/300 | 5.90 | 5.10 | 49.30 [44.00, 55.00] | 1.0 |',
    ),
    md,
  );
  assert.ok(
    lines.includes('| sentiment=12 ⚠ | 12 | 1570.00 | 15/300 | 2.5e+6 | 3.1e+5 | 64.00 [50.00, 70.00] | 95.0 |'),
    md,
  );
  assert.match(md, /⚠ \*\*sentiment=12: collapsed\?\*\* 285 of 300 generations \(95%\) have PPL ≥ 10⁴/);
  assert.match(md, /95% of generations contain replacement or control characters/);
  assert.match(md, /95% interval — Wilson for toxicity prob/);
  assert.doesNotMatch(md, /unsteered: collapsed/);
});
