/** GPT-J as one architecture record (src/models/architecture.ts). */
import type { Architecture } from '../architecture.js';
import { expectedWeights, gptjWeights, HEAD_BIAS, headWeightName, parseConfig } from './config.js';
import { buildGptjGraph } from './graph.js';
import { referenceForward } from './reference.js';

export const gptj: Architecture = {
  name: 'gptj',
  modelTypes: ['gptj'],
  parseConfig,
  canonicalWeights: gptjWeights,
  expectedWeights,
  inputEmbeddingName: () => 'transformer.wte.weight',
  outputEmbeddingName: headWeightName,
  outputBiasName: () => HEAD_BIAS,
  buildGraph: buildGptjGraph,
  referenceForward,
};
