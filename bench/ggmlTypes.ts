/**
 * ggml's tensor storage types that the benchmark writes, bit for bit as ggml's reference quantizers
 * (ggml-quants.c quantize_row_q8_0_ref / quantize_row_q4_0_ref) make them, so llama.cpp runs exactly what its
 * own converter would have written:
 *   F32   4 bytes a value
 *   F16   2 bytes a value (IEEE half, round to nearest even)
 *   Q8_0  blocks of 32: f16 d = max|x| / 127, then 32 int8 q = round(x / d)          (34 bytes)
 *   Q4_0  blocks of 32: f16 d = m / −8 (m: the value of largest |x|, signed), then 16 bytes where byte j holds
 *         q[j] in its low nibble and q[j + 16] in its high nibble, q = min(15, trunc(x / d + 8.5))  (18 bytes)
 * The codes are computed with the float32 d, before d is rounded to f16 for storage (as ggml does).
 */
import { f16ToF32, f32ToF16 } from '../src/formats/halfFloat.js';

export type GgmlType = 'F32' | 'F16' | 'Q8_0' | 'Q4_0';

export const GGML_TYPES: Record<GgmlType, { id: number; blockValues: number; blockBytes: number }> = {
  F32: { id: 0, blockValues: 1, blockBytes: 4 },
  F16: { id: 1, blockValues: 1, blockBytes: 2 },
  Q4_0: { id: 2, blockValues: 32, blockBytes: 18 },
  Q8_0: { id: 8, blockValues: 32, blockBytes: 34 },
};

/** llama.cpp's general.file_type of a model whose 2-D weights are all `type` (LLAMA_FTYPE_*). */
export const GGUF_FILE_TYPE: Record<GgmlType, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7 };

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

/** The float32 values ggml reads back from `bytes` of `type` (dequantize_row_q8_0 / dequantize_row_q4_0). */
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
  }
}
