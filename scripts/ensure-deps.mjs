// Installs the locked dependencies on first use, so `npm start` and `npm test` work straight after a clone.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function ensureDeps() {
  if (existsSync('node_modules/.package-lock.json')) return;
  console.error('lmsteer: first run — installing dependencies (npm ci)…');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], {
    stdio: 'inherit',
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' }, // its postinstall would fetch a CUDA provider
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
