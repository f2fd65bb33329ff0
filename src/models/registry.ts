/**
 * The architectures lmsteer runs, as a list of records (src/models/architecture.ts), and the lookups every
 * caller goes through: config.json → DecoderConfig, the checkpoint check, embeddings, graph, reference forward.
 * Every function takes the checkpoint's weights as loaded and applies the record's canonical view itself.
 */
import type { GraphBuilder } from '../graph/builder.js';
import { FP32_BUILD, type GraphBuildOptions } from '../graph/buildOptions.js';
import type { WeightStore } from '../formats/weights.js';
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import type { Architecture } from './architecture.js';
import type { DecoderConfig } from './config.js';
import { checkExpectedWeights, configObject, type ExpectedWeight } from './configFields.js';
import type { ReferenceOutput } from './referenceOps.js';
import { gemma } from './gemma/index.js';
import { gpt2 } from './gpt2/index.js';
import { phi3 } from './phi3/index.js';
import { qwen3 } from './qwen3/index.js';
import { gptNeox } from './gptNeox/index.js';
import { gptNeo } from './gptNeo/index.js';
import { gptj } from './gptj/index.js';
import { opt } from './opt/index.js';
import { llama } from './llama/index.js';
import { checkConfigSizes, checkRawConfigSizes } from './limits.js';

/** Bump when any graph changes: it is part of the on-disk cache key of built graphs. */
export const GRAPH_BUILDER_VERSION = 10;

export const ARCHITECTURES: readonly Architecture[] = [llama, gpt2, gptNeox, gptNeo, gptj, opt, gemma, qwen3, phi3];

const byModelType = new Map<string, Architecture>();
const byName = new Map<string, Architecture>();
for (const arch of ARCHITECTURES) {
  // Registration is data: two records claiming one name or model_type is a bug, caught at import.
  if (byName.has(arch.name)) throw new Error(`internal: two architecture records are named ${arch.name}`);
  byName.set(arch.name, arch);
  for (const t of arch.modelTypes) {
    if (byModelType.has(t))
      throw new Error(`internal: model_type ${t} is claimed by ${byModelType.get(t)!.name} and ${arch.name}`);
    byModelType.set(t, arch);
  }
}

export const SUPPORTED_MODEL_TYPES: readonly string[] = [...byModelType.keys()];

/** The record a parsed config belongs to. */
export function architectureOf(cfg: DecoderConfig): Architecture {
  const arch = byName.get(cfg.arch);
  if (!arch) throw new Error(`internal: no architecture record named ${cfg.arch}`);
  return arch;
}

/** Parse a config.json (already JSON-parsed) from `source` (a path or hub id, for messages). */
export function parseDecoderConfig(raw: unknown, source: string): DecoderConfig {
  const obj = configObject(raw, source);
  checkRawConfigSizes(obj, source); // before any parser sizes something from them (limits.ts)
  const modelType = obj.model_type;
  const arch = typeof modelType === 'string' ? byModelType.get(modelType) : undefined; // a Map: no prototype keys
  if (!arch) {
    throw new LmSteerError(
      'UNSUPPORTED',
      modelType === undefined
        ? `${source}: config.json has no "model_type"`
        : `${source}: model_type ${JSON.stringify(modelType)} is not supported`,
      `supported model_types: ${SUPPORTED_MODEL_TYPES.join(', ')}`,
    );
  }
  return checkConfigSizes(arch.parseConfig(obj, source), source);
}

/** The weights under the names the architecture record uses (GPT-2's `transformer.` prefix removed). */
export function canonicalWeights(cfg: DecoderConfig, weights: WeightStore): WeightStore {
  const arch = architectureOf(cfg);
  return arch.canonicalWeights ? arch.canonicalWeights(weights) : weights;
}

/** The tensors (canonical names) and shapes the checkpoint must hold. */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  return architectureOf(cfg).expectedWeights(cfg);
}

/** Throws NOT_FOUND or SHAPE_MISMATCH ("config.json does not match the weights") naming the first bad tensor. */
export function checkWeights(cfg: DecoderConfig, weights: WeightStore): void {
  checkExpectedWeights(expectedWeights(cfg), canonicalWeights(cfg, weights));
}

/** The token embedding [V, d] (the input side). */
export function inputEmbeddings(cfg: DecoderConfig, weights: WeightStore): Tensor {
  return canonicalWeights(cfg, weights).get(architectureOf(cfg).inputEmbeddingName(cfg));
}

/** The LM head matrix E [V, d] (logits = h·Eᵀ): the untied head, or the tied token embedding. */
export function outputEmbeddings(cfg: DecoderConfig, weights: WeightStore): Tensor {
  return canonicalWeights(cfg, weights).get(architectureOf(cfg).outputEmbeddingName(cfg));
}

/** The LM head's bias [V] (logits = h·Eᵀ + b) where the model has one (GPT-J), else undefined. */
export function outputBias(cfg: DecoderConfig, weights: WeightStore): Tensor | undefined {
  const name = architectureOf(cfg).outputBiasName?.(cfg);
  return name === undefined ? undefined : canonicalWeights(cfg, weights).get(name);
}

/** The decoder graph of the graph contract (docs/ARCHITECTURE.md). */
export function buildDecoderGraph(
  cfg: DecoderConfig,
  weights: WeightStore,
  build: GraphBuildOptions = FP32_BUILD,
): GraphBuilder {
  return architectureOf(cfg).buildGraph(cfg, canonicalWeights(cfg, weights), build);
}

/** logits [T, V] and the final hidden state [T, d] (after the final norm) for `ids` at positions 0..T-1. */
export function referenceForward(cfg: DecoderConfig, weights: WeightStore, ids: number[]): ReferenceOutput {
  return architectureOf(cfg).referenceForward(cfg, canonicalWeights(cfg, weights), ids);
}
