#!/usr/bin/env node
// `npm run build`, also npm's `prepare` (npm ci/install in a checkout, npm pack, a project installing a checkout
// or the git repository): src/ → dist/ — JavaScript, .d.ts, and maps back to src/ (which ships too) — then every
// non-TypeScript file under src/ (the playground's page, script and styles) copied to the same place under dist/,
// where the compiled modules find them by import.meta.url. A checkout itself never runs dist/: bin/lmsteer.mjs
// runs src/ through tsx there.
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
rmSync('dist', { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

function assets(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? assets(p) : p.endsWith('.ts') ? [] : [p];
  });
}
for (const file of assets('src')) cpSync(file, join('dist', relative('src', file)));
