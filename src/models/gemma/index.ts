/**
 * Gemma 2 and Gemma 3's text decoder (gemma2, gemma3_text, and the text part of multimodal gemma3 checkpoints)
 * as one architecture record (src/models/architecture.ts).
 */
import type { Architecture } from '../architecture.js';
import { expectedWeights, GEMMA_MODEL_TYPES, gemmaWeights, headWeightName, parseConfig } from './config.js';
import { buildGemmaGraph } from './graph.js';
import { referenceForward } from './reference.js';

export const gemma: Architecture = {
  name: 'gemma',
  modelTypes: GEMMA_MODEL_TYPES,
  parseConfig,
  canonicalWeights: gemmaWeights,
  expectedWeights,
  inputEmbeddingName: () => 'model.embed_tokens.weight',
  outputEmbeddingName: headWeightName,
  buildGraph: buildGemmaGraph,
  referenceForward,
};
