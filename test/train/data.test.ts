import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATA_LIMITS, describeDataset, loadDataset, parseSourceSpec } from '../../src/train/data.js';
import { LmSteerError } from '../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const dir = mkdtempSync(join(tmpdir(), 'lmsteer-data-'));
function file(name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}
const isCode = (code: string, re?: RegExp) => (e: unknown) =>
  e instanceof LmSteerError && e.code === code && (!re || re.test(e.message));

test('parseSourceSpec: only a trailing :number is a label', () => {
  assert.deepEqual(parseSourceSpec('toxic.txt:-1'), { path: 'toxic.txt', label: -1 });
  assert.deepEqual(parseSourceSpec('a/b.txt:+0.5'), { path: 'a/b.txt', label: 0.5 });
  assert.deepEqual(parseSourceSpec('dir:with:colons/x.txt'), { path: 'dir:with:colons/x.txt' });
  assert.deepEqual(parseSourceSpec('dir:1/x.txt:1'), { path: 'dir:1/x.txt', label: 1 });
  assert.deepEqual(parseSourceSpec('x.txt'), { path: 'x.txt' });
  const literal = file('odd:1', 'hello\n');
  assert.deepEqual(parseSourceSpec(literal), { path: literal });
});

test('txt files with fixed labels; several files per run; empty lines skipped', () => {
  const tox = file('tox.txt', 'you idiot\n\nshut up\n');
  const clean = file('clean.txt', 'thank you\r\n');
  const ds = loadDataset([`${tox}:-1`, `${clean}:1`]);
  assert.deepEqual(
    ds.examples.map((e) => [e.text, e.label, e.line]),
    [
      ['you idiot', -1, 1],
      ['shut up', -1, 3],
      ['thank you', 1, 1],
    ],
  );
  assert.deepEqual(ds.summary.perLabel, [
    { label: -1, count: 2 },
    { label: 1, count: 1 },
  ]);
  assert.match(describeDataset(ds), /fixed label -1/);
  assert.equal(ds.hash.length, 64);
  assert.throws(() => loadDataset([tox]), isCode('BAD_DATA', /no labels/));
});

test('jsonl: default and configured fields, dotted paths, quote stripping, errors with line numbers', () => {
  const p = file('a.jsonl', '{"sentence": "\\"good film\\"", "label": "1"}\n\n{"sentence": "bad", "label": 0}\n');
  const ds = loadDataset([p]);
  assert.deepEqual(
    ds.examples.map((e) => [e.text, e.label]),
    [
      ['good film', 1],
      ['bad', -1],
    ],
  );
  const nested = file('n.jsonl', '{"prompt": {"text": "hi"}, "y": "pos"}\n');
  assert.equal(loadDataset([nested], { textField: 'prompt.text', labelField: 'y' }).examples[0]!.text, 'hi');
  assert.throws(
    () => loadDataset([file('bad.jsonl', '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n')]),
    isCode('BAD_DATA', /bad\.jsonl:2: not valid JSON/),
  );
  assert.throws(
    () => loadDataset([file('nolabel.jsonl', '{"text": "a"}\n')]),
    isCode('BAD_DATA', /nolabel\.jsonl:1: no label field/),
  );
  assert.throws(
    () => loadDataset([file('notext.jsonl', '{"body": "a", "label": 1}\n')]),
    isCode('BAD_DATA', /no text field.*keys: body, label/),
  );
  assert.throws(
    () => loadDataset([file('lab.jsonl', '{"text": "a", "label": 1}\n{"text": "b", "label": 7}\n')]),
    isCode('BAD_DATA', /lab\.jsonl:2: label "7"/),
  );
  assert.throws(() => loadDataset([file('empty.jsonl', '\n\n')]), isCode('BAD_DATA', /has no examples/));
  assert.throws(() => loadDataset([join(dir, 'missing.jsonl')]), isCode('NOT_FOUND'));
});

test('csv with header, headerless csv, tsv without quoting', () => {
  const c = file('a.csv', 'id,comment_text,label\n1,"hello, world",1\n2,"multi\nline",0\n');
  const ds = loadDataset([c]);
  assert.deepEqual(
    ds.examples.map((e) => [e.text, e.label, e.line]),
    [
      ['hello, world', 1, 2],
      ['multi\nline', -1, 3],
    ],
  );
  const headerless = file('h.csv', '"some long comment, with commas",0\nanother one,1\n');
  assert.deepEqual(
    loadDataset([headerless]).examples.map((e) => [e.text, e.label]),
    [
      ['some long comment, with commas', -1],
      ['another one', 1],
    ],
  );
  const tsv = file('a.tsv', 'label\tsentence\n0\tsays "hi\n1\tok\n');
  assert.deepEqual(
    loadDataset([tsv]).examples.map((e) => [e.text, e.label]),
    [
      ['says "hi', -1],
      ['ok', 1],
    ],
  );
  const para = file('p.tsv', 'toxic\tneutral1\nbad words\tnice words\n');
  assert.throws(() => loadDataset([para]), isCode('BAD_DATA', /no text field.*columns: toxic, neutral1/));
  const both = loadDataset([
    { path: para, textField: 'toxic', label: -1 },
    { path: para, textField: 'neutral1', label: 1 },
  ]);
  assert.deepEqual(
    both.examples.map((e) => [e.text, e.label]),
    [
      ['bad words', -1],
      ['nice words', 1],
    ],
  );
  assert.throws(() => loadDataset([file('nl.csv', 'text,score\na,1\n')]), isCode('BAD_DATA', /no label field/));
});

test('balancing: downsample to the rarest label (seeded), per-class limit keeps the first ones', () => {
  const lines = Array.from({ length: 10 }, (_, i) => JSON.stringify({ text: `t${i}`, label: i < 7 ? 1 : 0 })).join(
    '\n',
  );
  const p = file('bal.jsonl', lines);
  const a = loadDataset([p], { balance: 'downsample', seed: 3 });
  assert.deepEqual(a.summary.perLabel, [
    { label: -1, count: 3 },
    { label: 1, count: 3 },
  ]);
  assert.deepEqual(loadDataset([p], { balance: 'downsample', seed: 3 }).examples, a.examples);
  const lim = loadDataset([p], { perClassLimit: 2 });
  assert.deepEqual(
    lim.examples.map((e) => e.text),
    ['t0', 't1', 't7', 't8'],
  );
});

const sst5 = ['data', 'sentiment', 'sst5_prrao87', 'sst_dev.txt'];
test('real SST-5 fastText file: 1-based __label__N detected', { skip: skipUnlessShared(...sst5) }, () => {
  const ds = loadDataset([sharedPath(...sst5)!], { labelMap: 'sst5' });
  assert.equal(ds.summary.total, 1101);
  assert.deepEqual(
    ds.summary.perLabel.map((p) => p.label),
    [-1, -0.5, 0, 0.5, 1],
  );
  assert.match(ds.summary.files[0]!.labels, /1-based/);
  assert.ok(!ds.examples[0]!.text.startsWith('__label__'));
});

const yaolu = ['data', 'sentiment', 'sst5_lowercase_yaolu', 'dev.jsonl'];
test('real lowercased SST-5 jsonl: 0-based, wrapping quotes stripped', { skip: skipUnlessShared(...yaolu) }, () => {
  const ds = loadDataset([sharedPath(...yaolu)!], { labelMap: 'sst5' });
  assert.equal(ds.summary.total, 1101);
  assert.match(ds.summary.files[0]!.labels, /0-based/);
  assert.ok(ds.examples.every((e) => !(e.text.startsWith('"') && e.text.endsWith('"'))));
});

const sst2 = ['data', 'sentiment', 'sst2_glue', 'dev.tsv'];
const jig = ['data', 'toxicity', 'jigsaw_wiki_balanced_robtest', 'jigsaw_balanced_12180.csv'];
const detox = ['data', 'toxicity', 'snlp_detox_jigsaw', 'dev_toxic.txt'];
test(
  'real SST-2 tsv, headerless Jigsaw csv, s-nlp txt with a fixed label',
  { skip: skipUnlessShared(...sst2) || skipUnlessShared(...jig) || skipUnlessShared(...detox) },
  () => {
    const s2 = loadDataset([sharedPath(...sst2)!]);
    assert.equal(s2.summary.total, 872);
    const j = loadDataset([sharedPath(...jig)!], { labelMap: '1=-1,0=1' });
    assert.deepEqual(j.summary.perLabel, [
      { label: -1, count: 6090 },
      { label: 1, count: 6090 },
    ]);
    const t = loadDataset([`${sharedPath(...detox)!}:-1`]);
    assert.equal(t.summary.total, 6648);
  },
);

test('a line or a file beyond the limits is BAD_DATA naming it, checked before parsing', () => {
  const saved = { ...DATA_LIMITS };
  try {
    DATA_LIMITS.lineChars = 1000;
    const long = file('long.jsonl', `{"text": "ok", "label": 1}\n{"text": "${'x'.repeat(2000)}", "label": 0}\n`);
    assert.throws(() => loadDataset([long]), isCode('BAD_DATA', /long\.jsonl:2: the line is 2\d{3} bytes/));
    const txt = file('long.txt', `fine\n${'y'.repeat(1500)}\n`);
    assert.throws(() => loadDataset([`${txt}:1`]), isCode('BAD_DATA', /long\.txt:2: the line/));
    const csv = file('long.csv', `text,label\n"${'z'.repeat(1500)}",1\n`);
    assert.throws(() => loadDataset([csv]), isCode('BAD_DATA', /long\.csv/));
    DATA_LIMITS.fileBytes = 100;
    const big = file('big.txt', 'a line\n'.repeat(50));
    assert.throws(
      () => loadDataset([`${big}:1`]),
      isCode('BAD_DATA', /big\.txt is 350 bytes, more than the 100-byte limit/),
    );
  } finally {
    Object.assign(DATA_LIMITS, saved);
  }
});

test('a FIFO or a folder as a dataset file is refused, not read', () => {
  const fifo = join(dir, 'pipe.txt');
  execFileSync('mkfifo', [fifo]);
  assert.throws(() => loadDataset([`${fifo}:1`]), isCode('BAD_FILE', /pipe\.txt is a FIFO/));
  assert.throws(
    () => loadDataset([`${dir}:1`]),
    (e: unknown) => e instanceof LmSteerError,
  );
});
