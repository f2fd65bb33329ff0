/**
 * Crash-safe file writes for checkpoints, steer files and reports: write a temp file in the same directory,
 * fsync it, rename it over the target, fsync the directory. A reader sees the old file or the new one, never
 * half of one. Hand-written (write-file-atomic exists) because it is 40 lines and needs no extra dependency.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LmSteerError } from '../util/errors.js';

/** Write `data` (one buffer, several chunks written in order, or a UTF-8 string) to `path` atomically. */
export function writeFileAtomic(path: string, data: Uint8Array | string | Uint8Array[]): void {
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : Array.isArray(data) ? data : [data];
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx');
    for (const chunk of chunks) writeAll(fd, chunk);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // the temp file was never created, or was already renamed
    }
    throw asUserError(err, path);
  }
  fsyncDir(dir);
}

/** Write `obj` as indented JSON (with a final newline) to `path` atomically. */
export function writeJsonAtomic(path: string, obj: unknown): void {
  writeFileAtomic(path, JSON.stringify(obj, null, 2) + '\n');
}

function writeAll(fd: number, chunk: Uint8Array): void {
  let done = 0;
  while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
}

// Makes the rename itself durable. Some platforms (Windows) cannot open or fsync a directory; the rename is
// still atomic there, so a failure here is not worth failing the write for.
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // see above
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function asUserError(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const cause = { cause: err };
  switch (code) {
    case 'ENOENT':
      return new LmSteerError(
        'NOT_FOUND',
        `cannot write ${path}: folder ${dirname(path)} does not exist`,
        'create the folder first or choose another output path',
        cause,
      );
    case 'ENOTDIR':
      return new LmSteerError(
        'BAD_ARGUMENT',
        `cannot write ${path}: a part of ${dirname(path)} is a file, not a folder`,
        'choose another output path',
        cause,
      );
    case 'EISDIR':
      return new LmSteerError(
        'BAD_ARGUMENT',
        `cannot write ${path}: it is a folder`,
        'give a file path, not a folder',
        cause,
      );
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new LmSteerError(
        'BAD_ARGUMENT',
        `cannot write ${path}: permission denied (${code})`,
        'choose a writable output location',
        cause,
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return new LmSteerError(
        'LIMIT',
        `cannot write ${path}: no space left on the device`,
        'free some disk space or write elsewhere',
        cause,
      );
    default:
      return err;
  }
}
