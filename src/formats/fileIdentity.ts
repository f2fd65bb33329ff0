/**
 * A file's identity without reading its data: what the built-graph cache is keyed on, so a warm load does not
 * hash gigabytes of weights. A file that may have changed gets a new identity:
 *   local file  → real path, device + inode, size, mtime (ns) and a hash of its header bytes
 *   hub blob    → the blob's name (blobs/{sha256} is content-addressed: the hub cache names an LFS file by the
 *                 sha256 of its bytes), size and the header hash; the path and mtime are left out, so the same
 *                 blob reached through another snapshot or a moved cache keeps its key.
 * The header (safetensors JSON, llama2.c's config ints) catches a rewrite that kept size and mtime.
 */
import { createHash } from 'node:crypto';
import { fstatSync, realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';

const BLOB_NAME = /^[0-9a-f]{64}$/;

export function fileIdentity(path: string, fd: number, header: Uint8Array): string {
  const st = fstatSync(fd, { bigint: true });
  const headerHash = createHash('sha256').update(header).digest('hex').slice(0, 32);
  let real = path;
  try {
    real = realpathSync(path);
  } catch {
    // keep the given path: the file is open, so it existed a moment ago
  }
  if (BLOB_NAME.test(basename(real)) && basename(dirname(real)) === 'blobs') {
    return `blob:${basename(real)}|${st.size}|${headerHash}`;
  }
  return `file:${real}|${st.dev}:${st.ino}|${st.size}|${st.mtimeNs}|${headerHash}`;
}
