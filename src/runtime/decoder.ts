/**
 * The boundary between generation logic (the batch engine, sampling, stopping, streaming) and the thing that
 * computes logits: lmsteer's own decoder graphs (ortDecoder.ts), an existing ONNX export
 * (onnxExportDecoder.ts), or a fake in tests.
 *
 * A decoder offers one full forward pass (inspect, perplexity, hidden-state extraction) and pools of KV-cache
 * slots, which the one batch engine (engine.ts) drives for generate(), eval and the server alike.
 */
import type { Tensor } from '../util/tensor.js';

/** The packed steer directions (docs/ARCHITECTURE.md, "The steer in the graph"); built by src/steer/pack.ts. */
export interface SteerDirections {
  p1: Tensor; // [d, K]
  p2t: Tensor; // [K, d]
}

/** The three steer inputs of one forward pass: directions and each row's scales. */
export interface SteerInputs extends SteerDirections {
  scale: Tensor; // [batch, K]
}

export interface ForwardResult {
  /** [B, T, V]: logits at every position of each row (rows shorter than T repeat their last position). */
  logits: Tensor;
  /** [B, T, d]: final hidden states (valid up to each row's length). */
  hidden: Tensor;
  lengths: number[];
}

export interface ForwardOptions {
  steer?: SteerInputs;
  hiddenOnly?: boolean;
  keyLengths?: number[];
}

export interface Decoder {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  /** The model's context: a row never holds more tokens. */
  readonly maxPositions: number;
  /**
   * One full forward pass over rows of different lengths (no cache kept): logits at every position and the
   * final hidden states. `hiddenOnly`: logits at each row's last position only ([B, 1, V]). `keyLengths`:
   * row b's tokens from keyLengths[b] on are padding, which no query attends to (transformers' attention
   * mask over right-padded rows; their positions keep counting).
   */
  forward(rows: number[][], opts?: ForwardOptions): Promise<ForwardResult>;
  /** A pool of `rows` KV-cache slots whose rows share the steer directions `steer` (none: unsteered). */
  openSlots(opts: { rows: number; steer?: SteerDirections }): KvSlots;
}

/**
 * Per-row KV caches and steer scales of up to `rows` rows. Slot i holds one row: its cached positions and
 * its `steer_scale` row. The caller (the batch engine) keeps its rows in slots 0..n-1, so a step over them
 * reads the caches in place.
 */
export interface KvSlots {
  readonly rows: number;
  /** Steer columns (1 for an unsteered pool): the length of a scale row. */
  readonly K: number;
  /** Positions every slot holds room for now; grows with `reserve`. */
  readonly capacity: number;
  /** Make room for `length` positions per slot (doubling, at most the model's positions). */
  reserve(length: number): void;
  /** Give back memory when no slot is in use (the next `reserve` grows again). */
  shrink(): void;
  /** Slot `slot`'s steer scales (length K; undefined = zeros, i.e. unsteered). */
  setScale(slot: number, scale: Float32Array | undefined): void;
  /**
   * Run prompts from an empty cache and store prompt i's keys/values in every slot of `dest[i]`. With
   * `logits`, returns each prompt's next-token logits [V] (steered by the scales of its first slot).
   */
  prefill(prompts: number[][], dest: number[][], logits: boolean): Promise<Float32Array[]>;
  /**
   * Append `tokens[i]` to slot `first + i`, whose cache holds `lengths[i]` positions, for i < tokens.length;
   * returns their next-token logits [n, V].
   */
  extend(first: number, tokens: number[], lengths: number[]): Promise<Float32Array>;
  /** Copy slot `from`'s first `length` positions and its scales into slot `to` (a leaving row's slot). */
  move(from: number, to: number, length: number): void;
  dispose(): void;
}
