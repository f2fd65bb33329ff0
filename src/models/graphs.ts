/** Architecture → graph builder. (Config parsing dispatch lives in registry.ts.) */
import type { GraphBuilder } from '../graph/builder.js';
import type { WeightStore } from '../formats/weights.js';
import type { DecoderConfig } from './config.js';
import { buildGpt2Graph } from './gpt2/graph.js';
import { buildGptNeoxGraph } from './gptNeox/graph.js';
import { buildLlamaGraph } from './llama/graph.js';

/** Bump when any graph changes: it is part of the on-disk cache key of built graphs. */
export const GRAPH_BUILDER_VERSION = 6;

export function buildDecoderGraph(cfg: DecoderConfig, weights: WeightStore): GraphBuilder {
  switch (cfg.arch) {
    case 'llama':
      return buildLlamaGraph(cfg, weights);
    case 'gpt2':
      return buildGpt2Graph(cfg, weights);
    case 'gpt_neox':
      return buildGptNeoxGraph(cfg, weights);
  }
}
