#!/usr/bin/env node
// Which code runs: an installed package (it sits in a node_modules folder) runs the compiled dist/; a checkout
// runs the TypeScript in src/ through tsx (a devDependency), so there is no build step between a clone and a
// run. Node resolves symlinks for this file, so `npm link` or `npm install <checkout>` still counts as a checkout.
import { fileURLToPath } from 'node:url';

if (/[\\/]node_modules[\\/]/.test(fileURLToPath(import.meta.url))) {
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
