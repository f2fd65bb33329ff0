/**
 * Graph nodes over block-quantized weights (src/graph/quantize.ts): ORT's MatMulNBits for x·Wᵀ and
 * GatherBlockQuantized for an embedding lookup. The weights are lazy initializers: quantized from their row
 * source when the graph is serialized, one at a time, so building never holds the float32 model.
 */
import { GraphBuilder, MS_DOMAIN } from './builder.js';
import type { OnnxDType } from './onnxProto.js';
import { nbitsLayout, quantizeRows, type NBitsMatrix, type QuantOptions } from './quantize.js';
import type { RowSource } from './rowSource.js';

export interface NBitsOpOptions extends QuantOptions {
  /**
   * How MatMulNBits computes: 0 unset (float32, dequantizing B), 1 fp32, 4 int8 (A quantized per block to int8,
   * integer dot products). docs/PERFORMANCE.md "Quantization" measures which pays.
   */
  accuracyLevel: 0 | 1 | 4;
}

/** The initializers of one quantized matrix named `name`: B, scales and (asymmetric) zero points. */
export interface NBitsInitializers {
  b: string;
  scales: string;
  zeroPoints?: string;
  N: number;
  K: number;
}

/**
 * Register the quantized form of the [N, K] matrix `rows()` gives (rows = output features, HF Linear [out, in]):
 *   `${name}.q`  uint8 [N, k_blocks, blob]   `${name}.scales` float32 [N, k_blocks]   `${name}.zp` uint8 [N, zp_bytes]
 * `rows` is called only when the graph is serialized.
 */
export function nbitsInitializers(
  g: GraphBuilder,
  name: string,
  shape: [N: number, K: number],
  rows: () => RowSource,
  opts: QuantOptions,
): NBitsInitializers {
  const [N, K] = shape;
  const L = nbitsLayout(N, K, opts.bits, opts.blockSize);
  const parts: { name: string; dtype: OnnxDType; dims: number[] }[] = [
    { name: `${name}.q`, dtype: 'uint8', dims: L.bDims },
    { name: `${name}.scales`, dtype: 'float32', dims: L.scalesDims },
  ];
  if (!opts.symmetric) parts.push({ name: `${name}.zp`, dtype: 'uint8', dims: L.zpDims });
  const names = g.lazyInitializers(parts, () => {
    const src = rows();
    if (src.rows !== N || src.cols !== K)
      throw new Error(`internal: ${name} has ${src.rows}×${src.cols} rows, expected ${N}×${K}`);
    return nbitsParts(quantizeRows(src, opts));
  });
  return { b: names[0], scales: names[1], zeroPoints: names[2], N, K };
}

function nbitsParts(q: NBitsMatrix): Uint8Array[] {
  const parts = [q.b, new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength)];
  if (q.zeroPoints) parts.push(q.zeroPoints);
  return parts;
}

/** y = x · dequant(W)ᵀ (+ bias): x [..., K] → y [..., N]. */
export function matMulNBits(
  g: GraphBuilder,
  x: string,
  w: NBitsInitializers,
  opts: NBitsOpOptions,
  bias?: string,
): string {
  // Inputs: A, B, scales, zero_points, g_idx (deprecated, never given), bias; "" = an omitted optional input.
  const inputs = [x, w.b, w.scales, w.zeroPoints ?? '', '', bias ?? ''];
  while (inputs[inputs.length - 1] === '') inputs.pop();
  return g.op(
    'MatMulNBits',
    inputs,
    { K: w.K, N: w.N, bits: opts.bits, block_size: opts.blockSize, accuracy_level: opts.accuracyLevel },
    { domain: MS_DOMAIN },
  );
}
