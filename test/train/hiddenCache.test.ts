import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HiddenCache } from '../../src/train/hiddenCache.js';
import { fakeExtractor } from './fixtures/fakeModel.js';

const V = 50;
const d = 4;
const base = { modelFingerprint: 'fake-model', maxLength: 5 };

function shardOf(cache: HiddenCache): string {
  const f = readdirSync(cache.folder!).find((x) => x.startsWith('shard-'))!;
  return join(cache.folder!, f);
}

test('misses are extracted once, truncated to max length, and reused by a later run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-hc-'));
  const calls = { texts: [] as string[] };
  const extract = fakeExtractor(V, d, calls);
  const a = HiddenCache.open({ ...base, dir });
  const got = await a.get(['hello world', 'hi', 'hello world'], extract);
  assert.deepEqual(calls.texts, ['hello world', 'hi']);
  assert.equal(got[0]!.ids.length, 5);
  assert.deepEqual(got[0]!.hidden.shape, [5, d]);
  assert.deepEqual(got[1]!.hidden.shape, [2, d]);
  const direct = (await extract(['hello world']))[0]!;
  assert.deepEqual([...got[0]!.hidden.data], [...direct.hidden.data.slice(0, 5 * d)]);
  a.close();
  calls.texts.length = 0;

  const b = HiddenCache.open({ ...base, dir });
  assert.equal(b.size, 2);
  const again = await b.get(['hi', 'hello world'], extract);
  assert.deepEqual(calls.texts, []);
  assert.deepEqual([...again[1]!.hidden.data], [...got[0]!.hidden.data]);
  assert.deepEqual(b.stats, { hits: 2, misses: 0, corrupt: 0 });
  b.close();

  // Another model or max length does not see these entries.
  const c = HiddenCache.open({ ...base, dir, maxLength: 6 });
  assert.equal(c.size, 0);
  c.close();
});

test('pad rows: kept per text, reused when enough are stored, recomputed when more are needed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-hc-'));
  const calls: { texts: string[]; padTo?: number[] } = { texts: [] };
  const extract = fakeExtractor(V, d, calls);
  const opts = { ...base, maxLength: 8, dir, padId: 0 };
  const a = HiddenCache.open(opts);
  const [e1, e2] = await a.get(['abc', 'abcdefg'], extract, [6, 6]);
  assert.deepEqual(e1!.ids.length, 3);
  assert.deepEqual(e1!.hidden.shape, [6, d], 'three real rows, three pad rows');
  assert.deepEqual(e2!.hidden.shape, [7, d], 'a text longer than the asked rows keeps its own length');
  a.close();
  const b = HiddenCache.open(opts);
  calls.texts.length = 0;
  const [again] = await b.get(['abc'], extract, [4]);
  assert.deepEqual(calls.texts, [], 'six stored rows serve a request for four');
  assert.deepEqual([...again!.hidden.data], [...e1!.hidden.data]);
  const [more] = await b.get(['abc'], extract, [8]);
  assert.deepEqual(calls.texts, ['abc']);
  assert.deepEqual(more!.hidden.shape, [8, d]);
  assert.deepEqual([...more!.hidden.data.subarray(0, 6 * d)], [...e1!.hidden.data]);
  b.close();
  const c = HiddenCache.open(opts);
  assert.deepEqual((await c.get(['abc'], extract, [8]))[0]!.hidden.shape, [8, d], 'the later record wins');
  await assert.rejects(HiddenCache.open({ ...base, dir }).get(['abc'], extract, [4]), /internal/);
  assert.equal(HiddenCache.open({ ...opts, padId: 1 }).size, 0, 'another pad id: another folder');
  c.close();
});

test('fp16 storage rounds values and halves the payload', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-hc-'));
  const extract = fakeExtractor(V, d);
  const c = HiddenCache.open({ ...base, dir, fp16: true });
  const [e] = await c.get(['abcde'], extract);
  const exact = (await extract(['abcde']))[0]!.hidden.data;
  for (let i = 0; i < exact.length; i++) assert.ok(Math.abs(e!.hidden.data[i]! - exact[i]!) < 1e-3);
  c.close();
  const c2 = HiddenCache.open({ ...base, dir, fp16: true });
  const [e2] = await c2.get(['abcde'], extract);
  assert.deepEqual([...e2!.hidden.data], [...e!.hidden.data]); // hit and miss give the same values
  c2.close();
});

test('a truncated tail (killed run) and a damaged payload are detected and recomputed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-hc-'));
  const calls = { texts: [] as string[] };
  const extract = fakeExtractor(V, d, calls);
  const a = HiddenCache.open({ ...base, dir });
  await a.get(['one', 'two', 'three'], extract);
  const shard = shardOf(a);
  a.close();
  // Cut the last record in half.
  truncateSync(shard, statSync(shard).size - 10);
  const b = HiddenCache.open({ ...base, dir });
  assert.equal(b.size, 2);
  calls.texts.length = 0;
  await b.get(['one', 'two', 'three'], extract);
  assert.deepEqual(calls.texts, ['three']);
  b.close();
  // Flip a byte inside the first record's payload: its crc no longer matches.
  const bytes = readFileSync(shard);
  const headerLen = bytes.readUInt32LE(4);
  bytes[8 + headerLen + 5] ^= 0xff;
  writeFileSync(shard, bytes);
  const c = HiddenCache.open({ ...base, dir });
  calls.texts.length = 0;
  const [one] = await c.get(['one'], extract);
  assert.deepEqual(calls.texts, ['one']);
  assert.equal(c.stats.corrupt, 1);
  assert.deepEqual(
    one!.ids,
    [...'one'].map((ch) => ch.codePointAt(0)! % V),
  );
  c.close();
  // Garbage appended to a shard ends its scan without breaking the entries before it.
  appendFileSync(shard, Buffer.from('not a record at all'));
  const e = HiddenCache.open({ ...base, dir });
  assert.ok(e.has('two'));
  e.close();
});

test('memory mode (no dir) caches within the run', async () => {
  const calls = { texts: [] as string[] };
  const c = HiddenCache.open({ ...base });
  await c.get(['x y'], fakeExtractor(V, d, calls));
  await c.get(['x y'], fakeExtractor(V, d, calls));
  assert.deepEqual(calls.texts, ['x y']);
  assert.equal(c.folder, undefined);
});

test('an extractor returning the wrong shape is refused', async () => {
  const c = HiddenCache.open({ ...base });
  const bad = async (texts: string[]) =>
    texts.map(() => ({
      hidden: { dtype: 'float32' as const, shape: [3, d], data: new Float32Array(3 * d) },
      ids: [1, 2],
    }));
  await assert.rejects(c.get(['a'], bad), /shape \[3,4\] for 2 tokens/);
});
