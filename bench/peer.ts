/**
 * The peer the benchmark compares against, node-llama-cpp, lives in its own folder (bench/peer/node_modules)
 * instead of the project's devDependencies: its optional GPU builds weigh ~600 MB, which every `npm ci`
 * (and CI) would otherwise download. `npm run bench` installs it there on first use: the package and this
 * platform's prebuilt CPU binary only.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const PEER_VERSION = '3.22.1';
const peerDir = join(dirname(fileURLToPath(import.meta.url)), 'peer');
const pkgDir = join(peerDir, 'node_modules', 'node-llama-cpp');

/** Install node-llama-cpp into bench/peer when missing; returns an error message when that fails. */
export function ensurePeer(): string | undefined {
  if (existsSync(join(pkgDir, 'package.json'))) return undefined;
  mkdirSync(peerDir, { recursive: true });
  const r = spawnSync(
    'npm',
    [
      'install',
      '--prefix',
      peerDir,
      '--no-save',
      '--no-audit',
      '--no-fund',
      '--omit=optional',
      `node-llama-cpp@${PEER_VERSION}`,
      `@node-llama-cpp/${process.platform}-${process.arch}@${PEER_VERSION}`,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  return r.status === 0
    ? undefined
    : `npm install of node-llama-cpp@${PEER_VERSION} into ${peerDir} failed (exit ${r.status})`;
}

export function peerVersion(): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return undefined;
  }
}

export async function importPeer(): Promise<typeof import('node-llama-cpp')> {
  return import(pathToFileURL(join(pkgDir, 'dist', 'index.js')).href);
}
