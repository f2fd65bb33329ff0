import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyLabelMap, parseLabelMap, type RawLabel } from '../../src/train/labels.js';
import { LmSteerError } from '../../src/util/errors.js';

const raw = (...values: string[]): RawLabel[] => values.map((value, i) => ({ value, file: 'f.jsonl', line: i + 1 }));

test('binary maps 0/1, neg/pos, false/true and ±1 to −1/+1', () => {
  const { values } = applyLabelMap(
    parseLabelMap('binary'),
    raw('0', '1', 'neg', 'POS', 'false', 'true', '-1', '+1', 'negative', 'positive'),
    'f',
  );
  assert.deepEqual(values, [-1, 1, -1, 1, -1, 1, -1, 1, -1, 1]);
});

test('sst5 maps 0-based classes to c/2 − 1 and detects 1-based files', () => {
  const zero = applyLabelMap(parseLabelMap('sst5'), raw('0', '1', '2', '3', '4'), 'f');
  assert.deepEqual(zero.values, [-1, -0.5, 0, 0.5, 1]);
  assert.match(zero.report.description, /0-based/);
  const one = applyLabelMap(parseLabelMap('sst5'), raw('5', '1', '3'), 'f');
  assert.deepEqual(one.values, [1, -1, 0]);
  assert.match(one.report.description, /1-based/);
  // SST's fastText format is 1-based even without a 5 in sight.
  const ft = applyLabelMap(parseLabelMap('sst5'), raw('__label__1', '__label__4'), 'f');
  assert.deepEqual(ft.values, [-1, 0.5]);
  // forced conventions
  assert.deepEqual(applyLabelMap(parseLabelMap('sst5-1'), raw('1', '2'), 'f').values, [-1, -0.5]);
  assert.deepEqual(applyLabelMap(parseLabelMap('sst5-0'), raw('1', '2'), 'f').values, [-0.5, 0]);
});

test('sst5 refuses a file with both 0 and 5, naming lines', () => {
  assert.throws(
    () => applyLabelMap(parseLabelMap('sst5'), raw('0', '3', '5'), 'f.jsonl'),
    (e: LmSteerError) => e.code === 'BAD_DATA' && /line 1/.test(e.message) && /line 3/.test(e.message),
  );
});

test('identity and custom maps; labels outside the map name file, line and value', () => {
  assert.deepEqual(applyLabelMap(parseLabelMap('identity'), raw('0.25', '-3'), 'f').values, [0.25, -3]);
  assert.deepEqual(applyLabelMap(parseLabelMap('toxic=-1, clean = 1'), raw('clean', 'toxic'), 'f').values, [1, -1]);
  assert.throws(
    () => applyLabelMap(parseLabelMap('toxic=-1,clean=1'), raw('clean', 'meh'), 'f'),
    (e: LmSteerError) => e.code === 'BAD_DATA' && e.message.includes('f.jsonl:2') && e.message.includes('"meh"'),
  );
  assert.throws(() => applyLabelMap(parseLabelMap('binary'), raw('2'), 'f'), /f\.jsonl:1: label "2"/);
  assert.throws(() => applyLabelMap(parseLabelMap('identity'), raw('x'), 'f'), /label "x"/);
});

test('bad label map specs are refused', () => {
  assert.throws(
    () => parseLabelMap('tri'),
    (e: LmSteerError) => e.code === 'BAD_ARGUMENT',
  );
  assert.throws(() => parseLabelMap('a=1,b=x'), /"b=x"/);
  assert.throws(() => parseLabelMap('a=1,a=2'), /twice/);
});
