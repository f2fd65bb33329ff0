/** The reference forwards' ops on hand-checkable inputs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  activate,
  causalAttention,
  erf,
  layerNorm,
  linear,
  mat,
  rmsNorm,
  type Mat,
} from '../../src/models/referenceOps.js';
import { tensor } from '../../src/util/tensor.js';

function m(rows: number, cols: number, values: number[]): Mat {
  const x = mat(rows, cols);
  x.data.set(values);
  return x;
}
const t = (shape: number[], v: number[]) => tensor(shape, Float32Array.from(v));

test('erf and the GELUs match known values', () => {
  // erf from tables (Abramowitz & Stegun / mpmath)
  for (const [x, want] of [
    [0, 0],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
    [-1, -0.8427007929497149],
    [7, 1],
  ]) {
    assert.ok(Math.abs(erf(x) - want) < 1e-15, `erf(${x}) = ${erf(x)}`);
  }
  const x = m(1, 3, [1, -2, 0.5]);
  const gelu = activate('gelu', x).data;
  assert.ok(Math.abs(gelu[0] - 0.8413447460685429) < 1e-15);
  assert.ok(Math.abs(gelu[1] - -0.04550026389635842) < 1e-15);
  const geluNew = activate('gelu_new', x).data;
  assert.ok(Math.abs(geluNew[0] - 0.8411919906082768) < 1e-15);
  assert.ok(Math.abs(activate('silu', x).data[0] - 1 / (1 + Math.exp(-1))) < 1e-15);
  assert.deepEqual([...activate('relu', x).data], [1, 0, 0.5]);
});

test('linear: nn.Linear [out, in] and Conv1D [in, out] layouts', () => {
  const x = m(1, 2, [1, 10]);
  const w = t([2, 2], [1, 2, 3, 4]);
  assert.deepEqual([...linear(x, w).data], [21, 43]); // rows are outputs
  assert.deepEqual([...linear(x, w, t([2], [0.5, -1]), 'in_out').data], [31.5, 41]); // columns are outputs
});

test('layerNorm and rmsNorm', () => {
  const ln = layerNorm(m(1, 2, [3, 1]), t([2], [2, 1]), t([2], [0, 0.5]), 0).data;
  assert.deepEqual([...ln], [2, -0.5]); // mean 2, var 1
  const rms = rmsNorm(m(1, 2, [3, 4]), t([2], [1, 2]), 0).data; // rms √12.5
  assert.ok(Math.abs(rms[0] - 3 / Math.sqrt(12.5)) < 1e-15 && Math.abs(rms[1] - 8 / Math.sqrt(12.5)) < 1e-15);
});

test('causal attention: softmax(q·k/√hd) over keys ≤ t, GQA head h reads kv head ⌊h/group⌋', () => {
  // hd 1, 2 query heads sharing 1 kv head; scores q·k/1
  const q = m(2, 2, [0, 0, Math.log(3), 0]);
  const k = m(2, 1, [0, 1]);
  const v = m(2, 1, [10, 20]);
  const out = causalAttention(q, k, v, 2, 1, 1).data;
  assert.deepEqual([...out.subarray(0, 2)], [10, 10]); // t = 0 sees only key 0
  // t = 1, head 0: scores (0, ln 3) → weights (1/4, 3/4); head 1: uniform
  assert.ok(Math.abs(out[2] - (10 / 4 + (20 * 3) / 4)) < 1e-12);
  assert.ok(Math.abs(out[3] - 15) < 1e-12);
});
