/**
 * The weight-bearing ops of a decoder graph, in the precision of the build (src/graph/buildOptions.ts): a Linear
 * layer (float32 MatMul or MatMulNBits) and an embedding lookup (float32 Gather or GatherBlockQuantized). Weights
 * are given as row sources of Hugging Face's [out, in] / [V, d] layout and become lazy initializers, so building a
 * graph holds about one weight at a time whatever the dtype.
 */
import type { GraphBuilder } from './builder.js';
import { MS_DOMAIN } from './builder.js';
import { HEAD_PIECE_BYTES, headNbitsSettings, nbitsSettings, type GraphBuildOptions } from './buildOptions.js';
import { matMulNBits, nbitsInitializers, type NBitsInitializers, type NBitsOpOptions } from './nbitsOps.js';
import { nbitsLayout, quantizeRows } from './quantize.js';
import type { OnnxDType } from './onnxProto.js';
import { sliceRows, transposeRows, type RowSource } from './rowSource.js';

const f32Bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * y = x · Wᵀ (+ bias) for W [out, in] = `shape`. fp32: MatMul over Wᵀ [in, out] (transposed when serialized; MatMul
 * over [in, out] reads ~3× faster than Gemm with transB, docs/PERFORMANCE.md); q8/q4: MatMulNBits over W as it is.
 * Initializers: `name` (fp32) or `name.q`, `name.scales` (+ `name.zp`).
 */
export function linearLayer(
  g: GraphBuilder,
  x: string,
  name: string,
  shape: [out: number, inp: number],
  rows: () => RowSource,
  build: GraphBuildOptions,
  bias?: string,
): string {
  const [out, inp] = shape;
  const q = nbitsSettings(build);
  if (q) return matMulNBits(g, x, nbitsInitializers(g, name, shape, rows, q), q, bias);
  const w = g.lazyInitializer(name, 'float32', [inp, out], () => f32Bytes(transposeRows(rows())));
  const y = g.op('MatMul', [x, w]);
  return bias ? g.op('Add', [y, bias]) : y;
}

/**
 * Rows of E [V, d] = `shape` for token ids [B, T] → [B, T, d]. fp32: Gather; q8/q4 (when the block divides d):
 * GatherBlockQuantized on E quantized as MatMulNBits' blocks (uint8 [V, d·bits/8], scales [V, d/block]), exact to
 * the dequantized table (test/graph/quantize.test.ts).
 */
export function embeddingLookup(
  g: GraphBuilder,
  ids: string,
  name: string,
  shape: [vocab: number, d: number],
  rows: () => RowSource,
  build: GraphBuildOptions,
): string {
  const [V, d] = shape;
  const q = nbitsSettings(build);
  if (!q || d % q.blockSize !== 0) {
    const e = g.lazyInitializer(name, 'float32', [V, d], () => {
      const src = rows();
      return f32Bytes(Float32Array.from(src.read(0, src.rows)));
    });
    return g.op('Gather', [e, ids], { axis: 0 });
  }
  // The same bytes as MatMulNBits' [V, k_blocks, blob] when the block divides d, seen as [V, d·bits/8].
  const L = nbitsLayout(V, d, q.bits, q.blockSize);
  const parts: { name: string; dtype: OnnxDType; dims: number[] }[] = [
    { name: `${name}.q`, dtype: 'uint8', dims: [V, L.kBlocks * L.blobSize] },
    { name: `${name}.scales`, dtype: 'float32', dims: L.scalesDims },
  ];
  if (!q.symmetric) parts.push({ name: `${name}.zp`, dtype: 'uint8', dims: L.zpDims });
  const inputs = g.lazyInitializers(parts, () => {
    const m = quantizeRows(rows(), q);
    return [m.b, f32Bytes(m.scales), ...(m.zeroPoints ? [m.zeroPoints] : [])];
  });
  return g.op(
    'GatherBlockQuantized',
    [inputs[0], ids, inputs[1], ...inputs.slice(2)],
    { gather_axis: 0, quantize_axis: 1, block_size: q.blockSize, bits: q.bits },
    { domain: MS_DOMAIN },
  );
}

/**
 * The LM head over E [V, d] = `shape` (logits = h·Eᵀ) in the precision of `build.head`:
 *   fp32  Eᵀ [d, V] float32, initializer `${name}_t` (MatMul over [in, out], as linearLayer)
 *   q8/q4 E [V, d] as MatMulNBits blocks, in row pieces of ≤ build.headPieceBytes (HEAD_PIECE_BYTES: a smaller
 *         peak while ORT prepacks them): `${name}.q` / `.scales` when one piece, else `${name}.0.q`, `${name}.1.q` …
 * src/models/common.ts steeredHead applies it (a quantized head gets the steering term as its own row).
 */
export type LmHead =
  { kind: 'fp32'; eT: string } | { kind: 'nbits'; pieces: NBitsInitializers[]; opts: NBitsOpOptions };

export function lmHead(
  g: GraphBuilder,
  name: string,
  shape: [vocab: number, d: number],
  rows: () => RowSource,
  build: GraphBuildOptions,
): LmHead {
  const [V, d] = shape;
  const q = headNbitsSettings(build);
  if (q) {
    const L = nbitsLayout(1, d, q.bits, q.blockSize); // one row's codes, float32 scales and zero points
    const bytes = V * (L.kBlocks * L.blobSize + 4 * L.kBlocks + (q.symmetric ? 0 : L.zpRowBytes));
    const pieceBytes = build.headPieceBytes ?? HEAD_PIECE_BYTES;
    if (!(pieceBytes > 0)) throw new Error(`internal: headPieceBytes ${pieceBytes}`);
    const count = Math.min(V, Math.max(1, Math.ceil(bytes / pieceBytes)));
    const size = Math.ceil(V / count);
    const pieces: NBitsInitializers[] = [];
    for (let start = 0; start < V; start += size) {
      const n = Math.min(size, V - start);
      const at = start;
      const pieceName = count === 1 ? name : `${name}.${pieces.length}`;
      pieces.push(nbitsInitializers(g, pieceName, [n, d], () => sliceRows(rows(), at, n), q));
    }
    return { kind: 'nbits', pieces, opts: q };
  }
  return { kind: 'fp32', eT: g.lazyInitializer(`${name}_t`, 'float32', [d, V], () => f32Bytes(transposeRows(rows()))) };
}
