/**
 * ONNX Runtime sessions for decoder graphs, and the on-disk cache of built graphs: a graph is built once per
 * (weights, config, builder version) and stored as model.onnx + weights.bin under the cache folder, so later
 * runs skip building and load with ORT's memory-mapped external data.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import '../util/ortTelemetryOff.js';
import ort from 'onnxruntime-node';
import type { WeightStore } from '../formats/weights.js';
import type { DecoderConfig } from '../models/config.js';
import { buildDecoderGraph, GRAPH_BUILDER_VERSION } from '../models/registry.js';

export interface SessionOptions {
  /** Intra-op threads; default: all cores. */
  threads?: number;
  /** Where built graphs are cached; default $LMSTEER_CACHE or ~/.cache/lmsteer. `false`: build in memory. */
  cacheDir?: string | false;
}

export function defaultCacheDir(): string {
  return process.env.LMSTEER_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'lmsteer');
}

export function sessionOptions(threads?: number): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads ?? 0,
    interOpNumThreads: 1,
  };
}

/** A hash of the config, the builder version and every weight value: the cache key of a built graph. */
export function weightsKey(cfg: DecoderConfig, weights: WeightStore): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: GRAPH_BUILDER_VERSION, cfg }));
  for (const name of weights.names().sort()) {
    const t = weights.get(name);
    h.update(`${name}|${t.shape}|`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

export async function createDecoderSession(
  cfg: DecoderConfig,
  weights: WeightStore,
  opts: SessionOptions = {},
): Promise<ort.InferenceSession> {
  const so = sessionOptions(opts.threads);
  if (opts.cacheDir === false) {
    return ort.InferenceSession.create(buildDecoderGraph(cfg, weights).serialize(), so);
  }
  const dir = join(opts.cacheDir ?? defaultCacheDir(), 'graphs', weightsKey(cfg, weights).slice(0, 32));
  const modelPath = join(dir, 'model.onnx');
  if (!existsSync(modelPath)) {
    // Build into a temp folder, then rename: a crash mid-write never leaves a half graph in the cache.
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const bytes = buildDecoderGraph(cfg, weights).serialize({
      externalPath: join(tmp, 'weights.bin'),
      externalName: 'weights.bin',
    });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(tmp, 'model.onnx'), bytes);
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another process won the race; its copy is identical
    }
  }
  return ort.InferenceSession.create(modelPath, so);
}
