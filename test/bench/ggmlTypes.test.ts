/**
 * The bench's ggml block encoders (bench/ggmlTypes.ts) against their own decoders and ggml's bounds. llama.cpp
 * reading the same bytes is checked by `npm run bench -- scale --parity` (it needs node-llama-cpp); this checks
 * what can be checked without it: the sizes, the round trip's error bound per type, and Q6_K's byte layout.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRows, encodeRows, GGML_TYPES, storableType, type GgmlType } from '../../bench/ggmlTypes.js';
import { f16ToF32 } from '../../src/formats/halfFloat.js';

function gaussian(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) * 0.02);
}

/** Max |error| of each block of `values` as a fraction of the block's max |x|: the type's rounding bound. */
const BOUND: Record<GgmlType, number> = {
  F32: 0,
  F16: 2 ** -11,
  Q8_0: 0.5 / 127 + 1e-3,
  Q4_0: 1 / 8 + 1e-3 /* the side opposite max clamps at 7·d */,
  Q6_K: 1 / 32,
};

for (const type of Object.keys(GGML_TYPES) as GgmlType[]) {
  test(`${type}: byte size and round-trip error within the type's bound`, () => {
    const { blockValues, blockBytes } = GGML_TYPES[type];
    const rowLen = 512;
    const x = gaussian(rowLen * 3, 7);
    x[5] = 0.3; // one outlier: the block's scale must follow it
    x.fill(0, 256, 512); // an all-zero block decodes to zeros
    const bytes = encodeRows(x, rowLen, type);
    assert.equal(bytes.length, (x.length / blockValues) * blockBytes);
    const y = decodeRows(bytes, type);
    assert.equal(y.length, x.length);
    const block = Math.max(blockValues, 32);
    for (let b = 0; b < x.length / block; b++) {
      let amax = 0;
      let err = 0;
      for (let j = b * block; j < (b + 1) * block; j++) {
        amax = Math.max(amax, Math.abs(x[j]));
        err = Math.max(err, Math.abs(x[j] - y[j]));
      }
      assert.ok(err <= BOUND[type] * amax, `${type} block ${b}: max error ${err} for max |x| ${amax}`);
    }
  });
}

test('Q6_K: a hand-built super-block decodes in ggml layout (ql low nibbles, qh high pairs, int8 scales, f16 d)', () => {
  const bytes = new Uint8Array(210);
  // value i gets code q(i) = i % 64 (stored q + 32 ... so the value is d · scale[i / 16] · (q(i) − 32)).
  const q = (i: number) => i % 64;
  for (let h = 0; h < 2; h++)
    for (let l = 0; l < 32; l++) {
      const [q1, q2, q3, q4] = [0, 32, 64, 96].map((k) => q(h * 128 + l + k));
      bytes[h * 64 + l] = (q1 & 15) | ((q3 & 15) << 4);
      bytes[h * 64 + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
      bytes[128 + h * 32 + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  const scales = [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 15, -128];
  scales.forEach((s, i) => new DataView(bytes.buffer).setInt8(192 + i, s));
  new DataView(bytes.buffer).setUint16(208, 0x3c00, true); // d = 1.0 in f16
  assert.equal(f16ToF32(Uint16Array.of(0x3c00))[0], 1);
  const y = decodeRows(bytes, 'Q6_K');
  for (let i = 0; i < 256; i++) assert.equal(y[i], scales[i >> 4] * (q(i) - 32), `value ${i}`);
});

test('storableType: Q6_K needs rows of whole 256-value super-blocks; llama-quantize falls back to Q8_0', () => {
  assert.equal(storableType('Q6_K', 2048), 'Q6_K');
  assert.equal(storableType('Q6_K', 896), 'Q8_0');
  assert.equal(storableType('Q4_0', 896), 'Q4_0');
});
