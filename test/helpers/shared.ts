/**
 * Locating ../shared (real models and data, read-only, never copied into the repo). Tests that need it call
 * `sharedPath(...)` and skip with a clear message when it is absent.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED_DIR = process.env.LMSTEER_SHARED ?? resolve(repoRoot, '..', 'shared');

/** Absolute path inside ../shared, or undefined when that file is absent. */
export function sharedPath(...parts: string[]): string | undefined {
  const p = join(SHARED_DIR, ...parts);
  return existsSync(p) ? p : undefined;
}

/** For `test(name, { skip: skipUnlessShared('models/stories260K') }, ...)`. */
export function skipUnlessShared(...parts: string[]): string | false {
  return sharedPath(...parts)
    ? false
    : `needs ${join(SHARED_DIR, ...parts)} (the read-only ../shared folder); absent here`;
}
