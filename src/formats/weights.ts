/**
 * A read-only bag of named weights, whatever file format they came from. Formats widen fp16/bf16 to float32
 * on `get`; names are Hugging Face's (llama2.c checkpoints are renamed and permuted on load).
 */
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';

export interface WeightStore {
  names(): string[];
  has(name: string): boolean;
  /** Shape without reading the data. */
  shape(name: string): number[];
  /** The tensor as float32; throws NOT_FOUND naming the tensor and the source when absent. */
  get(name: string): Tensor<'float32'>;
  /** A human-readable origin for error messages (a path or a hub id). */
  readonly source: string;
}

/** Weights held in memory (tests, converted checkpoints). */
export class MapWeightStore implements WeightStore {
  constructor(
    private readonly map: Map<string, Tensor<'float32'>>,
    readonly source = 'memory',
  ) {}
  names(): string[] {
    return [...this.map.keys()];
  }
  has(name: string): boolean {
    return this.map.has(name);
  }
  shape(name: string): number[] {
    return this.get(name).shape;
  }
  get(name: string): Tensor<'float32'> {
    const t = this.map.get(name);
    if (!t)
      throw new LmSteerError(
        'NOT_FOUND',
        `tensor "${name}" is missing from ${this.source}`,
        'the checkpoint does not match its config.json, or is incomplete',
      );
    return t;
  }
}
