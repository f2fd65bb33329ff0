/**
 * Files that ship inside the lmsteer package: the embedded default model (assets/) and the trained steers
 * (steers/). They are found from this module's own location, two folders below the package root both in a
 * checkout (src/util/, run through tsx) and in the installed package (dist/util/), so they resolve the same
 * from either and never from the working directory.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder holding lmsteer's package.json. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** lmsteer's version, from its package.json. */
export const PACKAGE_VERSION = (
  JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

/**
 * Models embedded in the package, by the name `--model` takes (matched case-insensitively, with no `@revision`:
 * `stories260K@main` is the hub's copy) → their folder under assets/ (a llama2.c model.bin + tokenizer.bin).
 */
const EMBEDDED_MODELS: Record<string, string> = { stories260k: 'stories260K' };

/** The folder of the embedded model `spec` names, or undefined when it names none. */
export function embeddedModelDir(spec: string): string | undefined {
  const folder = EMBEDDED_MODELS[spec.toLowerCase()];
  return folder === undefined ? undefined : join(PACKAGE_ROOT, 'assets', folder);
}

/** The folder of the steers shipped with lmsteer (see steers/README.md). */
export const SHIPPED_STEERS_DIR = join(PACKAGE_ROOT, 'steers');

/**
 * The folder of the shipped steer called `name` (e.g. `stories260K-sentiment`), or undefined when there is none.
 * Only a bare folder name qualifies, so a path a user writes never turns into a shipped steer.
 */
export function shippedSteerDir(name: string): string | undefined {
  if (!/^[\w.-]+$/.test(name) || name.startsWith('.')) return undefined;
  const dir = join(SHIPPED_STEERS_DIR, name);
  return existsSync(join(dir, 'steer.json')) && statSync(dir).isDirectory() ? dir : undefined;
}
