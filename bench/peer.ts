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
import { THREADS } from './settings.js';
import { now } from './stats.js';

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

/** llama.cpp on a GGUF, CPU only, with the bench's threads: the loaded model and one context (`loadMs`: both). */
export async function openLlamaCpp(gguf: string, contextSize: number) {
  let lib: Awaited<ReturnType<typeof importPeer>>;
  try {
    lib = await importPeer();
  } catch (e) {
    throw new Error(`node-llama-cpp is not installed: ${(e as Error).message}`);
  }
  const llama = await lib.getLlama({
    gpu: false,
    build: 'never',
    logLevel: lib.LlamaLogLevel.error,
    maxThreads: THREADS,
  });
  const t0 = now();
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const context = await model.createContext({ contextSize, batchSize: 512, threads: THREADS, sequences: 1 });
  return { lib, llama, model, context, loadMs: now() - t0 };
}

// untyped: see bench/peer-types.d.ts
type LlamaSequence = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** llama.cpp's counterpart of decodeRun: prefill `prompt` (+ its first token), then timed windows of greedy steps. */
export async function llamaCppGreedy(seq: LlamaSequence, prompt: number[], steps: number, windows: number) {
  await seq.clearHistory();
  const it = seq.evaluate(prompt as never[], { temperature: 0, yieldEogToken: true });
  const t0 = now();
  const first = await it.next();
  const prefillMs = now() - t0;
  const tokens: number[] = [first.value as number];
  const windowMs: number[] = [];
  for (let w = 0; w < windows; w++) {
    const t = now();
    for (let s = 0; s < steps; s++) tokens.push((await it.next()).value as number);
    windowMs.push(now() - t);
  }
  await it.return();
  return { prefillMs, windowMs, tokens };
}
