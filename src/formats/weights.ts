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
  /**
   * The dtype the tensor is stored in on disk ('F32', 'BF16', 'F16', … as safetensors names them). Optional:
   * stores without it (in memory) hold float32. Gemma's embedding scale is rounded to the weights' dtype.
   */
  dtypeOf?(name: string): string;
  /** A human-readable origin for error messages (a path or a hub id). */
  readonly source: string;
  /**
   * Rows [start, start + count) of a 2-D tensor as float32, read without loading the rest (stores backed by a
   * file); lets a quantizer walk a big matrix in bands. Optional: src/graph/rowSource.ts falls back to `get`.
   */
  readRows?(name: string, start: number, count: number): Tensor<'float32'>;
  /**
   * A short string that changes whenever the weights may have changed, computed without reading them (file
   * paths, sizes, mtimes, header hashes): the built-graph cache key. Optional: stores without it (in memory)
   * are keyed by hashing every weight.
   */
  identity?(): string;
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
  readRows(name: string, start: number, count: number): Tensor<'float32'> {
    const t = this.get(name);
    const cols = t.shape[1];
    return { dtype: 'float32', shape: [count, cols], data: t.data.subarray(start * cols, (start + count) * cols) };
  }
}
