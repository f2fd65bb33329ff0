/**
 * ONNX Runtime sessions for decoder graphs, and the on-disk cache of built graphs: a graph is built once per
 * (weights, config, builder version, build options) and stored as model.onnx + weights.bin under the cache
 * folder, so later runs skip building and load with ORT's memory-mapped external data. The key comes from the
 * weight files' identity (path, size, mtime, header hash: WeightStore.identity) when the store has one, so a
 * warm load reads no weight bytes; stores without one (in memory) are keyed by hashing every weight.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import '../util/ortTelemetryOff.js';
import ort from 'onnxruntime-node';
import type { WeightStore } from '../formats/weights.js';
import { buildKey, FP32_BUILD, type GraphBuildOptions } from '../graph/buildOptions.js';
import type { DecoderConfig } from '../models/config.js';
import { buildDecoderGraph, GRAPH_BUILDER_VERSION } from '../models/registry.js';

export interface SessionOptions {
  /** Intra-op threads; default: all cores. */
  threads?: number;
  /** Where built graphs are cached; default $LMSTEER_CACHE or ~/.cache/lmsteer. `false`: build in memory. */
  cacheDir?: string | false;
  /** How the graph stores its weights (part of the cache key); default fp32. */
  build?: GraphBuildOptions;
  /**
   * false: ORT does not prepack the weights, which stay in the mapped cache file. Only for float32 graphs
   * (loadModel refuses it otherwise: MatMulNBits unpacked is 60–70× slower). Measured at Qwen2.5-0.5B's shape
   * (docs/PERFORMANCE.md): warm load 2.5 → 0.65 s, peak RSS of a batch-1 run 2718 → 2190 MiB; decode at batch 1
   * −8%, prefill −13%, batch 25 −27% (MLAS packs each weight again on every call). Default true.
   */
  prepack?: boolean;
  /** Told once the session is open: cache hit or build, and where the time went (for --verbose, the bench). */
  onLoaded?: (info: SessionLoadInfo) => void;
  /**
   * Told while a graph is built (a cold load only; minutes for a multi-GB model): the weight bytes made so far and
   * their total, at 0 first and at the total last; `dir` is the cache folder it goes to (undefined: in memory).
   */
  onBuildProgress?: (doneBytes: number, totalBytes: number, dir?: string) => void;
}

export interface SessionLoadInfo {
  /** The built graph came from the cache (a warm load). */
  cacheHit: boolean;
  /** The cache folder of this graph (undefined when built in memory). */
  dir?: string;
  /** Bytes of model.onnx + weights.bin in the cache. */
  cacheBytes?: number;
  keyMs: number;
  buildMs: number;
  sessionMs: number;
  /**
   * The process's peak resident set when the graph was built, before the session opened (a cold load only): what
   * building cost in memory, apart from ORT's session (process.resourceUsage().maxRSS, bytes).
   */
  buildPeakRssBytes?: number;
}

export function defaultCacheDir(): string {
  return process.env.LMSTEER_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'lmsteer');
}

export function sessionOptions(threads?: number, prepack = true): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads ?? 0,
    interOpNumThreads: 1,
    ...(prepack ? {} : { extra: { session: { disable_prepacking: '1' } } }),
  };
}

/**
 * The cache key of a built graph: config, builder version, build options and the weights' identity (file
 * path/size/mtime/header hash), or a hash of every weight value when the store has no identity.
 */
export function weightsKey(cfg: DecoderConfig, weights: WeightStore, build: GraphBuildOptions = FP32_BUILD): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: GRAPH_BUILDER_VERSION, cfg, build: buildKey(build) }));
  const identity = weights.identity?.();
  if (identity) return h.update(`\0identity\0${identity}`).digest('hex');
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
  const build = opts.build ?? FP32_BUILD;
  const so = sessionOptions(opts.threads, opts.prepack);
  const t0 = performance.now();
  if (opts.cacheDir === false) {
    const onProgress = opts.onBuildProgress && ((done: number, total: number) => opts.onBuildProgress!(done, total));
    const bytes = buildDecoderGraph(cfg, weights, build).serialize({ onProgress });
    const t1 = performance.now();
    const buildPeakRssBytes = peakRssBytes();
    const session = await ort.InferenceSession.create(bytes, so);
    opts.onLoaded?.({
      cacheHit: false,
      keyMs: 0,
      buildMs: t1 - t0,
      sessionMs: performance.now() - t1,
      buildPeakRssBytes,
    });
    return session;
  }
  const dir = join(opts.cacheDir ?? defaultCacheDir(), 'graphs', weightsKey(cfg, weights, build).slice(0, 32));
  const modelPath = join(dir, 'model.onnx');
  const t1 = performance.now();
  const cacheHit = existsSync(modelPath);
  if (!cacheHit) {
    // Build into a temp folder, then rename: a crash mid-write never leaves a half graph in the cache.
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const bytes = buildDecoderGraph(cfg, weights, build).serialize({
      externalPath: join(tmp, 'weights.bin'),
      externalName: 'weights.bin',
      onProgress: opts.onBuildProgress && ((done, total) => opts.onBuildProgress!(done, total, dir)),
    });
    writeFileSync(join(tmp, 'model.onnx'), bytes);
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another process won the race; its copy is identical
    }
  }
  const t2 = performance.now();
  const buildPeakRssBytes = cacheHit ? undefined : peakRssBytes();
  const session = await ort.InferenceSession.create(modelPath, so);
  opts.onLoaded?.({
    cacheHit,
    dir,
    cacheBytes: folderBytes(dir),
    keyMs: t1 - t0,
    buildMs: t2 - t1,
    sessionMs: performance.now() - t2,
    buildPeakRssBytes,
  });
  return session;
}

/** The process's peak resident set so far, in bytes. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}
