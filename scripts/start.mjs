#!/usr/bin/env node
// `npm start`: the main job — the same prompt generated with the default model (stories260K, embedded in
// assets/, so no network) steered negative, not at all, and positive by the sentiment steer shipped in steers/
// (trained on SST-2 with `lmsteer train`, see steers/README.md). Extra arguments go to every `lmsteer generate`
// call, e.g. `npm start -- --model DIR`.
import { spawnSync } from 'node:child_process';
import { ensureDeps } from './ensure-deps.mjs';

ensureDeps();
const extra = process.argv.slice(2);
for (const value of [-8, 0, 8]) {
  process.stdout.write(`\n── sentiment = ${value} ${'─'.repeat(40)}\n`);
  const args = [
    'bin/lmsteer.mjs',
    'generate',
    '--prompt',
    'Once upon a time',
    '--max-new-tokens',
    '48',
    '--seed',
    '1',
    '--steer',
    'steers/stories260K-sentiment',
    '--value',
    `sentiment=${value}`,
    ...extra,
  ];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    if (r.status === 2 && value === -8)
      process.stderr.write('  (with npm start, pass flags after --: npm start -- --model path/to/model)\n');
    process.exit(r.status ?? 1);
  }
}
