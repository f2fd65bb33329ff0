/** OPT as one architecture record (src/models/architecture.ts). */
import type { Architecture } from '../architecture.js';
import { expectedWeights, headWeightName, optWeights, parseConfig } from './config.js';
import { buildOptGraph } from './graph.js';
import { referenceForward } from './reference.js';

export const opt: Architecture = {
  name: 'opt',
  modelTypes: ['opt'],
  parseConfig,
  canonicalWeights: optWeights,
  expectedWeights,
  inputEmbeddingName: () => 'model.decoder.embed_tokens.weight',
  outputEmbeddingName: headWeightName,
  buildGraph: buildOptGraph,
  referenceForward,
};
