/** GPT-2 as one architecture record (src/models/architecture.ts). */
import type { Architecture } from '../architecture.js';
import { expectedWeights, gpt2Weights, headWeightName, parseConfig } from './config.js';
import { buildGpt2Graph } from './graph.js';
import { referenceForward } from './reference.js';

export const gpt2: Architecture = {
  name: 'gpt2',
  modelTypes: ['gpt2'],
  parseConfig,
  canonicalWeights: gpt2Weights,
  expectedWeights,
  inputEmbeddingName: () => 'wte.weight',
  outputEmbeddingName: headWeightName,
  buildGraph: buildGpt2Graph,
  referenceForward,
};
