import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dimsTerminal, evidenceTerminal, sanitize, shouldColor } from '../../src/lens/terminal.js';
import { textEvidence } from '../../src/lens/evidence.js';
import type { SteerDim } from '../../src/lens/dims.js';

const ev = textEvidence(
  ['<s>', ' I', ' love', ' it\x1b[31m', ' but', ' no'],
  [-1, -1, -1, -5, -5],
  [-1, -3, -2, -1, -1],
);

test('shouldColor follows TTY, NO_COLOR and FORCE_COLOR', () => {
  assert.equal(shouldColor({ isTTY: true }, {}), true);
  assert.equal(shouldColor({ isTTY: false }, {}), false);
  assert.equal(shouldColor({}, {}), false);
  assert.equal(shouldColor({ isTTY: true }, { NO_COLOR: '1' }), false);
  assert.equal(shouldColor({ isTTY: true }, { NO_COLOR: '' }), true);
  assert.equal(shouldColor({ isTTY: false }, { FORCE_COLOR: '1' }), true);
});

test('plain evidence has no escape codes and marks the spans', () => {
  const out = evidenceTerminal(ev, { color: false });
  assert.ok(!out.includes('\x1b'), 'token escape sequences are neutralised');
  assert.ok(out.startsWith('<s> I[[ love it\\x1b[31m]]1 but no'));
  assert.match(out, /1\. tokens 2–3 \(\+3\.000\)/);
});

test('coloured evidence: span tokens bold+underlined, others not', () => {
  const out = evidenceTerminal(ev, { color: true });
  assert.match(out, /\x1b\[30;48;5;\d+;1;4m love\x1b\[0m/);
  assert.match(out, /\x1b\[30;48;5;\d+m but\x1b\[0m/);
  assert.ok(!/;1;4m but/.test(out));
  assert.ok(!out.includes('\x1b[31m'), 'the token’s own escape is shown, not executed');
});

test('dims table lists both poles', () => {
  const dims: SteerDim[] = [
    {
      index: 0,
      singularValue: 2,
      alignment: -0.25,
      positive: [{ token: ' good', id: 1, score: 1 }],
      negative: [{ token: '\n', id: 2, score: -1 }],
    },
  ];
  assert.equal(dimsTerminal(dims, { color: false }), '#1  σ = 2.000  cos(u, v) = -0.25\n  + good\n  − "\\n"\n');
  assert.match(dimsTerminal(dims, { color: true }), /\x1b\[1m#1/);
  assert.equal(sanitize('a\x9bb\tc'), 'a\\x9bb\tc');
});
