/**
 * Qwen3 (model_type qwen3) as its own architecture record (src/models/architecture.ts). It differs from the
 * Llama family's record by the per-head q/k norms only; a record of its own keeps the Llama graph and reference
 * free of a branch that one model type takes, and lets each family's graph move to new build options alone.
 */
import type { Architecture } from '../architecture.js';
import { expectedWeights, headWeightName, parseConfig } from './config.js';
import { buildQwen3Graph } from './graph.js';
import { referenceForward } from './reference.js';

export const qwen3: Architecture = {
  name: 'qwen3',
  modelTypes: ['qwen3'],
  parseConfig,
  expectedWeights,
  inputEmbeddingName: () => 'model.embed_tokens.weight',
  outputEmbeddingName: headWeightName,
  buildGraph: buildQwen3Graph,
  referenceForward,
};
