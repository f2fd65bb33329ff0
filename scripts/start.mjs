#!/usr/bin/env node
// `npm start`: the main job — steered generation with the default model. Extra arguments go to the command.
import { spawnSync } from 'node:child_process';
import { ensureDeps } from './ensure-deps.mjs';

ensureDeps();
const args = process.argv.slice(2);
const r = spawnSync(process.execPath, ['bin/lmsteer.mjs', 'generate', '--prompt', 'Once upon a time', '--max-new-tokens', '48', ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);
