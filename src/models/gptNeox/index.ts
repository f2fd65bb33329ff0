/** GPT-NeoX (Pythia, …) as one architecture record (src/models/architecture.ts). */
import type { Architecture } from '../architecture.js';
import { expectedWeights, headWeightName, parseConfig } from './config.js';
import { buildGptNeoxGraph } from './graph.js';
import { referenceForward } from './reference.js';

export const gptNeox: Architecture = {
  name: 'gpt_neox',
  modelTypes: ['gpt_neox'],
  parseConfig,
  expectedWeights,
  inputEmbeddingName: () => 'gpt_neox.embed_in.weight',
  outputEmbeddingName: headWeightName,
  buildGraph: buildGptNeoxGraph,
  referenceForward,
};
