import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/graph/builder.js';

const f32bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

test('lazy initializers are produced one group at a time, each after the previous is written, in order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-builder-'));
  try {
    const ext = join(dir, 'weights.bin');
    const d = 64;
    const g = new GraphBuilder('lazy');
    const x = g.input('x', 'float32', ['n', d]);
    const calls: { name: string; fileBytes: number }[] = [];
    const fileBytes = () => {
      try {
        return statSync(ext).size;
      } catch {
        return 0;
      }
    };
    // Three [d, d] weights (16 KiB each, so external): W_i = (i + 1)·I, and one group of two parts (W and bias).
    let y = x;
    for (let i = 0; i < 3; i++) {
      const w = g.lazyInitializer(`w${i}`, 'float32', [d, d], () => {
        calls.push({ name: `w${i}`, fileBytes: fileBytes() });
        const m = new Float32Array(d * d);
        for (let j = 0; j < d; j++) m[j * d + j] = i + 1;
        return f32bytes(m);
      });
      y = g.op('MatMul', [y, w]);
    }
    const [w3, b3] = g.lazyInitializers(
      [
        { name: 'w3', dtype: 'float32', dims: [d, d] },
        { name: 'b3', dtype: 'float32', dims: [d] },
      ],
      () => {
        calls.push({ name: 'w3+b3', fileBytes: fileBytes() });
        const m = new Float32Array(d * d);
        for (let j = 0; j < d; j++) m[j * d + j] = 0.5;
        return [f32bytes(m), f32bytes(new Float32Array(d).fill(1))];
      },
    );
    y = g.op('Add', [g.op('MatMul', [y, w3]), b3]);
    g.output(y, 'y', 'float32', ['n', d]);
    const progress: [number, number][] = [];
    const onProgress = (done: number, total: number) => {
      progress.push([done, total]);
      calls.push({ name: `progress ${done}`, fileBytes: fileBytes() });
    };
    writeFileSync(join(dir, 'model.onnx'), g.serialize({ externalPath: ext, externalName: 'weights.bin', onProgress }));

    // Progress: the total from the dims before anything is made, then the bytes made after each initializer.
    const total = 4 * d * d * 4 + d * 4;
    assert.deepEqual(progress, [
      [0, total],
      [16384, total],
      [2 * 16384, total],
      [3 * 16384, total],
      [4 * 16384, total],
      [total, total],
    ]);
    assert.deepEqual(
      calls.filter((c) => !c.name.startsWith('progress')).map((c) => c.name),
      ['w0', 'w1', 'w2', 'w3+b3'],
      'each group produced once, in order',
    );
    assert.equal(calls[0].name, 'progress 0', 'the start is told before the first weight is made');
    assert.equal(calls[2].name, 'progress 16384', 'each weight is told once it is made');
    calls.splice(0, calls.length, ...calls.filter((c) => !c.name.startsWith('progress')));
    // Weight i is produced only after weight i−1 reached the file (each is 4 KiB-aligned, 16 KiB long).
    calls.forEach((c, i) =>
      assert.ok(c.fileBytes >= i * 16384, `${c.name} produced before its predecessors were written`),
    );
    assert.equal(statSync(ext).size, 4 * 16384, 'four weights written back to back (the bias is inline)');

    const session = await ort.InferenceSession.create(join(dir, 'model.onnx'));
    const input = Float32Array.from({ length: 2 * d }, (_, i) => i % 7);
    const out = (await session.run({ x: new ort.Tensor('float32', input, [2, d]) })).y.data as Float32Array;
    await session.release();
    input.forEach((v, i) => assert.equal(out[i], v * 6 * 0.5 + 1)); // x · 1 · 2 · 3 · 0.5 + 1
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lazy initializer of the wrong size is an internal error naming it', () => {
  const g = new GraphBuilder('bad');
  const x = g.input('x', 'float32', [2]);
  const w = g.lazyInitializer('w', 'float32', [2], () => new Uint8Array(4));
  g.output(g.op('Add', [x, w]), 'y', 'float32', [2]);
  assert.throws(() => g.serialize(), /lazy initializer w made 4 bytes, its dims need 8/);
});

test('eager and lazy initializers serialize to the same model bytes', () => {
  const data = Float32Array.from({ length: 300 }, (_, i) => i / 7);
  const build = (lazy: boolean) => {
    const g = new GraphBuilder('same');
    const x = g.input('x', 'float32', [300]);
    const w = lazy
      ? g.lazyInitializer('w', 'float32', [300], () => f32bytes(data))
      : g.initializer('w', 'float32', [300], f32bytes(data));
    g.output(g.op('Mul', [x, w]), 'y', 'float32', [300]);
    return g;
  };
  assert.deepEqual(build(true).serialize(), build(false).serialize());
  assert.equal(build(true).fingerprint(), build(false).fingerprint());
});
