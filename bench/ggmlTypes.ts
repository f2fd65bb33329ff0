/**
 * ggml's tensor storage types that the benchmark writes, bit for bit as ggml's reference quantizers
 * (ggml-quants.c quantize_row_q8_0_ref / quantize_row_q4_0_ref / quantize_row_q6_K_ref) make them, so llama.cpp
 * runs exactly what its own quantizer would have written:
 *   F32   4 bytes a value
 *   F16   2 bytes a value (IEEE half, round to nearest even)
 *   Q8_0  blocks of 32: f16 d = max|x| / 127, then 32 int8 q = round(x / d)          (34 bytes)
 *   Q4_0  blocks of 32: f16 d = m / −8 (m: the value of largest |x|, signed), then 16 bytes where byte j holds
 *         q[j] in its low nibble and q[j + 16] in its high nibble, q = min(15, trunc(x / d + 8.5))  (18 bytes)
 *   Q6_K  super-blocks of 256 (what llama-quantize gives the LM head of a Q4_0 model): 16 sub-blocks of 16, each
 *         with a scale fitted by make_qx_quants (a least-squares search over 19 candidate scales, weighted by x²);
 *         the 16 scales as int8 under one f16 d; 6-bit codes q + 32 split into low nibbles (ql, 128 bytes) and
 *         high pairs (qh, 64 bytes) in ggml's interleaved order; then int8 scales[16], then d  (210 bytes)
 * The codes are computed with the float32 d, before d is rounded to f16 for storage (as ggml does); Q6_K's codes
 * are recomputed from its stored (f16) d and int8 scales, as ggml does.
 */
import { f16ToF32, f32ToF16 } from '../src/formats/halfFloat.js';

export type GgmlType = 'F32' | 'F16' | 'Q8_0' | 'Q4_0' | 'Q6_K';

export const GGML_TYPES: Record<GgmlType, { id: number; blockValues: number; blockBytes: number }> = {
  F32: { id: 0, blockValues: 1, blockBytes: 4 },
  F16: { id: 1, blockValues: 1, blockBytes: 2 },
  Q4_0: { id: 2, blockValues: 32, blockBytes: 18 },
  Q8_0: { id: 8, blockValues: 32, blockBytes: 34 },
  Q6_K: { id: 14, blockValues: 256, blockBytes: 210 },
};

/** llama.cpp's general.file_type of a model whose 2-D weights are all `type` (LLAMA_FTYPE_*). */
export const GGUF_FILE_TYPE: Record<GgmlType, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, Q6_K: 18 };

/**
 * The type llama-quantize stores a tensor of `type` in when its rows are `rowLen` long: a k-quant needs whole
 * super-blocks of 256, and llama-quantize falls back from Q6_K to Q8_0 otherwise (llama_tensor_get_type's
 * "using fallback quantization"). So the LM head of a Q4_0 model is Q6_K where d is a multiple of 256 (Llama-3.2-1B,
 * Llama-3.1-8B) and Q8_0 where it is not (Qwen2.5-0.5B's d = 896).
 */
export function storableType(type: GgmlType, rowLen: number): GgmlType {
  return rowLen % GGML_TYPES[type].blockValues === 0 ? type : type === 'Q6_K' ? 'Q8_0' : type;
}

const f = Math.fround;

/** Encode whole rows of `rowLen` values (row-major) as `type`. */
export function encodeRows(values: Float32Array, rowLen: number, type: GgmlType): Uint8Array {
  if (values.length % rowLen !== 0) throw new Error(`internal: ${values.length} values are not whole rows`);
  switch (type) {
    case 'F32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'F16': {
      const h = f32ToF16(values);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case 'Q8_0':
      return quantQ8_0(values);
    case 'Q4_0':
      return quantQ4_0(values);
    case 'Q6_K':
      return quantQ6_K(values);
  }
}

function quantQ8_0(x: Float32Array): Uint8Array {
  const blocks = x.length / 32;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  const dBits = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const o = b * 32;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[o + j]));
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    dBits[b] = d;
    for (let j = 0; j < 32; j++) {
      const v = f(x[o + j] * id);
      view.setInt8(b * 34 + 2 + j, Math.sign(v) * Math.round(Math.abs(v))); // roundf: half away from zero
    }
  }
  const d16 = f32ToF16(dBits);
  for (let b = 0; b < blocks; b++) view.setUint16(b * 34, d16[b], true);
  return out;
}

function quantQ4_0(x: Float32Array): Uint8Array {
  const blocks = x.length / 32;
  const out = new Uint8Array(blocks * 18);
  const view = new DataView(out.buffer);
  const dBits = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const o = b * 32;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      if (amax < Math.abs(x[o + j])) {
        amax = Math.abs(x[o + j]);
        max = x[o + j];
      }
    }
    const d = f(max / -8);
    const id = d ? f(1 / d) : 0;
    dBits[b] = d;
    for (let j = 0; j < 16; j++) {
      const x0 = f(f(x[o + j] * id) + 8.5);
      const x1 = f(f(x[o + 16 + j] * id) + 8.5);
      out[b * 18 + 2 + j] = Math.min(15, Math.trunc(x0)) | (Math.min(15, Math.trunc(x1)) << 4);
    }
  }
  const d16 = f32ToF16(dBits);
  for (let b = 0; b < blocks; b++) view.setUint16(b * 18, d16[b], true);
  return out;
}

/** ggml's nearest_int: round half to even in float32 (its 1.5·2²³ addition trick), for |x| < 2²². */
const nearestInt = (x: number) => f(x + 12582912) - 12582912;

/**
 * ggml's make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL): a signed scale for `x` with codes L in
 * [0, 2·nmax) (l + nmax), chosen among 19 candidates (nmax + 0.1·k, k = −9…9) by the x²-weighted least squares
 * fit. Returns the scale; writes L.
 */
function makeQxQuants(x: Float32Array, nmax: number, L: Int8Array): number {
  const n = x.length;
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < 1e-15) {
    L.fill(0);
    return 0;
  }
  const fit = (iscale: number, write: boolean) => {
    let sumlx = 0;
    let suml2 = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * x[i]))));
      if (write) L[i] = l + nmax;
      const w = f(x[i] * x[i]);
      sumlx = f(sumlx + f(f(w * x[i]) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    return { sumlx, suml2 };
  };
  const first = fit(f(-nmax / max), true);
  let scale = first.suml2 ? f(first.sumlx / first.suml2) : 0;
  let best = f(scale * first.sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    const iscale = f(-f(nmax + f(0.1 * is)) / max);
    const { sumlx, suml2 } = fit(iscale, false);
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      fit(iscale, true);
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

function quantQ6_K(x: Float32Array): Uint8Array {
  const blocks = x.length / 256;
  const out = new Uint8Array(blocks * 210);
  const view = new DataView(out.buffer);
  const L = new Int8Array(256);
  const scales = new Float32Array(16);
  for (let b = 0; b < blocks; b++) {
    const xb = x.subarray(b * 256, (b + 1) * 256);
    const o = b * 210; // ql [0, 128), qh [128, 192), scales [192, 208), d [208, 210)
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      scales[ib] = makeQxQuants(xb.subarray(16 * ib, 16 * ib + 16), 32, L.subarray(16 * ib, 16 * ib + 16));
      if (Math.abs(scales[ib]) > maxAbsScale) {
        maxAbsScale = Math.abs(scales[ib]);
        maxScale = scales[ib];
      }
    }
    if (maxAbsScale < 1e-15) continue; // an all-zero block: every byte 0, d = 0
    const iscale = f(-128 / maxScale);
    const d16 = f32ToF16(Float32Array.of(f(1 / iscale)))[0];
    view.setUint16(o + 208, d16, true);
    const d = f16ToF32(Uint16Array.of(d16))[0];
    for (let ib = 0; ib < 16; ib++) {
      const sc = Math.min(127, nearestInt(f(iscale * scales[ib])));
      view.setInt8(o + 192 + ib, sc);
      const ds = f(d * sc);
      if (!ds) continue; // ggml keeps make_qx_quants' codes for such a sub-block
      for (let ii = 0; ii < 16; ii++)
        L[16 * ib + ii] = Math.max(-32, Math.min(31, nearestInt(f(xb[16 * ib + ii] / ds)))) + 32;
    }
    for (let half = 0; half < 2; half++) {
      const j = half * 128;
      const ql = o + half * 64;
      const qh = o + 128 + half * 32;
      for (let l = 0; l < 32; l++) {
        const [q1, q2, q3, q4] = [L[j + l], L[j + l + 32], L[j + l + 64], L[j + l + 96]];
        out[ql + l] = (q1 & 15) | ((q3 & 15) << 4);
        out[ql + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
        out[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
  return out;
}

/** The float32 values ggml reads back from `bytes` of `type` (dequantize_row_q8_0 / _q4_0 / _q6_K). */
export function decodeRows(bytes: Uint8Array, type: GgmlType): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const half = (at: number) => f16ToF32(Uint16Array.of(view.getUint16(at, true)))[0];
  switch (type) {
    case 'F32':
      return new Float32Array(bytes.slice().buffer);
    case 'F16':
      return f16ToF32(new Uint16Array(bytes.slice().buffer));
    case 'Q8_0': {
      const out = new Float32Array((bytes.length / 34) * 32);
      for (let b = 0; b < bytes.length / 34; b++) {
        const d = half(b * 34);
        for (let j = 0; j < 32; j++) out[b * 32 + j] = view.getInt8(b * 34 + 2 + j) * d;
      }
      return out;
    }
    case 'Q4_0': {
      const out = new Float32Array((bytes.length / 18) * 32);
      for (let b = 0; b < bytes.length / 18; b++) {
        const d = half(b * 18);
        for (let j = 0; j < 16; j++) {
          const q = bytes[b * 18 + 2 + j];
          out[b * 32 + j] = ((q & 15) - 8) * d;
          out[b * 32 + 16 + j] = ((q >> 4) - 8) * d;
        }
      }
      return out;
    }
    case 'Q6_K': {
      const out = new Float32Array((bytes.length / 210) * 256);
      for (let b = 0; b < bytes.length / 210; b++) {
        const o = b * 210;
        const d = half(o + 208);
        for (let h = 0; h < 2; h++) {
          const ql = o + h * 64;
          const qh = o + 128 + h * 32;
          const sc = o + 192 + h * 8;
          const y = b * 256 + h * 128;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const hi = bytes[qh + l];
            const q1 = ((bytes[ql + l] & 15) | ((hi & 3) << 4)) - 32;
            const q2 = ((bytes[ql + l + 32] & 15) | (((hi >> 2) & 3) << 4)) - 32;
            const q3 = ((bytes[ql + l] >> 4) | (((hi >> 4) & 3) << 4)) - 32;
            const q4 = ((bytes[ql + l + 32] >> 4) | (((hi >> 6) & 3) << 4)) - 32;
            out[y + l] = f(d * view.getInt8(sc + is)) * q1;
            out[y + l + 32] = f(d * view.getInt8(sc + is + 2)) * q2;
            out[y + l + 64] = f(d * view.getInt8(sc + is + 4)) * q3;
            out[y + l + 96] = f(d * view.getInt8(sc + is + 6)) * q4;
          }
        }
      }
      return out;
    }
  }
}
