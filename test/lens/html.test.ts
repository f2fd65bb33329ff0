import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contrastRatio, evidenceColor, renderLensHtml } from '../../src/lens/html.js';
import { textEvidence } from '../../src/lens/evidence.js';
import type { SteerDim } from '../../src/lens/dims.js';

const ev = textEvidence(
  ['<s>', ' I', ' <script>alert(1)</script>', ' "love"', ' it', ' & no'],
  [-1, -1, -1, -5, -5],
  [-1, -3, -2, -1, -1],
);
const dims: SteerDim[] = [
  {
    index: 0,
    singularValue: 3.5,
    alignment: 0.4,
    positive: [{ token: ' <b>', id: 7, score: 2 }],
    negative: [{ token: " it's", id: 9, score: -1 }],
  },
];

test('renderLensHtml escapes every token and label', () => {
  const page = renderLensHtml({
    title: 'Steer <x> & "y"',
    dims: { dims },
    evidence: { text: ev, labels: { positive: '<pos>' } },
  });
  assert.ok(!page.includes('<script>'), 'no raw script tag');
  assert.ok(page.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(
    page.includes('&lt;b&gt;') &&
      page.includes('it&#39;s') &&
      page.includes('&quot;love&quot;') &&
      page.includes('&amp; no'),
  );
  assert.ok(page.includes('<title>Steer &lt;x&gt; &amp; &quot;y&quot;</title>'));
  assert.ok(page.includes('&lt;pos&gt;'));
  assert.ok(!/<script|javascript:|\son\w+=/i.test(page), 'works without JS and has none');
  assert.match(page, /<html lang="en">/);
});

test('spans are highlighted in HTML, and only the span tokens', () => {
  assert.deepEqual(ev.spans, [[2, 4]]);
  const page = renderLensHtml({ title: 't', evidence: { text: ev } });
  const marks = [...page.matchAll(/<p class="text">[\s\S]*?<\/p>/g)][0]![0].match(
    /<mark class="span">[\s\S]*?<\/mark>/g,
  )!;
  assert.equal(marks.length, 1);
  assert.ok(marks[0]!.includes('&lt;script&gt;') && marks[0]!.includes('&quot;love&quot;'));
  assert.ok(!marks[0]!.includes(' it<') && !marks[0]!.includes('&amp; no'));
  assert.match(page, /Span 1 \(tokens 2–3, total \+3\.000\)/);
});

test('evidence colours keep black text at WCAG AA contrast and encode the sign', () => {
  for (const x of [-1, -0.5, -0.01, 0, 0.01, 0.5, 1, null]) {
    const c = evidenceColor(x, 1);
    assert.match(c, /^#[0-9a-f]{6}$/);
    assert.ok(contrastRatio(c, '#000000') >= 4.5, `${x}: ${c}`);
  }
  assert.notEqual(evidenceColor(1, 1), evidenceColor(-1, 1));
  assert.equal(evidenceColor(0, 1), '#ffffff');
  assert.ok(Math.abs(contrastRatio('#ffffff', '#000000') - 21) < 1e-9);
});
