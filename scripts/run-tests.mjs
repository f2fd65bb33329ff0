#!/usr/bin/env node
// Runs every test/**/*.test.ts with Node's own test runner (through tsx). Node 20's --test takes no globs,
// so this script finds the files. Extra arguments filter by substring: `npm test -- safetensors`.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDeps } from './ensure-deps.mjs';

ensureDeps();

function find(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? find(p) : p.endsWith('.test.ts') ? [p] : [];
  });
}
const filters = process.argv.slice(2);
const files = find('test')
  .sort()
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...files], {
  stdio: 'inherit',
  env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' }, // tests that import onnxruntime-node directly (see src/util/ortTelemetryOff.ts)
});
process.exit(r.status ?? 1);
