/**
 * Block quantization of a weight matrix into ONNX Runtime's MatMulNBits layout (com.microsoft contrib op,
 * docs/ContribOperators.md; CPU kernel contrib_ops/cpu/quantization/matmul_nbits.cc):
 *
 *   Y = A · dequant(B)ᵀ (+ bias),   dequant(B)[n, k] = (code[n, k] − zp[n, k / block]) · scale[n, k / block]
 *
 *   B            uint8 [N, k_blocks, blob_size]   k_blocks = ceil(K / block), blob_size = block · bits / 8;
 *                                                 codes packed low bits first along K (4-bit: element 2j in the
 *                                                 low nibble of byte j, element 2j+1 in the high nibble)
 *   scales       float32 [N, k_blocks]
 *   zero_points  uint8 [N, ceil(k_blocks · bits / 8)], packed like B, each row of N starting on a new byte;
 *                absent → 2^(bits−1) (8 for 4-bit, 128 for 8-bit)
 *
 * B's rows are output features: a Hugging Face Linear weight [out, in] is B as it is, with no transpose.
 * K need not be a multiple of the block: the last block's missing codes are written as the zero point, so
 * they dequantize to 0.
 *
 * Two rules per bit width (docs/PERFORMANCE.md "Quantization" has the measured error of each):
 *   symmetric   no zero_points; scale = m / −2^(bits−1) with m the block's value of largest magnitude, so m maps
 *               to code 0 exactly and all 2^bits codes are used (for 4 bits this is ggml's Q4_0 rule)
 *   asymmetric  per-block zero point; the block's [min(0, lo), max(0, hi)] spread over 2^bits − 1 steps (ORT's
 *               own quantizer's rule: 0 stays exactly representable)
 */
import type { RowSource } from './rowSource.js';

export type QuantBits = 4 | 8;

export interface QuantOptions {
  bits: QuantBits;
  /** Values per block along K: a power of 2, ≥ 16 (the op's constraint). */
  blockSize: number;
  /** true: no zero points (the op's default zero point); false: a zero point per block. */
  symmetric: boolean;
}

/** A matrix in MatMulNBits' layout: the three tensors the op takes, with the attributes it needs. */
export interface NBitsMatrix {
  bits: QuantBits;
  blockSize: number;
  /** Output features (rows of the source). */
  N: number;
  /** Input features (columns of the source). */
  K: number;
  kBlocks: number;
  blobSize: number;
  b: Uint8Array; // [N, kBlocks, blobSize]
  scales: Float32Array; // [N, kBlocks]
  zeroPoints?: Uint8Array; // [N, zpRowBytes]
}

export interface NBitsLayout {
  kBlocks: number;
  blobSize: number;
  /** Bytes of one row of packed zero points. */
  zpRowBytes: number;
  bDims: [number, number, number];
  scalesDims: [number, number];
  zpDims: [number, number];
}

export function nbitsLayout(N: number, K: number, bits: QuantBits, blockSize: number): NBitsLayout {
  if (!(blockSize >= 16 && (blockSize & (blockSize - 1)) === 0))
    throw new Error(`internal: MatMulNBits block size ${blockSize} is not a power of 2 ≥ 16`);
  if (bits !== 4 && bits !== 8) throw new Error(`internal: ${bits}-bit quantization is not supported`);
  const kBlocks = Math.ceil(K / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const zpRowBytes = Math.ceil((kBlocks * bits) / 8);
  return {
    kBlocks,
    blobSize,
    zpRowBytes,
    bDims: [N, kBlocks, blobSize],
    scalesDims: [N, kBlocks],
    zpDims: [N, zpRowBytes],
  };
}

/** Rows quantized per read: bands of ~1M values keep the float32 scratch near 4 MB whatever the matrix. */
const BAND_VALUES = 1 << 20;

/** Quantize every row of `src` ([N, K]: Linear [out, in]) band by band. */
export function quantizeRows(src: RowSource, opts: QuantOptions): NBitsMatrix {
  const { bits, blockSize, symmetric } = opts;
  const N = src.rows;
  const K = src.cols;
  const L = nbitsLayout(N, K, bits, blockSize);
  const rowBytes = L.kBlocks * L.blobSize;
  const b = new Uint8Array(N * rowBytes);
  const scales = new Float32Array(N * L.kBlocks);
  const zeroPoints = symmetric ? undefined : new Uint8Array(N * L.zpRowBytes);
  const qmax = (1 << bits) - 1;
  const half = 1 << (bits - 1);
  const codes = new Uint8Array(blockSize);
  const band = Math.max(1, Math.floor(BAND_VALUES / Math.max(1, K)));
  for (let r0 = 0; r0 < N; r0 += band) {
    const count = Math.min(band, N - r0);
    const rows = src.read(r0, count);
    if (rows.length !== count * K) throw new Error(`internal: row source gave ${rows.length} values for ${count}×${K}`);
    for (let r = 0; r < count; r++) {
      const n = r0 + r;
      for (let blk = 0; blk < L.kBlocks; blk++) {
        const k0 = blk * blockSize;
        const len = Math.min(blockSize, K - k0);
        const at0 = r * K + k0; // the block is rows[at0 .. at0 + len)
        let scale: number;
        let zp: number;
        if (symmetric) {
          // The value of largest magnitude, with its sign (the first of them on a tie, as ggml picks it).
          let lo = 0;
          let hi = 0;
          for (let i = at0; i < at0 + len; i++) {
            const v = rows[i];
            if (v < lo) lo = v;
            else if (v > hi) hi = v;
          }
          let m = -lo > hi ? lo : hi;
          if (-lo === hi && hi !== 0) for (let i = at0; i < at0 + len; i++) if (rows[i] === lo || rows[i] === hi) { m = rows[i]; break; } // prettier-ignore
          scale = Math.fround(m / -half);
          zp = half;
          const inv = scale !== 0 ? 1 / scale : 0;
          // m·inv = −half exactly; the opposite extreme reaches +half and is clamped to half − 1 (as ggml does).
          // x·inv + half + 0.5 ≥ 0.5 here, so truncation is the floor.
          for (let i = 0; i < len; i++) {
            const c = (rows[at0 + i] * inv + half + 0.5) | 0;
            codes[i] = c > qmax ? qmax : c;
          }
        } else {
          const x = rows.subarray(at0, at0 + len);
          let lo = 0;
          let hi = 0;
          for (let i = 0; i < len; i++) {
            if (x[i] < lo) lo = x[i];
            if (x[i] > hi) hi = x[i];
          }
          scale = Math.fround((hi - lo) / qmax);
          const inv = scale !== 0 ? 1 / scale : 0;
          zp = scale !== 0 ? Math.min(qmax, Math.max(0, Math.round(-lo * inv))) : half;
          for (let i = 0; i < len; i++) codes[i] = Math.min(qmax, Math.max(0, Math.round(x[i] * inv) + zp));
        }
        codes.fill(zp, len); // the tail of a short last block dequantizes to 0
        scales[n * L.kBlocks + blk] = scale;
        const at = n * rowBytes + blk * L.blobSize;
        if (bits === 8) b.set(codes, at);
        else for (let j = 0; j < L.blobSize; j++) b[at + j] = codes[2 * j] | (codes[2 * j + 1] << 4);
        if (zeroPoints) {
          const zAt = n * L.zpRowBytes;
          if (bits === 8) zeroPoints[zAt + blk] = zp;
          else zeroPoints[zAt + (blk >> 1)] |= blk & 1 ? zp << 4 : zp;
        }
      }
    }
  }
  return { bits, blockSize, N, K, kBlocks: L.kBlocks, blobSize: L.blobSize, b, scales, zeroPoints };
}

/** The code of element (n, k) and the zero point of its block, read back from the packed layout. */
function codeAt(q: NBitsMatrix, n: number, k: number): { code: number; zp: number } {
  const blk = Math.floor(k / q.blockSize);
  const i = k % q.blockSize;
  const at = (n * q.kBlocks + blk) * q.blobSize;
  const code = q.bits === 8 ? q.b[at + i] : (q.b[at + (i >> 1)] >> (i & 1 ? 4 : 0)) & 15;
  let zp = 1 << (q.bits - 1);
  if (q.zeroPoints) {
    const zpRow = Math.ceil((q.kBlocks * q.bits) / 8);
    zp =
      q.bits === 8 ? q.zeroPoints[n * zpRow + blk] : (q.zeroPoints[n * zpRow + (blk >> 1)] >> (blk & 1 ? 4 : 0)) & 15;
  }
  return { code, zp };
}

/** dequant(B) [N, K] as float32, computed exactly as the op defines it: (code − zp) · scale. */
export function dequantize(q: NBitsMatrix): Float32Array {
  const out = new Float32Array(q.N * q.K);
  for (let n = 0; n < q.N; n++) {
    for (let k = 0; k < q.K; k++) {
      const { code, zp } = codeAt(q, n, k);
      out[n * q.K + k] = (code - zp) * q.scales[n * q.kBlocks + Math.floor(k / q.blockSize)];
    }
  }
  return out;
}
