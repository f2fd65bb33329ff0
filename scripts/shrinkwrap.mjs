#!/usr/bin/env node
// `write` (prepack): package-lock.json → npm-shrinkwrap.json without the devDependencies, so the tarball carries
// the lock: npm installs a published package's shrinkwrap (never its package-lock.json), so an install of lmsteer
// from a registry gets exactly the locked versions of its runtime dependencies. (npm 11 reads it only for registry
// packages: `npm install ./lmsteer-x.tgz` resolves the ranges; test/package/ installs it with a lock made from it.)
// `remove` (postpack): delete it again — in a checkout npm would prefer a leftover npm-shrinkwrap.json to
// package-lock.json and leave the dev tools out.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'npm-shrinkwrap.json');
const [cmd] = process.argv.slice(2);
if (cmd === 'remove') {
  rmSync(out, { force: true });
} else if (cmd === 'write') {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  const { devDependencies: _dev, ...self } = lock.packages[''];
  // `dev` marks packages only the devDependencies need; `devOptional` ones are also optional runtime dependencies.
  const packages = Object.fromEntries(Object.entries(lock.packages).filter(([path, p]) => path !== '' && !p.dev));
  writeFileSync(out, JSON.stringify({ ...lock, packages: { '': self, ...packages } }, null, 2) + '\n');
} else {
  console.error('usage: node scripts/shrinkwrap.mjs write|remove');
  process.exit(2);
}
