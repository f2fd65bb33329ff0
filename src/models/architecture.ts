/**
 * What lmsteer knows about one model architecture, in one record (src/models/<arch>/index.ts): which config.json
 * model_types it reads, how it parses them, the tensors a checkpoint must hold, where its embeddings live, its
 * ONNX decoder graph and its plain-TypeScript reference forward. The registry (registry.ts) is a list of these;
 * adding an architecture is one folder and one line there (docs/ARCHITECTURE.md has the checklist).
 */
import type { GraphBuilder } from '../graph/builder.js';
import type { GraphBuildOptions } from '../graph/buildOptions.js';
import type { WeightStore } from '../formats/weights.js';
import type { DecoderConfig } from './config.js';
import type { ExpectedWeight } from './configFields.js';
import type { ReferenceOutput } from './referenceOps.js';

export interface Architecture {
  /** The record's name, stored as DecoderConfig.arch (e.g. 'llama' for llama, mistral and qwen2). */
  readonly name: string;
  /** config.json `model_type` values this record parses. */
  readonly modelTypes: readonly string[];
  /** config.json (already JSON-parsed, an object) → DecoderConfig; errors name `source` and the field. */
  parseConfig(raw: Record<string, unknown>, source: string): DecoderConfig;
  /**
   * The checkpoint's weights under the names the rest of this record uses (e.g. GPT-2's optional
   * `transformer.` prefix removed). Absent: the names are used as stored.
   */
  canonicalWeights?(weights: WeightStore): WeightStore;
  /** Every tensor the (canonical) checkpoint must hold, with the shape config.json implies. */
  expectedWeights(cfg: DecoderConfig): ExpectedWeight[];
  /** Name of the token embedding table [V, d] (the input side) among the canonical weights. */
  inputEmbeddingName(cfg: DecoderConfig): string;
  /** Name of the LM head matrix E [V, d] (logits = h·Eᵀ): the untied head or the tied token embedding. */
  outputEmbeddingName(cfg: DecoderConfig): string;
  /** Name of the LM head's bias [V] (logits = h·Eᵀ + b), for the models that have one (GPT-J). Absent: none. */
  outputBiasName?(cfg: DecoderConfig): string | undefined;
  /**
   * The decoder graph of the graph contract (docs/ARCHITECTURE.md) over canonical weights, its weights in the
   * precision `build` asks for (src/graph/linear.ts: linearLayer, embeddingLookup).
   */
  buildGraph(cfg: DecoderConfig, weights: WeightStore, build: GraphBuildOptions): GraphBuilder;
  /** logits [T, V] and the final hidden state [T, d] of `ids` at positions 0..T-1, float64 inside. */
  referenceForward(cfg: DecoderConfig, weights: WeightStore, ids: number[]): ReferenceOutput;
}
