/**
 * model_type → architecture: parsing a config.json into a DecoderConfig, the tensors its checkpoint must hold,
 * and the input/output embedding matrices. (Graph building dispatches in graphs.ts, reference forwards in
 * reference.ts.)
 */
import type { WeightStore } from '../formats/weights.js';
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import type { DecoderConfig } from './config.js';
import { checkExpectedWeights, configObject, type ExpectedWeight } from './configFields.js';
import { checkConfigSizes, checkRawConfigSizes } from './limits.js';
import * as gpt2 from './gpt2/config.js';
import * as gptNeox from './gptNeox/config.js';
import * as llama from './llama/config.js';

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'gpt2', 'gpt_neox'] as const;

/** Parse a config.json (already JSON-parsed) from `source` (a path or hub id, for messages). */
export function parseDecoderConfig(raw: unknown, source: string): DecoderConfig {
  const obj = configObject(raw, source);
  checkRawConfigSizes(obj, source); // before any parser sizes something from them (limits.ts)
  const modelType = obj.model_type;
  switch (modelType) {
    case 'llama':
    case 'mistral':
    case 'qwen2':
      return checkConfigSizes(llama.parseConfig(obj, source), source);
    case 'gpt2':
      return checkConfigSizes(gpt2.parseConfig(obj, source), source);
    case 'gpt_neox':
      return checkConfigSizes(gptNeox.parseConfig(obj, source), source);
    default:
      throw new LmSteerError(
        'UNSUPPORTED',
        modelType === undefined
          ? `${source}: config.json has no "model_type"`
          : `${source}: model_type ${JSON.stringify(modelType)} is not supported`,
        `supported model_types: ${SUPPORTED_MODEL_TYPES.join(', ')}`,
      );
  }
}

function archModule(cfg: DecoderConfig) {
  switch (cfg.arch) {
    case 'llama':
      return llama;
    case 'gpt2':
      return gpt2;
    case 'gpt_neox':
      return gptNeox;
  }
}

/** The tensors (HF names; GPT-2 without the `transformer.` prefix) and shapes the checkpoint must hold. */
export function expectedWeights(cfg: DecoderConfig): ExpectedWeight[] {
  return archModule(cfg).expectedWeights(cfg);
}

/** Throws NOT_FOUND or SHAPE_MISMATCH ("config.json does not match the weights") naming the first bad tensor. */
export function checkWeights(cfg: DecoderConfig, weights: WeightStore): void {
  checkExpectedWeights(expectedWeights(cfg), canonicalWeights(cfg, weights));
}

/** The weights under the names expectedWeights() uses (GPT-2's `transformer.` prefix removed). */
export function canonicalWeights(cfg: DecoderConfig, weights: WeightStore): WeightStore {
  return cfg.arch === 'gpt2' ? gpt2.gpt2Weights(weights) : weights;
}

/** The token embedding [V, d] (the input side). */
export function inputEmbeddings(cfg: DecoderConfig, weights: WeightStore): Tensor {
  const name = { llama: 'model.embed_tokens.weight', gpt2: 'wte.weight', gpt_neox: 'gpt_neox.embed_in.weight' }[
    cfg.arch
  ];
  return canonicalWeights(cfg, weights).get(name);
}

/** The LM head matrix E [V, d] (logits = h·Eᵀ): lm_head.weight / embed_out.weight, or the tied token embedding. */
export function outputEmbeddings(cfg: DecoderConfig, weights: WeightStore): Tensor {
  return archModule(cfg).outputEmbeddings(cfg, weights);
}
