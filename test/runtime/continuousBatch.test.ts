/** Rows joining and leaving a running batch compute exactly what each row computes alone. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyCheckpoint } from '../helpers/tinyModels.js';
import { parseDecoderConfig } from '../../src/models/registry.js';
import { createDecoderSession } from '../../src/runtime/session.js';
import { OrtDecoder } from '../../src/runtime/ortDecoder.js';
import { ContinuousBatch, type RowHandle } from '../../src/runtime/continuousBatch.js';

async function decoder(kind: 'llama' | 'gpt2') {
  const ck = tinyCheckpoint(kind, { seed: 3 });
  const cfg = parseDecoderConfig(ck.config, kind);
  return new OrtDecoder(await createDecoderSession(cfg, ck.weights, { cacheDir: false, threads: 1 }), cfg);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const kind of ['llama', 'gpt2'] as const) {
  test(`${kind}: join/leave continuous batch equals full recompute per row`, async () => {
    const dec = await decoder(kind);
    const V = dec.vocabSize;
    const batch = new ContinuousBatch(dec, { maxRows: 3, capacity: 24 });
    const seqs = new Map<RowHandle, number[]>();
    const check = async (row: RowHandle, logits: Float32Array) => {
      const ids = seqs.get(row)!;
      const full = await dec.forward([ids]);
      const want = (full.logits.data as Float32Array).subarray((ids.length - 1) * V, ids.length * V);
      assert.ok(maxDiff(logits, want) < 1e-4, `row of ${ids.length} tokens differs by ${maxDiff(logits, want)}`);
    };
    // two rows join, step, a third joins, the first leaves, step more
    let { rows, logits } = await batch.add([
      [1, 2, 3],
      [4, 5, 6, 7, 8],
    ]);
    rows.forEach((r, i) =>
      seqs.set(
        r,
        [
          [1, 2, 3],
          [4, 5, 6, 7, 8],
        ][i],
      ),
    );
    for (const [i, r] of rows.entries()) await check(r, logits[i]);
    const step = async (tok: (r: RowHandle) => number) => {
      const map = new Map<RowHandle, number>();
      for (const r of seqs.keys()) if (r.slot >= 0) map.set(r, tok(r));
      for (const [r, t] of map) seqs.get(r)!.push(t);
      const out = await batch.step(map);
      for (const [r, l] of out) await check(r, l);
    };
    await step((r) => (r.length * 3) % V);
    const third = await batch.add([[9, 10]]);
    seqs.set(third.rows[0], [9, 10]);
    await check(third.rows[0], third.logits[0]);
    await step((r) => (r.length * 5 + 1) % V);
    batch.remove(rows[0]);
    seqs.delete(rows[0]);
    assert.equal(batch.size, 2);
    await step((r) => (r.length + 7) % V);
    await step((r) => (r.length * 2) % V);
  });

  test(`${kind}: the KV buffers grow past their initial length and shrink when the batch empties, keeping every row exact`, async () => {
    const dec = await decoder(kind);
    const V = dec.vocabSize;
    const batch = new ContinuousBatch(dec, { maxRows: 2, capacity: 120 });
    const short = [1, 2, 3];
    const long = Array.from({ length: 90 }, (_, i) => (i * 7 + 3) % V); // beyond the first 64-token buffers
    const { rows } = await batch.add([short]);
    const added = await batch.add([long]);
    const seqs = [short, long].map((s) => [...s]);
    const all = [rows[0], added.rows[0]];
    for (let s = 0; s < 3; s++) {
      const out = await batch.step(new Map(all.map((r, i) => [r, (s * 11 + i) % V])));
      all.forEach((r, i) => seqs[i].push((s * 11 + i) % V));
      for (const [i, r] of all.entries()) {
        const full = await dec.forward([seqs[i]]);
        const want = (full.logits.data as Float32Array).subarray((seqs[i].length - 1) * V, seqs[i].length * V);
        assert.ok(maxDiff(out.get(r)!, want) < 1e-4, `row ${i} step ${s}`);
      }
    }
    all.forEach((r) => batch.remove(r));
    assert.equal(batch.size, 0);
    const again = await batch.add([short]);
    const full = await dec.forward([short]);
    assert.ok(maxDiff(again.logits[0], (full.logits.data as Float32Array).subarray(2 * V, 3 * V)) < 1e-4);
  });
}

test('continuous batch: per-row steer scales', async () => {
  const dec = await decoder('llama');
  const d = dec.hiddenSize;
  const K = 2;
  const p1 = {
    dtype: 'float32' as const,
    shape: [d, K],
    data: Float32Array.from({ length: d * K }, (_, i) => Math.sin(i)),
  };
  const p2t = {
    dtype: 'float32' as const,
    shape: [K, d],
    data: Float32Array.from({ length: d * K }, (_, i) => Math.cos(i)),
  };
  const batch = new ContinuousBatch(dec, { maxRows: 2, capacity: 16, steer: { p1, p2t } });
  const a = Float32Array.from([0.5, -0.2]);
  const { logits } = await batch.add(
    [
      [1, 2, 3],
      [1, 2, 3],
    ],
    [a, undefined],
  );
  const alone = await dec.forward([[1, 2, 3]], {
    steer: { p1, p2t, scale: { dtype: 'float32', shape: [1, K], data: a } },
  });
  const V = dec.vocabSize;
  assert.ok(maxDiff(logits[0], (alone.logits.data as Float32Array).subarray(2 * V, 3 * V)) < 1e-4);
  const plain = await dec.forward([[1, 2, 3]]);
  assert.ok(maxDiff(logits[1], (plain.logits.data as Float32Array).subarray(2 * V, 3 * V)) < 1e-4);
  assert.ok(maxDiff(logits[0], logits[1]) > 1e-3, 'the steer changed nothing');
});
