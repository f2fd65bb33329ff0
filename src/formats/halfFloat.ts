/**
 * fp16 / bf16 ↔ float32 conversion on bit patterns (Uint16Array), for the formats that store half floats.
 * Hand-written because no well-kept npm package does bulk typed-array conversion (Math.f16round is Node 22+
 * and converts one number at a time); NaN payloads, infinities and subnormals are preserved exactly.
 */

// fp16 → f32 goes through a 65,536-entry table of f32 bit patterns (256 KiB, built on first use): one load per
// value, much faster than decoding sign/exponent/mantissa per element.
let f16Table: Uint32Array | undefined;

function buildF16Table(): Uint32Array {
  const table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0x1f) {
      table[h] = sign | 0x7f800000 | (mant << 13); // inf / NaN (payload kept)
    } else if (exp !== 0) {
      table[h] = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    } else if (mant === 0) {
      table[h] = sign; // ±0
    } else {
      // Subnormal fp16 = normal f32: shift the mantissa up until its leading 1 is the implicit bit.
      let e = -14;
      while ((mant & 0x400) === 0) {
        mant <<= 1;
        e--;
      }
      table[h] = sign | ((e + 127) << 23) | ((mant & 0x3ff) << 13);
    }
  }
  return table;
}

/** fp16 bit patterns → float32 values (exact). */
export function f16ToF32(src: Uint16Array): Float32Array {
  const table = (f16Table ??= buildF16Table());
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = table[src[i]];
  return out;
}

/** bf16 bit patterns → float32 values (exact: bf16 is the top half of a float32). */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

/** float32 → fp16 bit patterns, round to nearest even; overflow → ±inf, NaN stays NaN. */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7fffff;
    if (exp === 0xff) {
      // NaN keeps its top payload bits (so fp16 NaNs round-trip); a payload only in the dropped bits becomes 0x200.
      out[i] = sign | 0x7c00 | (mant === 0 ? 0 : mant >>> 13 || 0x200);
      continue;
    }
    const e = exp - 127 + 15; // fp16 biased exponent
    if (e >= 31) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign; // below half the smallest subnormal: rounds to ±0
        continue;
      }
      const m = mant | 0x800000;
      const shift = 14 - e;
      let h = m >>> shift;
      const rem = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && (h & 1) !== 0)) h++; // a carry into bit 10 gives the smallest normal
      out[i] = sign | h;
    } else {
      let h = (e << 10) | (mant >>> 13);
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // a carry into the exponent may give inf: right
      out[i] = sign | h;
    }
  }
  return out;
}

/** float32 → bf16 bit patterns, round to nearest even; NaN stays NaN. */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
      out[i] = (x >>> 16) | 0x40; // NaN: keep it quiet so truncation cannot turn it into inf
      continue;
    }
    const rounded = x + 0x7fff + ((x >>> 16) & 1);
    out[i] = (rounded >>> 16) & 0xffff;
  }
  return out;
}
