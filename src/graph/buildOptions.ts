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

export interface GraphBuildOptions {
  dtype: WeightDType;
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

/** What the graph cache key must hold of a build: everything that changes the built graph's bytes. */
export function buildKey(build: GraphBuildOptions): Record<string, unknown> {
  return { dtype: build.dtype, nbits: nbitsSettings(build) ?? null };
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
