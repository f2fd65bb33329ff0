/**
 * A server over the real stories260K (../shared) with two small random steers bound to its fingerprint, for
 * the server tests, and small HTTP helpers (fetch on loopback, SSE parsing).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, type LoadedModel } from '../../src/runtime/loadModel.js';
import { saveSteer } from '../../src/steer/steerFile.js';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/server.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import { randomSteer } from '../steer/randomSteer.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

export const skip = skipUnlessShared('models/stories260K/hf');
export const modelPath = () => sharedPath('models/stories260K/hf')!;

/** Write a random steer for `model` (fingerprint-bound) into a new temp folder named `name`. */
export function makeSteer(
  model: LoadedModel,
  root: string,
  name: string,
  seed: number,
  slots: (string | { name: string; defaultValue: number })[] = ['on'],
): string {
  const s = randomSteer({ d: model.cfg.hiddenSize, rank: 4, slots, eps: 0.05, seed, vocab: model.cfg.vocabSize });
  s.config.baseModel = {
    id: model.id,
    embeddingFingerprint: model.fingerprint(),
    vocabSize: model.cfg.vocabSize,
    hiddenSize: model.cfg.hiddenSize,
  };
  const dir = join(root, name);
  saveSteer(dir, s);
  return dir;
}

export interface Fixture {
  model: LoadedModel;
  server: RunningServer;
  url: string;
  tmp: string;
  steerDirs: Record<string, string>;
  close(): Promise<void>;
}

/**
 * stories260K + steers "sentiment" (one slot) and "style" (slots formal, casual), served on a free port; clients
 * may load steers from under `tmp` (POST /v1/steers).
 */
export async function serve(
  opts: ServerOptions = {},
  values: Record<string, number> = {},
  steerOpts: { maxValue?: number } = {},
): Promise<Fixture> {
  const model = await loadModel(modelPath(), { cacheDir: false, threads: 1 });
  const tmp = mkdtempSync(join(tmpdir(), 'lmsteer-serve-'));
  const steerDirs = {
    sentiment: makeSteer(model, tmp, 'sentiment', 11),
    style: makeSteer(model, tmp, 'style', 12, ['formal', 'casual']),
    extra: makeSteer(model, tmp, 'extra', 13),
  };
  const steers = SteerSet.load(model, [steerDirs.sentiment, steerDirs.style], values, steerOpts);
  const server = await startServer(model, steers, { port: 0, allowSteerLoad: [tmp], ...opts });
  return {
    model,
    server,
    url: server.url,
    tmp,
    steerDirs,
    async close() {
      await server.close();
      model.close();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: any; headers: Headers }> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await r.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, json, headers: r.headers };
}

/** POST and read an SSE stream to its end: the parsed `data:` events (without [DONE]) and whether [DONE] came. */
export async function postStream(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; events: any[]; done: boolean }> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await r.text();
  if (!r.headers.get('content-type')?.startsWith('text/event-stream'))
    return { status: r.status, events: [JSON.parse(text)], done: false };
  const events: any[] = [];
  let done = false;
  for (const block of text.split('\n\n')) {
    const line = block.trim();
    if (!line) continue;
    if (!line.startsWith('data: ')) throw new Error(`not an SSE data line: ${line}`);
    const data = line.slice(6);
    if (data === '[DONE]') done = true;
    else events.push(JSON.parse(data));
  }
  return { status: r.status, events, done };
}

/** The text of each choice of a completions/chat stream. */
export function streamTexts(events: any[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    for (const c of e.choices ?? []) out[c.index] = (out[c.index] ?? '') + (c.text ?? c.delta?.content ?? '');
  }
  return out;
}
