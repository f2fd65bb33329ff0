/**
 * How a decoder graph stores its weights, chosen once per model load (`--dtype`), and what each choice means
 * for the MatMulNBits weights (src/graph/quantize.ts, src/graph/nbitsOps.ts). The choices below were picked by
 * measurement: docs/PERFORMANCE.md "Quantization" (bench/quantProbe.ts) has the numbers and the reasons.
 * `fp32` is the exact reference path. The steer (h, its product, the head's steering term) is fp32 whatever
 * the dtype.
 */
import { LmSteerError } from '../util/errors.js';
import type { NBitsOpOptions } from './nbitsOps.js';

export const WEIGHT_DTYPES = ['fp32', 'q8', 'q4'] as const;
export type WeightDType = (typeof WEIGHT_DTYPES)[number];

/**
 * The LM head's precision, apart from the body's: fp32 by default in every dtype, so the steer is exact. `q8` is
 * opt-in: an 8-bit head fed the hidden state h and the steering term Δh as two rows (logits = head(h) + head(Δh)),
 * which keeps the steering effect within ~1% of fp32's (an 8-bit head over h + Δh loses a third of it: int8
 * activations round h and h + Δh on the same coarse scale; docs/PERFORMANCE.md "The LM head and the steer").
 */
export const HEAD_DTYPES = ['fp32', 'q8'] as const;
export type HeadDType = (typeof HEAD_DTYPES)[number];

export interface GraphBuildOptions {
  dtype: WeightDType;
  /** Default fp32. */
  head?: HeadDType;
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

/** The MatMulNBits settings of the LM head, or undefined for the float32 head. */
export function headNbitsSettings(build: GraphBuildOptions): NBitsOpOptions | undefined {
  return (build.head ?? 'fp32') === 'fp32' ? undefined : NBITS_SETTINGS.q8;
}

/** What the graph cache key must hold of a build: everything that changes the built graph's bytes. */
export function buildKey(build: GraphBuildOptions): Record<string, unknown> {
  return {
    dtype: build.dtype,
    nbits: nbitsSettings(build) ?? null,
    head: build.head ?? 'fp32',
    headNbits: headNbitsSettings(build) ?? null,
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

/** A `--head` value from a user: one of HEAD_DTYPES, else BAD_ARGUMENT naming the choices and why not q4. */
export function parseHeadDType(value: string, what = '--head'): HeadDType {
  if ((HEAD_DTYPES as readonly string[]).includes(value)) return value as HeadDType;
  throw new LmSteerError(
    'BAD_ARGUMENT',
    `${what} ${JSON.stringify(value)} is not an LM head precision lmsteer can build`,
    `use one of ${HEAD_DTYPES.join(', ')} (fp32: the exact steer; q8: 8-bit, steering effect within ~1%; a 4-bit head would lose ~10% of it)`,
  );
}
