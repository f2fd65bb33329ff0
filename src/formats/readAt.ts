/**
 * Positioned reads from an open file descriptor, for formats that read tensors lazily instead of slurping
 * multi-GB files. Loops because readSync may return fewer bytes than asked and caps one call near 2 GiB.
 */
import { readSync } from 'node:fs';
import { LmSteerError } from '../util/errors.js';

const MAX_CHUNK = 1 << 30;

/** Fill `dst` with the bytes of `fd` at `position`; BAD_FILE naming `path` if the file ends first. */
export function readExactly(fd: number, dst: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < dst.length) {
    const want = Math.min(MAX_CHUNK, dst.length - done);
    const got = readSync(fd, dst, done, want, position + done);
    if (got === 0) {
      throw new LmSteerError(
        'BAD_FILE',
        `${path} ended at byte ${position + done} while reading ${dst.length} bytes at offset ${position}`,
        'the file is truncated or was changed while being read; download or write it again',
      );
    }
    done += got;
  }
}

/** `length` bytes of `fd` at `position`, in a fresh (so 8-byte aligned) buffer. */
export function readBytesAt(fd: number, position: number, length: number, path: string): Uint8Array {
  const buf = new Uint8Array(length);
  readExactly(fd, buf, position, path);
  return buf;
}
