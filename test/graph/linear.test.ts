import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/graph/builder.js';
import { HEAD_PIECE_BYTES, NBITS_SETTINGS, type WeightDType } from '../../src/graph/buildOptions.js';
import { embeddingLookup, linearLayer, lmHead } from '../../src/graph/linear.js';
import { dequantize, quantizeRows } from '../../src/graph/quantize.js';
import { tensorRows } from '../../src/graph/rowSource.js';

function rnd(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const OUT = 48;
const IN = 64;
const W = Float32Array.from({ length: OUT * IN }, rnd(1)); // [out, in], as HF Linear
const BIAS = Float32Array.from({ length: OUT }, rnd(2));
const X = Float32Array.from({ length: 3 * IN }, rnd(3));

/** The weight each dtype really multiplies by: W itself, or W after quantization. */
function effectiveW(dtype: WeightDType): Float32Array {
  if (dtype === 'fp32') return W;
  return dequantize(quantizeRows(tensorRows({ dtype: 'float32', shape: [OUT, IN], data: W }), NBITS_SETTINGS[dtype]));
}

test('linearLayer: x·Wᵀ + b from [out, in] rows in every dtype (fp32 exact; q8/q4 = the dequantized weights)', async () => {
  for (const dtype of ['fp32', 'q8', 'q4'] as WeightDType[]) {
    const g = new GraphBuilder('linear');
    const x = g.input('x', 'float32', [3, IN]);
    const b = g.initializer('b', 'float32', [OUT], new Uint8Array(BIAS.buffer));
    let produced = 0;
    const rows = () => {
      produced++;
      return tensorRows({ dtype: 'float32', shape: [OUT, IN], data: W });
    };
    g.output(linearLayer(g, x, 'w', [OUT, IN], rows, { dtype }, b), 'y', 'float32', [3, OUT]);
    assert.equal(produced, 0, 'weights are read only when the graph is serialized');
    const session = await ort.InferenceSession.create(g.serialize({ inlineLimit: Infinity }));
    assert.equal(produced, 1);
    const y = (await session.run({ x: new ort.Tensor('float32', X, [3, IN]) })).y.data as Float32Array;
    await session.release();
    const w = effectiveW(dtype);
    let worst = 0;
    for (let m = 0; m < 3; m++) {
      for (let n = 0; n < OUT; n++) {
        let ref = BIAS[n];
        let mag = Math.abs(BIAS[n]);
        for (let k = 0; k < IN; k++) {
          ref += X[m * IN + k] * w[n * IN + k];
          mag += Math.abs(X[m * IN + k] * w[n * IN + k]);
        }
        worst = Math.max(worst, Math.abs(y[m * OUT + n] - ref) / mag);
      }
    }
    // fp32: summation order only. q8/q4: accuracy_level 4 rounds x to int8 per block (~1/254 of its largest value).
    assert.ok(worst < (dtype === 'fp32' ? 1e-6 : 1e-2), `${dtype}: relative error ${worst}`);
  }
});

test('embeddingLookup: rows of E in every dtype (q8/q4 exactly the dequantized table)', async () => {
  const V = 40;
  const d = 64;
  const E = Float32Array.from({ length: V * d }, rnd(4));
  const ids = [0, 39, 7, 7, 12, 3];
  for (const dtype of ['fp32', 'q8', 'q4'] as WeightDType[]) {
    const g = new GraphBuilder('embed');
    const x = g.input('ids', 'int64', [2, 3]);
    const rows = () => tensorRows({ dtype: 'float32', shape: [V, d], data: E });
    g.output(embeddingLookup(g, x, 'embed', [V, d], rows, { dtype }), 'y', 'float32', [2, 3, d]);
    const session = await ort.InferenceSession.create(g.serialize({ inlineLimit: Infinity }));
    const out = await session.run({ ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [2, 3]) });
    await session.release();
    assert.deepEqual(out.y.dims, [2, 3, d]);
    const table =
      dtype === 'fp32'
        ? E
        : dequantize(quantizeRows(tensorRows({ dtype: 'float32', shape: [V, d], data: E }), NBITS_SETTINGS[dtype]));
    const y = out.y.data as Float32Array;
    ids.forEach((id, i) => assert.deepEqual(y.subarray(i * d, (i + 1) * d), table.subarray(id * d, (id + 1) * d)));
  }
});

test('lmHead: an 8-bit head in row pieces of at most headPieceBytes, covering E once, in order', () => {
  const rows = () => tensorRows({ dtype: 'float32', shape: [OUT, IN], data: W });
  const bytes = OUT * IN * (1 + 4 / 32); // 8-bit codes + a float32 scale per block of 32
  const one = lmHead(new GraphBuilder('h'), 'lm_head.weight', [OUT, IN], rows, { dtype: 'q8', head: 'q8' });
  assert.ok(one.kind === 'nbits' && one.pieces.length === 1 && bytes <= HEAD_PIECE_BYTES);
  assert.equal(one.pieces[0].b, 'lm_head.weight.q', 'one piece keeps the plain names');
  const g = new GraphBuilder('h');
  const head = lmHead(g, 'lm_head.weight', [OUT, IN], rows, { dtype: 'q8', head: 'q8', headPieceBytes: bytes / 5 });
  assert.ok(head.kind === 'nbits');
  assert.deepEqual(
    head.pieces.map((p) => [p.b, p.N, p.K]),
    [0, 1, 2, 3, 4].map((i) => [`lm_head.weight.${i}.q`, i < 4 ? 10 : 8, IN]),
    '48 rows in 5 pieces: 10, 10, 10, 10, 8',
  );
  const fp32 = lmHead(new GraphBuilder('h'), 'lm_head.weight', [OUT, IN], rows, {
    dtype: 'q8',
    head: 'fp32',
    headPieceBytes: 1,
  });
  assert.equal(fp32.kind, 'fp32', 'the float32 head stays whole');
  assert.throws(
    () => lmHead(new GraphBuilder('h'), 'x', [OUT, IN], rows, { dtype: 'q8', head: 'q8', headPieceBytes: 0 }),
    /headPieceBytes 0/,
  );
});
