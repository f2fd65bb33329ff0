/**
 * `--model SPEC` → a ready model: files located (local path, or downloaded from the hub into the HF cache),
 * config parsed and checked against the weights, tokenizer loaded, decoder graph built (or taken from the
 * graph cache) and an ORT session opened.
 */
import { existsSync } from 'node:fs';
import { resolveHubModel, type HubDownloadOptions } from '../formats/hub.js';
import { loadWeights, locateModel, type LocalModel } from '../formats/modelFiles.js';
import type { WeightStore } from '../formats/weights.js';
import type { DecoderConfig } from '../models/config.js';
import { canonicalWeights, checkWeights, outputEmbeddings, parseDecoderConfig } from '../models/registry.js';
import { embeddingFingerprint } from '../steer/steer.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import { OrtDecoder } from './ortDecoder.js';
import { createDecoderSession, type SessionOptions } from './session.js';

/** The main job's default: Karpathy's 260K-parameter TinyStories Llama, ~1 MB from the hub. */
export const DEFAULT_MODEL = 'stories260K';

export interface LoadedModel {
  /** What the user asked for (path or hub id): recorded in steer files and reports. */
  id: string;
  cfg: DecoderConfig;
  tokenizer: Tokenizer;
  decoder: OrtDecoder;
  weights: WeightStore;
  generationConfig?: Record<string, unknown>;
  /** E [V, d], the LM head matrix. */
  outputEmbeddings(): Tensor;
  /** Identifies the base model of a steer (src/steer/steer.ts). */
  fingerprint(): string;
  close(): void;
}

export interface LoadModelOptions extends SessionOptions {
  hub?: HubDownloadOptions;
}

/** A local file or folder, or a hub id ('gpt2', 'org/name@rev', 'stories260K'). */
export async function locateModelSpec(spec: string, hub: HubDownloadOptions = {}): Promise<LocalModel> {
  if (existsSync(spec)) return locateModel(spec);
  if (spec.startsWith('.') || spec.startsWith('/') || spec.includes('\\')) {
    throw new LmSteerError('NOT_FOUND', `model path ${spec} does not exist`, 'pass a folder with config.json + *.safetensors + tokenizer.json, a llama2.c model.bin, or a hub id like gpt2');
  }
  const m = await resolveHubModel(spec, hub);
  return m.kind === 'hf' ? locateModel(m.dir) : locateModel(m.modelPath);
}

export async function loadModel(spec: string = DEFAULT_MODEL, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const local = await locateModelSpec(spec, opts.hub);
  const files = loadWeights(local);
  try {
    const cfg = parseDecoderConfig(files.config, spec);
    const weights = canonicalWeights(cfg, files.weights);
    checkWeights(cfg, weights);
    const tokenizer =
      local.kind === 'llama2c'
        ? loadTokenizer({ kind: 'llama2c', tokenizerPath: local.tokenizerPath, vocabSize: cfg.vocabSize })
        : loadTokenizer({ kind: 'hf', dir: local.dir });
    if (tokenizer.vocabSize > cfg.vocabSize) {
      throw new LmSteerError('MODEL_MISMATCH', `${spec}: the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${cfg.vocabSize}`, 'the tokenizer.json belongs to another model');
    }
    const decoder = new OrtDecoder(await createDecoderSession(cfg, weights, opts), cfg);
    let E: Tensor | undefined;
    let fp: string | undefined;
    return {
      id: spec,
      cfg,
      tokenizer,
      decoder,
      weights,
      generationConfig: files.generationConfig,
      outputEmbeddings: () => (E ??= outputEmbeddings(cfg, weights)),
      fingerprint: () => (fp ??= embeddingFingerprint(outputEmbeddings(cfg, weights))),
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
