#!/usr/bin/env node
// Which code runs: an installed package (it sits in a node_modules folder) runs the compiled dist/; a checkout
// runs the TypeScript in src/ through tsx (a devDependency), so there is no build step between a clone and a
// run. Node resolves symlinks for this file, so `npm link` or `npm install <checkout>` still counts as a checkout.
import { fileURLToPath } from 'node:url';

// ONNX Runtime's telemetry crashes on long command lines and writes files per process; it reads this variable
// when the first session starts (see src/util/ortTelemetryOff.ts). Child processes inherit it.
process.env.ORT_DISABLE_TELEMETRY = '1';
if (/[\\/]node_modules[\\/]/.test(fileURLToPath(import.meta.url))) {
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
