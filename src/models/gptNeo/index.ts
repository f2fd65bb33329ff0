/** GPT-Neo as one architecture record (src/models/architecture.ts). */
import type { Architecture } from '../architecture.js';
import { expectedWeights, gptNeoWeights, headWeightName, parseConfig } from './config.js';
import { buildGptNeoGraph } from './graph.js';
import { referenceForward } from './reference.js';

export const gptNeo: Architecture = {
  name: 'gpt_neo',
  modelTypes: ['gpt_neo'],
  parseConfig,
  canonicalWeights: gptNeoWeights,
  expectedWeights,
  inputEmbeddingName: () => 'transformer.wte.weight',
  outputEmbeddingName: headWeightName,
  buildGraph: buildGptNeoGraph,
  referenceForward,
};
