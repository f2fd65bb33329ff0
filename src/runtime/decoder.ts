/**
 * The boundary between generation logic (sampling, stopping, streaming) and the thing that computes logits
 * (an ORT session over a decoder graph, or a fake in tests).
 */
import type { Tensor } from '../util/tensor.js';
import type { ForwardResult } from './ortDecoder.js';

/** The packed steer inputs of the graph (docs/ARCHITECTURE.md, "The steer in the graph"). */
export interface SteerInputs {
  p1: Tensor; // [d, K]
  p2t: Tensor; // [K, d]
  scale: Tensor; // [batch, K]
}

export interface StepOutput {
  /** Next-token logits of each row, [batch, vocab]. */
  logits: Tensor;
}

/** A running batch: each row has its own KV cache inside. */
export interface DecoderBatch {
  readonly batchSize: number;
  /** Append one token per row (rows that are done still get a token, e.g. EOS) and return the next logits. */
  step(nextTokens: number[]): Promise<StepOutput>;
  /** Free the KV cache. */
  dispose(): void;
}

export interface Decoder {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  /**
   * Prefill prompts of different lengths; returns the batch and each prompt's next-token logits.
   * `maxNewTokens` sizes the KV cache up front (it grows if exceeded).
   */
  start(
    prompts: number[][],
    steer?: SteerInputs,
    opts?: { maxNewTokens?: number },
  ): Promise<{ batch: DecoderBatch; out: StepOutput }>;
}

/**
 * What a loaded model's decoder offers callers (generate, eval, training extraction, inspect): generation plus
 * one full forward pass with logits at every position and the final hidden states. OrtDecoder (lmsteer's own
 * graphs) and OnnxExportDecoder (existing ONNX exports) both are one.
 */
export interface ModelDecoder extends Decoder {
  forward(rows: number[][], opts?: { steer?: SteerInputs; hiddenOnly?: boolean }): Promise<ForwardResult>;
}
