/** Output folders: created without hanging or stack traces, and held by one run at a time. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE, lockOutDir, makeDir } from '../../src/formats/outDir.js';
import { LmSteerError } from '../../src/util/errors.js';

const userError = (re: RegExp) => (e: unknown) => e instanceof LmSteerError && re.test(e.message);

test('makeDir: nested folders; a file on the path, /proc and unwritable places are clear errors', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'lmsteer-out-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  makeDir(join(root, 'a', 'b', 'c'));
  makeDir(join(root, 'a', 'b', 'c')); // again: nothing to do
  assert.ok(existsSync(join(root, 'a', 'b', 'c')));
  writeFileSync(join(root, 'f'), 'x');
  assert.throws(() => makeDir(join(root, 'f')), userError(/f is a file, not a folder/));
  assert.throws(() => makeDir(join(root, 'f', 'sub')), userError(/is a file, not a folder/));
  // Node's own recursive mkdir never returns for this one
  assert.throws(() => makeDir('/proc/lmsteer-x/y'), userError(/cannot create output folder \/proc\/lmsteer-x\/y/));
});

test('lockOutDir: a second holder is refused naming the first; release frees it; a dead owner is taken over', (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'lmsteer-lock-')), 'run');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = lockOutDir(dir, 'train');
  assert.throws(
    () => lockOutDir(dir, 'eval'),
    userError(new RegExp(`in use by another lmsteer train \\(pid ${process.pid}`)),
  );
  a.release();
  assert.ok(!existsSync(join(dir, LOCK_FILE)));
  // a lock left by a process that no longer exists (killed): taken over
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), command: 'train' }));
  const b = lockOutDir(dir, 'train');
  assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
  b.release();
});
