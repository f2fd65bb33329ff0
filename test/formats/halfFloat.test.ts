import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/formats/halfFloat.js';

const f16 = (...bits: number[]) => Array.from(f16ToF32(Uint16Array.from(bits)));
const bf16 = (...bits: number[]) => Array.from(bf16ToF32(Uint16Array.from(bits)));
const toF16 = (...v: number[]) => Array.from(f32ToF16(Float32Array.from(v)));
const toBf16 = (...v: number[]) => Array.from(f32ToBf16(Float32Array.from(v)));

test('fp16 → f32 known values: normals, ±0, ±inf, subnormals', () => {
  assert.deepEqual(f16(0x3c00, 0xc000, 0x7bff, 0x3555, 0x0400), [1, -2, 65504, 0.333251953125, 2 ** -14]);
  assert.deepEqual(f16(0x0001, 0x03ff, 0x8001), [2 ** -24, 1023 * 2 ** -24, -(2 ** -24)]);
  assert.deepEqual(f16(0x7c00, 0xfc00), [Infinity, -Infinity]);
  assert.ok(Object.is(f16(0x8000)[0], -0));
  assert.ok(Number.isNaN(f16(0x7e00)[0]) && Number.isNaN(f16(0xfc01)[0]));
});

test('bf16 → f32 known values incl. inf, nan, subnormals', () => {
  assert.deepEqual(bf16(0x3f80, 0xc000, 0x4049, 0x7f80, 0xff80), [1, -2, 3.140625, Infinity, -Infinity]);
  assert.deepEqual(bf16(0x0001), [2 ** -133]);
  assert.ok(Number.isNaN(bf16(0x7fc0)[0]));
});

test('every fp16 bit pattern survives f16 → f32 → f16', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ToF16(f16ToF32(all));
  for (let i = 0; i < 65536; i++) {
    if (back[i] !== i) assert.fail(`0x${i.toString(16)} came back as 0x${back[i].toString(16)}`);
  }
});

test('f32 → fp16 rounds to nearest even, overflows to inf, underflows to 0', () => {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0); 1 + 3·2^-11 ties up to 1 + 2^-9.
  assert.deepEqual(toF16(1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20), [0x3c00, 0x3c02, 0x3c01]);
  assert.deepEqual(toF16(65520, 1e6, -1e6, Infinity), [0x7c00, 0x7c00, 0xfc00, 0x7c00]);
  assert.deepEqual(toF16(65519), [0x7bff]);
  assert.deepEqual(toF16(2 ** -25, 2 ** -25 * 1.0001, 2 ** -26, -(2 ** -30)), [0x0000, 0x0001, 0x0000, 0x8000]);
  assert.deepEqual(toF16(3 * 2 ** -25), [0x0002]); // halfway between subnormals 1 and 2: to even
  assert.equal(toF16(NaN)[0] & 0x7e00, 0x7e00);
});

test('f32 → bf16 rounds to nearest even and keeps NaN a NaN', () => {
  assert.deepEqual(toBf16(1, 3.140625, -2, Infinity), [0x3f80, 0x4049, 0xc000, 0x7f80]);
  assert.deepEqual(toBf16(1 + 2 ** -8, 1 + 3 * 2 ** -8), [0x3f80, 0x3f82]);
  assert.deepEqual(toBf16(3.4e38), [0x7f80]); // beyond bf16's largest finite value
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(Float32Array.of(NaN)))[0]));
});
