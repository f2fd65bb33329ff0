/**
 * Architecture → plain-TypeScript reference forward (float64, one sequence, no cache): the ground truth the
 * ONNX graphs are tested against.
 */
import type { WeightStore } from '../formats/weights.js';
import type { DecoderConfig } from './config.js';
import type { ReferenceOutput } from './referenceOps.js';
import { referenceForward as gpt2Forward } from './gpt2/reference.js';
import { referenceForward as gptNeoxForward } from './gptNeox/reference.js';
import { referenceForward as llamaForward } from './llama/reference.js';

export type { ReferenceOutput } from './referenceOps.js';

/** logits [T, V] and the final hidden state [T, d] (after the final norm) for `ids` at positions 0..T-1. */
export function referenceForward(cfg: DecoderConfig, weights: WeightStore, ids: number[]): ReferenceOutput {
  switch (cfg.arch) {
    case 'llama':
      return llamaForward(cfg, weights, ids);
    case 'gpt2':
      return gpt2Forward(cfg, weights, ids);
    case 'gpt_neox':
      return gptNeoxForward(cfg, weights, ids);
  }
}
