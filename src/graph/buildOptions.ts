/**
 * How a decoder graph stores its weights, chosen once per model load (`--dtype`), and what each choice means
 * for the MatMulNBits weights (src/graph/quantize.ts, src/graph/nbitsOps.ts). The choices below were picked by
 * measurement: docs/PERFORMANCE.md "Quantization" (bench/quantProbe.ts) has the numbers and the reasons.
 * `fp32` is the exact reference path. The steer (h and its product) is fp32 whatever the dtype; the head's
 * steering term is exact with the float32 head, within ~1% with the 8-bit one and ~10% with the 4-bit one
 * (HeadDType).
 */
import { LmSteerError } from '../util/errors.js';
import type { NBitsOpOptions } from './nbitsOps.js';

export const WEIGHT_DTYPES = ['fp32', 'q8', 'q4'] as const;
export type WeightDType = (typeof WEIGHT_DTYPES)[number];

/**
 * The LM head's precision, apart from the body's. `q8`: an 8-bit head fed the hidden state h and the steering term
 * Δh as two rows (logits = head(h) + head(Δh)), which keeps the steering effect within ~1% of the exact steer's (an
 * 8-bit head over h + Δh loses a third of it: int8 activations round h and h + Δh on the same coarse scale;
 * docs/PERFORMANCE.md "The LM head and the steer"). `q4`: the same two rows through a 4-bit head, whose weights'
 * own rounding (~10%) then moves the steering effect by ~10%: never a default, for users who would trade steer
 * precision for speed and memory (the head is 40% of the bytes a q4 step reads at Qwen2.5-0.5B's shape; with it
 * q4 reads what an all-4-bit llama.cpp Q4_0 reads, up to MatMulNBits' float32 scales).
 * What a model load picks when not told: defaultHead.
 */
export const HEAD_DTYPES = ['fp32', 'q8', 'q4'] as const;
export type HeadDType = (typeof HEAD_DTYPES)[number];

export interface GraphBuildOptions {
  dtype: WeightDType;
  /** Absent: fp32 (a graph is built as told; loadModel always says which, defaultHead when the user did not). */
  head?: HeadDType;
  /** The most bytes one piece of a quantized head holds; absent: HEAD_PIECE_BYTES. Tests set it small. */
  headPieceBytes?: number;
}

/**
 * A quantized LM head is built as pieces of at most this many bytes (row ranges of E, one MatMulNBits each, their
 * logits concatenated). ORT prepacks each weight while the original's mapped pages are still resident, so the
 * largest single weight sets the transient peak of session creation, and the head is by far the largest
 * (Qwen2.5-0.5B's 8-bit head 153 MB, Llama-3.1-8B's 591 MB). Measured at Qwen2.5-0.5B's shape, q8: session
 * peak 931 → 812 MiB in 32 MiB pieces (831 in 64 MiB), decode speed unchanged (docs/PERFORMANCE.md).
 */
export const HEAD_PIECE_BYTES = 32 * 2 ** 20;

/**
 * The head a model load uses when not told: the body's precision where that is a head precision. fp32 keeps
 * the exact path exact; a quantized body gets the 8-bit head, because a float32 head would be most of the
 * bytes each decode step reads (Qwen2.5-0.5B: 545 MB against a 0.40 GB q8 body) and its exactness is lost in
 * the body's own rounding anyway (measured, docs/PERFORMANCE.md "Real sizes": the steering effect of a q8
 * body is within 1–2.4% of fp32's, the 8-bit head adds 0.6–0.8%). `--head fp32` keeps a float32 head.
 */
export function defaultHead(dtype: WeightDType): HeadDType {
  return dtype === 'fp32' ? 'fp32' : 'q8';
}

export const FP32_BUILD: GraphBuildOptions = { dtype: 'fp32' };

/** The MatMulNBits settings of each quantized dtype (measured choice; see the module comment). */
export const NBITS_SETTINGS: Record<Exclude<WeightDType, 'fp32'>, NBitsOpOptions> = {
  q8: { bits: 8, blockSize: 32, symmetric: true, accuracyLevel: 4 },
  q4: { bits: 4, blockSize: 32, symmetric: true, accuracyLevel: 4 },
};

/** The quantization of a build, or undefined for fp32. */
export function nbitsSettings(build: GraphBuildOptions): NBitsOpOptions | undefined {
  return build.dtype === 'fp32' ? undefined : NBITS_SETTINGS[build.dtype];
}

/** The MatMulNBits settings of the LM head (those of the body's dtype of its width), or undefined for float32. */
export function headNbitsSettings(build: GraphBuildOptions): NBitsOpOptions | undefined {
  const head = build.head ?? 'fp32';
  return head === 'fp32' ? undefined : NBITS_SETTINGS[head];
}

/** What the graph cache key must hold of a build: everything that changes the built graph's bytes. */
export function buildKey(build: GraphBuildOptions): Record<string, unknown> {
  return {
    dtype: build.dtype,
    nbits: nbitsSettings(build) ?? null,
    head: build.head ?? 'fp32',
    headNbits: headNbitsSettings(build) ?? null,
    headPieceBytes: headNbitsSettings(build) ? (build.headPieceBytes ?? HEAD_PIECE_BYTES) : null,
  };
}

/** A build in words, for messages: `q8`, `q4 (8-bit head)`. */
export function describeBuild(build: GraphBuildOptions): string {
  return (build.head ?? 'fp32') === 'fp32' ? build.dtype : `${build.dtype} (${build.head} head)`;
}

/** A `--dtype` value from a user: one of WEIGHT_DTYPES, else BAD_ARGUMENT naming the choices. */
export function parseWeightDType(value: string, what = '--dtype'): WeightDType {
  if ((WEIGHT_DTYPES as readonly string[]).includes(value)) return value as WeightDType;
  throw new LmSteerError(
    'BAD_ARGUMENT',
    `${what} ${JSON.stringify(value)} is not a weight precision lmsteer can build`,
    `use one of ${WEIGHT_DTYPES.join(', ')} (fp32: exact; q8 / q4: 8- / 4-bit blocks of 32 through ORT's MatMulNBits)`,
  );
}

/** A `--head` value from a user: one of HEAD_DTYPES, else BAD_ARGUMENT naming the choices and what each costs. */
export function parseHeadDType(value: string, what = '--head'): HeadDType {
  if ((HEAD_DTYPES as readonly string[]).includes(value)) return value as HeadDType;
  throw new LmSteerError(
    'BAD_ARGUMENT',
    `${what} ${JSON.stringify(value)} is not an LM head precision lmsteer can build`,
    `use one of ${HEAD_DTYPES.join(', ')} (fp32: the exact steer; q8: 8-bit, steering effect within ~1%; q4: 4-bit, within ~10%)`,
  );
}
