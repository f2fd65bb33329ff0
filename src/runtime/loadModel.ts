/**
 * `--model SPEC` → a ready model: files located (local path, or downloaded from the hub into the HF cache),
 * config parsed and checked against the weights, decoder graph built (or taken from the graph cache) and an ORT
 * session opened, then the tokenizer loaded. An existing ONNX export (optimum / transformers.js: a .onnx file, or a
 * folder with config.json + tokenizer.json and .onnx files but no safetensors) runs as exported, its LM head
 * rewritten to take the steer (src/formats/onnxExport.ts, src/runtime/onnxExportDecoder.ts).
 *
 * The decoder's weight precision (`dtype`, `head`: src/graph/buildOptions.ts) is chosen once per load; without one,
 * defaultBuild picks fp32 when the float32 weights take a small part of this machine's memory, else q8, else q4.
 */
import { existsSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { readGenerationConfig, readModelConfig } from '../formats/hfConfig.js';
import { resolveHubModel, type HubDownloadOptions } from '../formats/hub.js';
import { loadWeights, locateModel, type LocalModel } from '../formats/modelFiles.js';
import { chooseOnnxFile, openOnnxExport } from '../formats/onnxExport.js';
import { rejectPreQuantized } from '../formats/preQuantized.js';
import { MapWeightStore, type WeightStore } from '../formats/weights.js';
import {
  defaultHead,
  describeBuild,
  type GraphBuildOptions,
  type HeadDType,
  type WeightDType,
} from '../graph/buildOptions.js';
import type { DecoderConfig } from '../models/config.js';
import {
  canonicalWeights,
  checkWeights,
  outputBias,
  outputEmbeddings,
  parseDecoderConfig,
} from '../models/registry.js';
import { embeddingFingerprint } from '../steer/steer.js';
import { tokenizerJsonIn } from '../tokenizer/hfTokenizer.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { formatBinaryBytes } from '../util/bytes.js';
import { LmSteerError } from '../util/errors.js';
import { embeddedModelDir } from '../util/packageFiles.js';
import { tensor, type Tensor } from '../util/tensor.js';
import type { Decoder } from './decoder.js';
import { OnnxExportDecoder } from './onnxExportDecoder.js';
import { OrtDecoder } from './ortDecoder.js';
import { createDecoderSession, defaultCacheDir, type SessionOptions } from './session.js';

/** The main job's default: Karpathy's 260K-parameter TinyStories Llama (~1 MB), embedded in the package. */
export const DEFAULT_MODEL = 'stories260K';

export interface LoadedModel {
  /** What the user asked for (path or hub id): recorded in steer files and reports. */
  id: string;
  cfg: DecoderConfig;
  tokenizer: Tokenizer;
  /** An OrtDecoder over lmsteer's own graph, or an OnnxExportDecoder over an existing ONNX export. */
  decoder: Decoder;
  /** The checkpoint's weights; for an ONNX export only E (lm_head.weight) and a marker of the export's content key. */
  weights: WeightStore;
  generationConfig?: Record<string, unknown>;
  /** The precision lmsteer built the decoder in; undefined for an ONNX export (it runs as exported). */
  build?: GraphBuildOptions;
  /** Why `build` is what it is, when lmsteer chose it (no dtype, or a quantized one without a head): one line. */
  buildNote?: string;
  /** E [V, d], the LM head matrix. */
  outputEmbeddings(): Tensor;
  /**
   * The LM head's bias [V] where the model has one (GPT-J: logits = h·Eᵀ + b), for the training loss; undefined
   * otherwise, and for ONNX exports (their graph keeps the bias; training on one leaves it out).
   */
  outputBias?(): Tensor | undefined;
  /** Identifies the base model of a steer (src/steer/steer.ts). */
  fingerprint(): string;
  close(): void;
}

export interface LoadModelOptions extends Omit<SessionOptions, 'build'> {
  hub?: HubDownloadOptions;
  /** The decoder's weight precision; default: defaultBuild's choice (told in LoadedModel.buildNote). */
  dtype?: WeightDType;
  /** The LM head's precision; default: the body's where it can be (defaultHead: fp32 → fp32, q8 / q4 → q8). */
  head?: HeadDType;
}

/**
 * The float32 weights may take this part of the machine's memory for fp32 to be the default. A float32 load
 * peaks near twice its weights (ORT prepacks MatMul weights while the file is still mapped: docs/PERFORMANCE.md),
 * so a quarter keeps the peak near half the memory, with room for the KV cache and everything else.
 */
export const FP32_MEMORY_FRACTION = 0.25;

/**
 * The 8-bit weights may take this part of memory for q8 to be the default over q4. A q8 session peaks at
 * 1.3–1.6× its graph's bytes (prepacked blocks, the mapped lookup table, the tokenizer: docs/PERFORMANCE.md), so
 * 40% keeps it under two thirds of the memory. Llama-3.1-8B (9 GB in q8) gets q8 on 24 GB and q4 on 16 GB.
 */
export const Q8_MEMORY_FRACTION = 0.4;

/** Bytes a weight value takes in each dtype: 8- or 4-bit codes plus a float32 scale per block of 32. */
const BYTES_PER_VALUE: Record<WeightDType, number> = { fp32: 4, q8: 1 + 4 / 32, q4: 0.5 + 4 / 32 };

/**
 * The default build for `params` weight values on a machine of `memBytes`: fp32 if they fit easily, else q8 if
 * that fits, else q4; the head follows (defaultHead). `why` says which limit decided.
 */
export function defaultBuild(params: number, memBytes: number = totalmem()): { build: GraphBuildOptions; why: string } {
  const bytes = (dtype: WeightDType) => formatBinaryBytes(BYTES_PER_VALUE[dtype] * params);
  const share = (fraction: number) => `${Math.round(fraction * 100)}% of this machine's ${formatBinaryBytes(memBytes)}`;
  const build = (dtype: WeightDType): GraphBuildOptions => ({ dtype, head: defaultHead(dtype) });
  if (BYTES_PER_VALUE.fp32 * params <= FP32_MEMORY_FRACTION * memBytes)
    return {
      build: build('fp32'),
      why: `its float32 weights (${bytes('fp32')}) fit in ${share(FP32_MEMORY_FRACTION)}`,
    };
  const fp32Over = `its float32 weights (${bytes('fp32')}) would take more than ${share(FP32_MEMORY_FRACTION)}`;
  if (BYTES_PER_VALUE.q8 * params <= Q8_MEMORY_FRACTION * memBytes) return { build: build('q8'), why: fp32Over };
  return {
    build: build('q4'),
    why: `${fp32Over}, its 8-bit weights (${bytes('q8')}) more than ${share(Q8_MEMORY_FRACTION)}`,
  };
}

/** Values in the checkpoint's tensors (shapes only, nothing read). */
function parameterCount(weights: WeightStore): number {
  return weights.names().reduce((n, name) => n + weights.shape(name).reduce((a, b) => a * b, 1), 0);
}

/**
 * In this order: a local file or folder; a model embedded in the package ('stories260K': assets/stories260K, no
 * network); a hub id ('gpt2', 'org/name@rev'; 'stories260K@main' is the hub's copy of the embedded model).
 */
export async function locateModelSpec(spec: string, hub: HubDownloadOptions = {}): Promise<LocalModel> {
  if (existsSync(spec)) return locateModel(spec);
  const embedded = embeddedModelDir(spec);
  if (embedded !== undefined) return locateModel(embedded);
  if (spec.startsWith('.') || spec.startsWith('/') || spec.includes('\\')) {
    throw new LmSteerError(
      'NOT_FOUND',
      `model path ${spec} does not exist`,
      'pass a folder with config.json + *.safetensors + tokenizer.json, an ONNX export (.onnx file or its folder), a llama2.c model.bin, or a hub id like gpt2',
    );
  }
  const m = await resolveHubModel(spec, hub);
  return m.kind === 'hf' ? locateModel(m.dir) : locateModel(m.modelPath);
}

export async function loadModel(spec: string = DEFAULT_MODEL, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const local = await locateModelSpec(spec, opts.hub);
  if (local.kind === 'onnx') return loadOnnxExportModel(spec, local, opts);
  const files = loadWeights(local);
  try {
    rejectPreQuantized(files.config, files.weights, spec);
    const cfg = parseDecoderConfig(files.config, spec);
    const weights = canonicalWeights(cfg, files.weights);
    checkWeights(cfg, weights);
    const chosen = opts.dtype === undefined ? defaultBuild(parameterCount(weights)) : undefined;
    const dtype = opts.dtype ?? chosen!.build.dtype;
    const build: GraphBuildOptions = { dtype, head: opts.head ?? defaultHead(dtype) };
    if (opts.prepack === false && (build.dtype !== 'fp32' || build.head !== 'fp32')) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `--no-prepack is for float32 graphs; ${spec} would load in ${describeBuild(build)}${chosen ? ` (the default here: ${chosen.why})` : ''}, whose 8- / 4-bit blocks ONNX Runtime runs 60-70x slower unpacked`,
        'add --dtype fp32 --head fp32, or leave out --no-prepack',
      );
    }
    // The session before the tokenizer: ORT's session creation is the load's high-water mark (it prepacks weights
    // while their mapped pages are resident), and a large tokenizer's parse left in the heap adds to it (Qwen's
    // 151936 tokens: 1045 → 927 MiB peak, docs/PERFORMANCE.md). A missing tokenizer.json is still found first; a
    // malformed one after a cold build, which the graph cache keeps.
    if (local.kind === 'hf') tokenizerJsonIn(local.dir);
    const decoder = new OrtDecoder(await createDecoderSession(cfg, weights, { ...opts, build }), cfg);
    let tokenizer: Tokenizer;
    try {
      tokenizer =
        local.kind === 'llama2c'
          ? loadTokenizer({ kind: 'llama2c', tokenizerPath: local.tokenizerPath, vocabSize: cfg.vocabSize })
          : loadTokenizer({ kind: 'hf', dir: local.dir });
      checkTokenizerFits(spec, tokenizer, cfg);
    } catch (e) {
      void decoder.session.release();
      throw e;
    }
    let E: Tensor | undefined;
    return {
      id: spec,
      cfg,
      tokenizer,
      decoder,
      weights,
      generationConfig: files.generationConfig,
      build,
      buildNote: chosen
        ? `weights in ${describeBuild(build)}: ${chosen.why} (--dtype fp32 | q8 | q4 and --head fp32 | q8 | q4 to choose)`
        : opts.head === undefined && build.head !== 'fp32'
          ? `LM head in ${build.head}, the default for a ${build.dtype} body: the steering effect within ~1% (--head fp32 for the exact float32 head)`
          : build.head === 'q4'
            ? 'LM head in q4, as asked: the steering effect within ~10% of the exact steer (--head q8: ~1%, --head fp32: exact)'
            : undefined,
      outputEmbeddings: () => (E ??= outputEmbeddings(cfg, weights)),
      outputBias: () => outputBias(cfg, weights),
      fingerprint: lazyFingerprint(() => outputEmbeddings(cfg, weights)),
      close: () => {
        files.weights.close();
        void decoder.session.release();
      },
    };
  } catch (e) {
    files.weights.close();
    throw e;
  }
}

/**
 * An ONNX export: config.json still gives vocabulary, hidden size, context and EOS; the weights are never read
 * except E, which identifies the base model exactly as the Hugging Face checkpoint's E does (same fingerprint,
 * so steers move between the two).
 */
async function loadOnnxExportModel(
  spec: string,
  local: Extract<LocalModel, { kind: 'onnx' }>,
  opts: LoadModelOptions,
): Promise<LoadedModel> {
  const modelPath = chooseOnnxFile(local.dir, local.onnxPaths);
  if (opts.prepack === false) {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${modelPath} is an ONNX export, which runs as exported, with ONNX Runtime's prepacking`,
      'leave out --no-prepack for an export, or load the Hugging Face checkpoint to use it',
    );
  }
  if ((opts.dtype ?? 'fp32') !== 'fp32' || (opts.head ?? 'fp32') !== 'fp32') {
    throw new LmSteerError(
      'UNSUPPORTED',
      `${modelPath} is an ONNX export, which runs as exported: lmsteer cannot rebuild it in ${describeBuild({ dtype: opts.dtype ?? 'fp32', head: opts.head })}`,
      "leave out --dtype / --head for an export (or quantize it with ONNX Runtime's tools), or load the Hugging Face checkpoint (config.json + model.safetensors) to use --dtype q8 / q4",
    );
  }
  if (!existsSync(join(local.dir, 'config.json'))) {
    throw new LmSteerError(
      'NOT_FOUND',
      `the ONNX export ${modelPath} has no config.json beside it (looked in ${local.dir})`,
      'put the config.json and tokenizer.json of the exported model in the folder of the .onnx file (or its parent, for onnx/model.onnx)',
    );
  }
  const cfg = parseDecoderConfig(readModelConfig(local.dir), spec);
  const exp = openOnnxExport(modelPath, {
    cacheDir: opts.cacheDir === false ? false : (opts.cacheDir ?? defaultCacheDir()),
    fallback: { numKvHeads: cfg.numKvHeads, headDim: cfg.headDim },
  });
  const io = exp.io;
  const disagree = [
    io.vocabSize !== cfg.vocabSize && `vocabulary ${io.vocabSize} vs vocab_size ${cfg.vocabSize}`,
    io.hiddenSize !== cfg.hiddenSize && `hidden size ${io.hiddenSize} vs ${cfg.hiddenSize}`,
    io.numLayers !== cfg.numLayers && `${io.numLayers} layers vs ${cfg.numLayers}`,
  ].filter(Boolean);
  if (disagree.length > 0) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `${modelPath} does not match ${join(local.dir, 'config.json')}: ${disagree.join(', ')}`,
      'use the config.json the model was exported with',
    );
  }
  const tokenizer = loadTokenizer({ kind: 'hf', dir: local.dir });
  checkTokenizerFits(spec, tokenizer, cfg);
  const decoder = await OnnxExportDecoder.open(exp, { maxPositions: cfg.maxPositions, threads: opts.threads });
  // The marker's name carries the export's content key, so caches keyed by weightsKey() (hidden states) tell
  // two exports apart even when their heads agree.
  const weights = new MapWeightStore(
    new Map([
      ['lm_head.weight', exp.head],
      [`onnx_export.${exp.key.slice(0, 32)}`, tensor([1])],
    ]),
    modelPath,
  );
  return {
    id: spec,
    cfg,
    tokenizer,
    decoder,
    weights,
    generationConfig: readGenerationConfig(local.dir),
    outputEmbeddings: () => exp.head,
    fingerprint: lazyFingerprint(() => exp.head),
    close: () => void decoder.release(),
  };
}

/**
 * The base model's identity for steers (a hash of E), computed on first use and kept: hashing reads all of E, and
 * many loads (generate, serve without steers) never ask. E itself is not kept.
 */
function lazyFingerprint(E: () => Tensor): () => string {
  let fp: string | undefined;
  return () => (fp ??= embeddingFingerprint(E()));
}

/** A tokenizer may have fewer ids than the model's (padded) vocabulary, never more. */
function checkTokenizerFits(spec: string, tokenizer: Tokenizer, cfg: DecoderConfig): void {
  if (tokenizer.vocabSize > cfg.vocabSize) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `${spec}: the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${cfg.vocabSize}`,
      'the tokenizer.json belongs to another model',
    );
  }
}
