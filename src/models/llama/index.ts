/** The Llama family (llama, mistral, qwen2) as one architecture record (src/models/architecture.ts). */
import type { Architecture } from '../architecture.js';
import { expectedWeights, headWeightName, LLAMA_MODEL_TYPES, parseConfig } from './config.js';
import { buildLlamaGraph } from './graph.js';
import { referenceForward } from './reference.js';

export const llama: Architecture = {
  name: 'llama',
  modelTypes: LLAMA_MODEL_TYPES,
  parseConfig,
  expectedWeights,
  inputEmbeddingName: () => 'model.embed_tokens.weight',
  outputEmbeddingName: headWeightName,
  buildGraph: buildLlamaGraph,
  referenceForward,
};
