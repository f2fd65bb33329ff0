import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/graph/builder.js';
import { NBITS_SETTINGS } from '../../src/graph/buildOptions.js';
import { dequantize, quantizeRows } from '../../src/graph/quantize.js';
import { quantizeMatMuls } from '../../src/graph/quantizeGraph.js';
import { transposedRows } from '../../src/graph/rowSource.js';

const K = 64;
const N = 32;

function weight(seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: K * N }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

test('quantizeMatMuls rewrites MatMuls over float32 [K, N] initializers, keeping the named ones and shared ones', async () => {
  const w1 = weight(1); // [K, N]: MatMul's layout
  const w2 = weight(2);
  const w3 = weight(3);
  const g = new GraphBuilder('q');
  const x = g.input('x', 'float32', [2, K]);
  const a = g.weight('w1', { dtype: 'float32', shape: [K, N], data: w1 });
  const b = g.weight('head', { dtype: 'float32', shape: [K, N], data: w2 });
  const c = g.weight('shared', { dtype: 'float32', shape: [K, N], data: w3 });
  g.output(g.op('MatMul', [x, a]), 'y1', 'float32', [2, N]);
  g.output(g.op('MatMul', [x, b]), 'y2', 'float32', [2, N]);
  g.output(g.op('MatMul', [x, c]), 'y3', 'float32', [2, N]);
  g.output(g.op('Identity', [c]), 'c', 'float32', [K, N]); // a second reader: left alone
  const q = { ...NBITS_SETTINGS.q4, accuracyLevel: 0 as const }; // float compute: compare tightly
  assert.deepEqual(quantizeMatMuls(g, q, new Set(['head'])), ['w1']);
  assert.equal(g.initializerInfo('w1'), undefined);
  assert.deepEqual(g.initializerInfo('w1.nbits.q')?.dims, [N, K / 32, 16]);

  const session = await ort.InferenceSession.create(g.serialize({ inlineLimit: Infinity }));
  const xs = Float32Array.from({ length: 2 * K }, (_, i) => Math.sin(i));
  const out = await session.run({ x: new ort.Tensor('float32', xs, [2, K]) });
  await session.release();
  const deq = dequantize(quantizeRows(transposedRows({ dtype: 'float32', shape: [K, N], data: w1 }), q)); // [N, K]
  const matmul = (rowOf: (n: number, k: number) => number) =>
    Array.from({ length: 2 * N }, (_, i) => {
      const [m, n] = [Math.floor(i / N), i % N];
      let s = 0;
      for (let k = 0; k < K; k++) s += xs[m * K + k] * rowOf(n, k);
      return s;
    });
  const close = (got: Float32Array, want: number[], what: string) =>
    want.forEach((v, i) => assert.ok(Math.abs(got[i] - v) < 1e-4, `${what}[${i}]: ${got[i]} vs ${v}`));
  close(
    out.y1.data as Float32Array,
    matmul((n, k) => deq[n * K + k]),
    'quantized y1',
  );
  close(
    out.y2.data as Float32Array,
    matmul((n, k) => w2[k * N + n]),
    'kept y2',
  );
  close(
    out.y3.data as Float32Array,
    matmul((n, k) => w3[k * N + n]),
    'shared y3',
  );
  // The quantized product really differs from the float32 one (so the check above can fail).
  const fp = matmul((n, k) => w1[k * N + n]);
  assert.ok(fp.some((v, i) => Math.abs((out.y1.data as Float32Array)[i] - v) > 1e-3));
});
