import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { GraphBuilder, MS_DOMAIN } from '../../src/graph/builder.js';
import { matMulNBits, nbitsInitializers } from '../../src/graph/nbitsOps.js';
import { dequantize, quantizeRows, type QuantBits, type QuantOptions } from '../../src/graph/quantize.js';
import { halfRows, stackRows, tensorRows, transposedRows } from '../../src/graph/rowSource.js';
import { f32ToBf16 } from '../../src/formats/halfFloat.js';
import { MapWeightStore } from '../../src/formats/weights.js';
import { storeRows } from '../../src/graph/rowSource.js';

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32 - 0.5;
  };
}

type Kind = 'random' | 'outliers' | 'zeros' | 'constant' | 'positive';

/** [N, K] weights: plain noise, or blocks that break naive quantizers. */
function matrix(N: number, K: number, kind: Kind, seed = 1): Float32Array {
  const r = rng(seed);
  const w = Float32Array.from({ length: N * K }, () => 0.1 * r());
  if (kind === 'outliers') for (let i = 0; i < w.length; i += 37) w[i] = (i % 2 ? 1 : -1) * 8 * (1 + r()); // one huge value per block or so
  if (kind === 'zeros') for (let n = 0; n < N; n += 3) w.fill(0, n * K, (n + 1) * K); // whole zero rows (scale 0)
  if (kind === 'constant') w.fill(0.25);
  if (kind === 'positive') for (let i = 0; i < w.length; i++) w[i] = Math.abs(w[i]) + 0.05;
  return w;
}

async function runNBits(
  w: Float32Array,
  N: number,
  K: number,
  a: Float32Array,
  M: number,
  opts: QuantOptions,
  accuracyLevel: 0 | 1 | 4,
  bias?: Float32Array,
): Promise<Float32Array> {
  const g = new GraphBuilder('nbits');
  const x = g.input('x', 'float32', ['M', K]);
  const src = tensorRows({ dtype: 'float32', shape: [N, K], data: w });
  const init = nbitsInitializers(g, 'w', [N, K], () => src, opts);
  const b = bias ? g.initializer('bias', 'float32', [N], new Uint8Array(bias.buffer)) : undefined;
  g.output(matMulNBits(g, x, init, { ...opts, accuracyLevel }, b), 'y', 'float32', ['M', N]);
  const session = await ort.InferenceSession.create(g.serialize({ inlineLimit: Infinity }), { intraOpNumThreads: 1 });
  const out = await session.run({ x: new ort.Tensor('float32', a, [M, K]) });
  await session.release();
  return out.y.data as Float32Array;
}

/** max over outputs of |y − a·deqᵀ − bias| / Σ|a·deq| (float64 reference), so the bound does not depend on scale. */
function relErr(
  y: Float32Array,
  a: Float32Array,
  deq: Float32Array,
  M: number,
  N: number,
  K: number,
  bias?: Float32Array,
) {
  let worst = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let ref = bias ? bias[n] : 0;
      let mag = bias ? Math.abs(bias[n]) : 0;
      for (let k = 0; k < K; k++) {
        ref += a[m * K + k] * deq[n * K + k];
        mag += Math.abs(a[m * K + k] * deq[n * K + k]);
      }
      worst = Math.max(worst, Math.abs(y[m * N + n] - ref) / Math.max(mag, 1e-30));
    }
  }
  return worst;
}

const SCHEMES: QuantOptions[] = [
  { bits: 4, blockSize: 32, symmetric: true },
  { bits: 4, blockSize: 32, symmetric: false },
  { bits: 8, blockSize: 32, symmetric: true },
  { bits: 8, blockSize: 32, symmetric: false },
  { bits: 4, blockSize: 16, symmetric: false },
  { bits: 4, blockSize: 128, symmetric: true },
  { bits: 8, blockSize: 64, symmetric: false },
];
const name = (o: QuantOptions) => `${o.bits}-bit b${o.blockSize} ${o.symmetric ? 'sym' : 'asym'}`;

test('MatMulNBits on our blobs equals a float64 matmul over the dequantized weights (proves the layout)', async () => {
  const M = 3;
  const N = 24;
  for (const opts of SCHEMES) {
    for (const K of [64, 80, 100, 17]) {
      for (const kind of ['random', 'outliers', 'zeros'] as Kind[]) {
        const w = matrix(N, K, kind, K);
        const a = Float32Array.from({ length: M * K }, rng(K + 7));
        const deq = dequantize(quantizeRows(tensorRows({ dtype: 'float32', shape: [N, K], data: w }), opts));
        // accuracy_level 0: the kernel dequantizes B and runs a float32 GEMM, so only summation order differs.
        const y = await runNBits(w, N, K, a, M, opts, 0);
        const err = relErr(y, a, deq, M, N, K);
        assert.ok(err < 1e-5, `${name(opts)} K=${K} ${kind}: relative error ${err} vs the dequantized reference`);
      }
    }
  }
});

test('MatMulNBits accuracy_level 4 (int8 activations) stays near the dequantized reference; bias is added', async () => {
  const M = 5;
  const N = 16;
  const K = 96;
  const bias = Float32Array.from({ length: N }, rng(3));
  for (const opts of SCHEMES.slice(0, 4)) {
    const w = matrix(N, K, 'random', 11);
    const a = Float32Array.from({ length: M * K }, rng(12));
    const deq = dequantize(quantizeRows(tensorRows({ dtype: 'float32', shape: [N, K], data: w }), opts));
    const y = await runNBits(w, N, K, a, M, opts, 4, bias);
    const err = relErr(y, a, deq, M, N, K, bias);
    // A is rounded to int8 per block: ~1/254 of a block's largest |a| per element, far below 1% of Σ|a·w|.
    assert.ok(err < 1e-2, `${name(opts)}: relative error ${err}`);
    const exact = await runNBits(w, N, K, a, M, opts, 0, bias);
    assert.ok(relErr(exact, a, deq, M, N, K, bias) < 1e-5, `${name(opts)}: bias input misplaced`);
  }
});

test('quantization error vs the original weights is within half a step (one step at the clamped extreme)', () => {
  for (const opts of SCHEMES) {
    for (const kind of ['random', 'outliers', 'zeros', 'constant', 'positive'] as Kind[]) {
      const N = 9;
      const K = 70; // two full blocks of 32 and a short one
      const w = matrix(N, K, kind, 5);
      const q = quantizeRows(tensorRows({ dtype: 'float32', shape: [N, K], data: w }), opts);
      const deq = dequantize(q);
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) {
          const step = Math.abs(q.scales[n * q.kBlocks + Math.floor(k / opts.blockSize)]);
          const err = Math.abs(w[n * K + k] - deq[n * K + k]);
          const bound = (opts.symmetric ? 1 : 0.5) * step * (1 + 1e-6) + 1e-12;
          assert.ok(err <= bound, `${name(opts)} ${kind} [${n},${k}]: |Δ| ${err} > ${bound}`);
        }
      }
      if (kind === 'zeros') for (let k = 0; k < K; k++) assert.ok(deq[k] === 0, 'a zero row stays exactly zero');
      if (kind === 'constant' && opts.symmetric) assert.equal(deq[0], 0.25, 'the largest value is exact (symmetric)');
    }
  }
});

test('the 4-bit layout: low nibble first along K, zero points packed per row, short last block padded', () => {
  // Row 0 = 0..15 ramp; asymmetric 4-bit over [0, 15] has scale 1, zero point 0, so codes are the values.
  const K = 20;
  const w = new Float32Array(K);
  for (let k = 0; k < 16; k++) w[k] = k;
  for (let k = 16; k < K; k++) w[k] = k - 31; // second block: −15..−12 → scale 1, zero point 15
  const q = quantizeRows(tensorRows({ dtype: 'float32', shape: [1, K], data: w }), {
    bits: 4,
    blockSize: 16,
    symmetric: false,
  });
  assert.deepEqual([q.N, q.kBlocks, q.blobSize], [1, 2, 8]);
  assert.deepEqual(Array.from(q.b.subarray(0, 8)), [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
  assert.equal(q.scales[0], 1);
  // Block 1 holds [−1, −2, −3, −4] and 12 padding codes; its zero point is in the high nibble of byte 0.
  const zp1 = q.zeroPoints![0] >> 4;
  assert.equal(q.zeroPoints![0] & 15, 0);
  assert.ok(zp1 > 0);
  for (let j = 2; j < 8; j++) assert.equal(q.b[8 + j], zp1 | (zp1 << 4), 'padding codes equal the zero point');
  assert.deepEqual(
    Array.from(dequantize(q)),
    Array.from(w).map((v, k) => (k < 16 ? v : Math.fround(v))),
  );
});

test('row sources: bf16 bands, a store read in bands, stacked and transposed rows quantize like the whole', () => {
  const N = 40;
  const K = 64;
  const opts: QuantOptions = { bits: 4, blockSize: 32, symmetric: true };
  const w = matrix(N, K, 'random', 21);
  const bits = f32ToBf16(w);
  const widened = new Float32Array(N * K);
  new Uint32Array(widened.buffer).set(Array.from(bits, (b) => b << 16));
  const viaHalf = quantizeRows(halfRows(bits, [N, K], 'bf16'), opts);
  const viaF32 = quantizeRows(tensorRows({ dtype: 'float32', shape: [N, K], data: widened }), opts);
  assert.deepEqual(viaHalf.b, viaF32.b);
  assert.deepEqual(viaHalf.scales, viaF32.scales);

  const t = { dtype: 'float32' as const, shape: [N, K], data: w };
  const whole = quantizeRows(tensorRows(t), opts);
  const store = new MapWeightStore(new Map([['w', t]]));
  assert.deepEqual(quantizeRows(storeRows(store, 'w'), opts).b, whole.b);
  const top = { dtype: 'float32' as const, shape: [15, K], data: w.subarray(0, 15 * K) };
  const bottom = { dtype: 'float32' as const, shape: [N - 15, K], data: w.subarray(15 * K) };
  const stacked = quantizeRows(stackRows([tensorRows(top), tensorRows(bottom)]), opts);
  assert.deepEqual(stacked.b, whole.b);

  const wt = new Float32Array(K * N); // [K, N]: a Conv1D-style [in, out] weight
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = w[n * K + k];
  assert.deepEqual(quantizeRows(transposedRows({ dtype: 'float32', shape: [K, N], data: wt }), opts).b, whole.b);
});

test('GatherBlockQuantized (onnxruntime-node CPU) reads the same layout: uint8 data [V, d·bits/8], 4 and 8 bits', async () => {
  const V = 30;
  const d = 64;
  for (const bits of [4, 8] as QuantBits[]) {
    for (const symmetric of [true, false]) {
      const opts = { bits, blockSize: 32, symmetric };
      const w = matrix(V, d, 'outliers', bits);
      const q = quantizeRows(tensorRows({ dtype: 'float32', shape: [V, d], data: w }), opts);
      const deq = dequantize(q);
      const g = new GraphBuilder('gather');
      const ids = g.input('ids', 'int64', ['B', 'T']);
      const inputs = [
        g.initializer('data', 'uint8', [V, (d * bits) / 8], q.b),
        ids,
        g.initializer('scales', 'float32', [V, q.kBlocks], new Uint8Array(q.scales.buffer)),
      ];
      if (q.zeroPoints) inputs.push(g.initializer('zp', 'uint8', [V, q.zeroPoints.length / V], q.zeroPoints));
      const y = g.op(
        'GatherBlockQuantized',
        inputs,
        { gather_axis: 0, quantize_axis: 1, block_size: 32, bits },
        {
          domain: MS_DOMAIN,
        },
      );
      g.output(y, 'y', 'float32', ['B', 'T', d]);
      const session = await ort.InferenceSession.create(g.serialize({ inlineLimit: Infinity }));
      const picks = [3, 0, 29, 3, 17, 8];
      const out = await session.run({ ids: new ort.Tensor('int64', BigInt64Array.from(picks.map(BigInt)), [2, 3]) });
      await session.release();
      const got = out.y.data as Float32Array;
      picks.forEach((id, i) =>
        assert.deepEqual(
          got.subarray(i * d, (i + 1) * d),
          deq.subarray(id * d, (id + 1) * d),
          `${name(opts)} id ${id}`,
        ),
      );
    }
  }
});
