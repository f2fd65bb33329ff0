import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseValues, terminalSafe } from '../../src/cli/options.js';
import { LmSteerError } from '../../src/util/errors.js';

test('parseValues: decimal only, bounded, and "__proto__" is an ordinary name', () => {
  assert.deepEqual({ ...parseValues(['a=1', 'b=-2.5', 'c=1e3', 'd=.5']) }, { a: 1, b: -2.5, c: 1000, d: 0.5 });
  for (const bad of ['x=0x10', 'x=0b1', 'x=1e308', 'x=', 'x=Infinity', 'x=1_000', `x=${'1'.repeat(60_000)}`]) {
    assert.throws(
      () => parseValues([bad]),
      (e: unknown) => e instanceof LmSteerError && e.message.length < 200,
      bad,
    );
  }
  const v = parseValues(['__proto__=5']);
  assert.equal(Object.getPrototypeOf(v), null);
  assert.deepEqual(Object.entries(v), [['__proto__', 5]]);
});

test('terminalSafe: control characters become visible escapes', () => {
  assert.equal(terminalSafe('evil\u001b[31mred\nline'), 'evil\\u001b[31mred\\u000aline');
  assert.equal(terminalSafe('plain ✓ text'), 'plain ✓ text');
});
