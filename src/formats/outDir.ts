/**
 * Output folders given by the user (--out): created safely, and held by one run at a time.
 *
 * makeDir: Node's mkdirSync({recursive: true}) never returns for a path under /proc (it retries ENOENT
 * forever), and a path through a regular file gives ENOTDIR with a stack trace; here each missing component
 * is created in turn, and every failure is a message naming the folder.
 * lockOutDir: two `train` runs into one folder used to delete each other's checkpoint temp files; a lock file
 * holding the owner's pid makes the second run stop at once. A lock whose process is gone (SIGKILL, power
 * loss) is stale and taken over, so resuming after a crash needs nothing.
 */
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LmSteerError } from '../util/errors.js';

export const LOCK_FILE = '.lmsteer.lock';

/** mkdir -p `dir`; BAD_ARGUMENT naming it when a component is a file or cannot be created. */
export function makeDir(dir: string, what = 'output folder'): void {
  const path = resolve(dir);
  const missing: string[] = [];
  let p = path;
  for (;;) {
    let st;
    try {
      st = statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw cannot(dir, what, e); // ENOTDIR: a file above, found next
      missing.push(p);
      const up = dirname(p);
      if (up === p) throw cannot(dir, what, e);
      p = up;
      continue;
    }
    if (!st.isDirectory())
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `${what} ${dir}: ${p} is a file, not a folder`,
        'give a folder path (it is created if absent)',
      );
    break;
  }
  for (const m of missing.reverse()) {
    try {
      mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw cannot(dir, what, e);
    }
  }
}

function cannot(dir: string, what: string, e: unknown): LmSteerError {
  return new LmSteerError(
    'BAD_ARGUMENT',
    `cannot create ${what} ${dir}: ${(e as Error).message}`,
    'give a folder you can write to',
  );
}

export interface OutDirLock {
  release(): void;
}

interface LockInfo {
  pid: number;
  host: string;
  command: string;
  started: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Create `dir` and hold it for this process (`command` names the run in the other one's message). */
export function lockOutDir(dir: string, command: string): OutDirLock {
  makeDir(dir);
  const path = join(dir, LOCK_FILE);
  const me: LockInfo = { pid: process.pid, host: hostname(), command, started: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw cannot(dir, 'output folder', e);
      let other: Partial<LockInfo> = {};
      try {
        other = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
      } catch {
        // unreadable or half written: treated as stale below unless its owner is provably alive
      }
      const otherHost = other.host ?? me.host;
      if (typeof other.pid === 'number' && (otherHost !== me.host || alive(other.pid))) {
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `${dir} is in use by another lmsteer ${other.command ?? 'run'} (pid ${other.pid}${otherHost !== me.host ? ` on ${otherHost}` : ''}, started ${other.started ?? '?'})`,
          `wait for it to finish, or give another --out; if that process is gone, delete ${path}`,
        );
      }
      try {
        unlinkSync(path); // stale: its process is gone
      } catch {
        // someone else took it over first; the next open tells
      }
      continue;
    }
    writeSync(fd, JSON.stringify(me));
    closeSync(fd);
    break;
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.removeListener('exit', release);
    try {
      const now = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
      if (now.pid === me.pid && now.started === me.started) unlinkSync(path);
    } catch {
      // already gone
    }
  };
  process.once('exit', release); // the CLI may exit(2) on an error without unwinding
  return { release };
}
