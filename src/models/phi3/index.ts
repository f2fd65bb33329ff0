/** Phi-3 (model_type phi3) as one architecture record (src/models/architecture.ts). */
import type { Architecture } from '../architecture.js';
import { expectedWeights, headWeightName, parseConfig } from './config.js';
import { buildPhi3Graph } from './graph.js';
import { referenceForward } from './reference.js';

export const phi3: Architecture = {
  name: 'phi3',
  modelTypes: ['phi3'],
  parseConfig,
  expectedWeights,
  inputEmbeddingName: () => 'model.embed_tokens.weight',
  outputEmbeddingName: headWeightName,
  buildGraph: buildPhi3Graph,
  referenceForward,
};
