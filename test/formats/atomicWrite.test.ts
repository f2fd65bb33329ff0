import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../src/formats/atomicWrite.js';
import { LmSteerError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'lmsteer-atomic-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('writes strings, buffers and chunk lists, replacing an existing file', () => {
  const p = join(dir, 'a.bin');
  writeFileSync(p, 'old contents that are longer');
  writeFileAtomic(p, 'héllo');
  assert.equal(readFileSync(p, 'utf8'), 'héllo');
  writeFileAtomic(p, Uint8Array.of(1, 2, 3));
  assert.deepEqual([...readFileSync(p)], [1, 2, 3]);
  writeFileAtomic(p, [Uint8Array.of(1), new Uint8Array(0), Uint8Array.of(2, 3)]);
  assert.deepEqual([...readFileSync(p)], [1, 2, 3]);
});

test('writeJsonAtomic writes indented JSON and leaves no temp files', () => {
  const p = join(dir, 'x.json');
  writeJsonAtomic(p, { a: [1, 2], b: 'c' });
  assert.deepEqual(JSON.parse(readFileSync(p, 'utf8')), { a: [1, 2], b: 'c' });
  assert.ok(readFileSync(p, 'utf8').endsWith('}\n'));
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
  );
});

test('a missing folder is NOT_FOUND naming it; a folder target is BAD_ARGUMENT', () => {
  assert.throws(
    () => writeFileAtomic(join(dir, 'nope', 'f.txt'), 'x'),
    (e: unknown) => e instanceof LmSteerError && e.code === 'NOT_FOUND' && e.message.includes(join(dir, 'nope')),
  );
  assert.throws(
    () => writeFileAtomic(dir, 'x'),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT',
  );
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
  );
});
