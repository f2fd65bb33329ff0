/**
 * Reading files whose path or bytes may be hostile: only regular files (a FIFO would block forever, /dev/zero
 * never ends), at most a stated size (checked before any buffer is made), optionally only inside a folder
 * (a steer.json symlinked to /etc/passwd must not be read), and JSON errors that never quote the bytes.
 */
import { closeSync, constants, fstatSync, openSync, realpathSync } from 'node:fs';
import { dirname, sep } from 'node:path';
import { LmSteerError } from '../util/errors.js';
import { readExactly } from './readAt.js';

const MiB = 1 << 20;

/** Size caps by kind of file: far above real files, far below what would exhaust memory. */
export const FILE_LIMITS = {
  /** config.json, generation_config.json, tokenizer_config.json, steer.json, run records. */
  json: 16 * MiB,
  /** tokenizer.json (the largest real ones, with 256k-token vocabularies, are ~35 MB). */
  tokenizer: 256 * MiB,
  /** llama2.c tokenizer.bin. */
  tokenizerBin: 64 * MiB,
  /** A torch .pt steer checkpoint, read whole (reference steers are a few MB). */
  pt: 256 * MiB,
  /** A text file given on the command line (an API key file). */
  text: 64 * MiB,
  /** A dataset or prompt file, read whole (train/data.ts reads with the same cap). */
  dataset: 256 * MiB,
  /** A scorer's classifier weights (JSON). */
  classifier: 512 * MiB,
};

export interface OpenedFile {
  fd: number;
  size: number;
}

/**
 * Open `path` for reading if it is a regular file (following symlinks, which must stay inside `within` when
 * given). Opens non-blocking, so a FIFO does not hang the open, then checks the descriptor itself.
 */
export function openRegularFile(path: string, what = 'file', within?: string): OpenedFile {
  if (within !== undefined) checkInside(path, within, what);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LmSteerError(
      code === 'ENOENT' ? 'NOT_FOUND' : 'BAD_FILE',
      code === 'ENOENT' ? `${what} ${path} does not exist` : `cannot read ${what} ${path}: ${(e as Error).message}`,
      code === 'ENOENT' ? 'check the path' : undefined,
    );
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    const kind = st.isDirectory()
      ? 'a folder'
      : st.isFIFO()
        ? 'a FIFO'
        : st.isCharacterDevice() || st.isBlockDevice()
          ? 'a device'
          : st.isSocket()
            ? 'a socket'
            : 'not a regular file';
    throw new LmSteerError('BAD_FILE', `${what} ${path} is ${kind}, not a regular file`, 'give a regular file');
  }
  return { fd, size: st.size };
}

/** The whole of a regular file of at most `maxBytes` bytes. */
export function readRegularFile(path: string, maxBytes: number, what = 'file', within?: string): Buffer {
  const { fd, size } = openRegularFile(path, what, within);
  try {
    checkSize(path, size, maxBytes, what);
    const buf = Buffer.allocUnsafe(size);
    readExactly(fd, buf, 0, path);
    return buf;
  } finally {
    closeSync(fd);
  }
}

export function readTextFile(path: string, maxBytes: number, what = 'file', within?: string): string {
  return readRegularFile(path, maxBytes, what, within).toString('utf8');
}

export function checkSize(path: string, size: number, maxBytes: number, what = 'file'): void {
  if (size > maxBytes) {
    throw new LmSteerError(
      'BAD_FILE',
      `${what} ${path} is ${size} bytes, more than the ${maxBytes}-byte limit for it`,
      'this is not a file of that kind, or it is damaged',
    );
  }
}

/** Refuse `path` unless it (symlinks followed) lies inside `dir` (symlinks followed). */
export function checkInside(path: string, dir: string, what = 'file'): void {
  let real: string;
  let root: string;
  try {
    real = realpathSync(path);
    root = realpathSync(dir);
  } catch {
    return; // absent: the open reports it
  }
  if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) {
    throw new LmSteerError(
      'BAD_FILE',
      `${what} ${path} is a link to a file outside ${dir}`,
      'copy the file into the folder instead of linking it',
    );
  }
}

/**
 * JSON.parse with an error that names the file and position but never quotes the content (V8's messages
 * include a snippet, which would echo whatever file a link pointed at).
 */
export function parseJson(text: string, path: string, hint?: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const pos = /position (\d+)/.exec((e as Error).message)?.[1];
    throw new LmSteerError(
      'BAD_FILE',
      `${path} is not valid JSON${pos !== undefined ? ` (at byte ${pos})` : ''}`,
      hint ?? 'restore or regenerate the file',
    );
  }
}

/** Read and parse a JSON file of at most `maxBytes` (default FILE_LIMITS.json). */
export function readJsonFile(
  path: string,
  opts: { maxBytes?: number; what?: string; within?: string; hint?: string } = {},
): unknown {
  const text = readTextFile(path, opts.maxBytes ?? FILE_LIMITS.json, opts.what ?? 'file', opts.within);
  return parseJson(text.replace(/^\uFEFF/, ''), opts.what ? `${opts.what} ${path}` : path, opts.hint);
}
