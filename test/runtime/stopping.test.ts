import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  eosBlocked,
  findStopString,
  maskEos,
  stopHoldback,
  tokenFinish,
  type StopConfig,
} from '../../src/runtime/stopping.js';

const cfg: StopConfig = { eosIds: [1, 7], stopAtEos: true, minNewTokens: 2, maxNewTokens: 4 };

test('EOS is blocked before minNewTokens, and only when EOS stops a row', () => {
  assert.equal(eosBlocked(cfg, 0), true);
  assert.equal(eosBlocked(cfg, 1), true);
  assert.equal(eosBlocked(cfg, 2), false);
  assert.equal(eosBlocked({ ...cfg, stopAtEos: false }, 0), false);
  assert.equal(eosBlocked({ ...cfg, eosIds: [] }, 0), false);
  const row = Float32Array.from([0, 5, 1, 2, 3, 4, 5, 9]);
  const masked = maskEos(row, cfg.eosIds);
  assert.deepEqual(Array.from(masked), [0, -Infinity, 1, 2, 3, 4, 5, -Infinity]);
  assert.equal(row[1], 5, 'the input row is left untouched');
});

test('tokenFinish: eos, then length, else go on', () => {
  assert.equal(tokenFinish(cfg, 7, 1), 'eos');
  assert.equal(tokenFinish(cfg, 3, 3), undefined);
  assert.equal(tokenFinish(cfg, 3, 4), 'length');
  assert.equal(tokenFinish(cfg, 1, 4), 'eos');
  assert.equal(tokenFinish({ ...cfg, stopAtEos: false }, 1, 2), undefined);
});

test('findStopString finds the earliest match, only new ones after `from`', () => {
  assert.deepEqual(findStopString('abc END x\n', ['\n', 'END']), { index: 4, stop: 'END' });
  assert.deepEqual(findStopString('a\nb', ['\n', '\nb']), { index: 1, stop: '\nb' });
  assert.equal(findStopString('no stop here', ['END']), undefined);
  // 'EN' was searched already; the match that ends in new text is still found
  assert.deepEqual(findStopString('xxEND', ['END'], 4), { index: 2, stop: 'END' });
  assert.equal(findStopString('END and more', ['END'], 6), undefined);
});

test('stopHoldback holds the longest suffix that could start a stop string', () => {
  assert.equal(stopHoldback('hello E', ['END']), 1);
  assert.equal(stopHoldback('hello EN', ['END', 'NOPE']), 2);
  assert.equal(stopHoldback('hello ', ['END']), 0);
  assert.equal(stopHoldback('x\n\n', ['\n\n\n', 'Q']), 2);
  assert.equal(stopHoldback('', ['END']), 0);
  assert.equal(stopHoldback('abc', []), 0);
});
