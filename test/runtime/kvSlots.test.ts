/**
 * KV slots (src/runtime/kvCache.ts and each decoder's run over them): rows prefilled into slots, extended, moved
 * into a leaving row's slot, and buffers grown past their first length and shrunk, compute exactly what each
 * row computes alone; each slot's steer scales are its own. For lmsteer's graphs and an ONNX export.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyCheckpoint } from '../helpers/tinyModels.js';
import { writeTinyExport } from '../helpers/optimumExport.js';
import { parseDecoderConfig } from '../../src/models/registry.js';
import { createDecoderSession } from '../../src/runtime/session.js';
import { OrtDecoder } from '../../src/runtime/ortDecoder.js';
import { OnnxExportDecoder } from '../../src/runtime/onnxExportDecoder.js';
import { readOnnxExport } from '../../src/formats/onnxExport.js';
import type { Decoder } from '../../src/runtime/decoder.js';
import { tensor } from '../../src/util/tensor.js';

const root = mkdtempSync(join(tmpdir(), 'lmsteer-slots-'));
after(() => rmSync(root, { recursive: true, force: true }));

async function ortDecoder(kind: 'llama' | 'gpt2'): Promise<Decoder> {
  const ck = tinyCheckpoint(kind, { seed: 3 });
  const cfg = parseDecoderConfig(ck.config, kind);
  return new OrtDecoder(await createDecoderSession(cfg, ck.weights, { cacheDir: false, threads: 1 }), cfg);
}

const DECODERS: [string, () => Promise<Decoder>][] = [
  ['llama', () => ortDecoder('llama')],
  ['gpt2', () => ortDecoder('gpt2')],
  [
    'gpt2 export',
    async () => {
      const ex = writeTinyExport(join(root, 'gpt2'), 'gpt2', { merged: true });
      return OnnxExportDecoder.open(readOnnxExport(ex.modelPath), { maxPositions: ex.cfg.maxPositions, threads: 1 });
    },
  ],
];

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function lastLogits(dec: Decoder, ids: number[]): Promise<Float32Array> {
  return (await dec.forward([ids], { hiddenOnly: true })).logits.data as Float32Array;
}

for (const [name, open] of DECODERS) {
  test(`${name}: rows prefilled, extended and moved into a leaving row's slot equal each row alone`, async () => {
    const dec = await open();
    const V = dec.vocabSize;
    const slots = dec.openSlots({ rows: 3 });
    const seqs = [
      [1, 2, 3],
      [4, 5, 6, 7, 8],
    ];
    const first = await slots.prefill(seqs, [[0], [1]], true);
    for (const [i, l] of first.entries()) assert.ok(maxDiff(l, await lastLogits(dec, seqs[i]!)) < 1e-4);
    const step = async (n: number, tok: (i: number) => number) => {
      const tokens = seqs.slice(0, n).map((_, i) => tok(i));
      const lengths = seqs.slice(0, n).map((s) => s.length);
      tokens.forEach((t, i) => seqs[i]!.push(t));
      const out = await slots.extend(0, tokens, lengths);
      for (let i = 0; i < n; i++) {
        const d = maxDiff(out.subarray(i * V, (i + 1) * V), await lastLogits(dec, seqs[i]!));
        assert.ok(d < 1e-4, `row ${i} of ${seqs[i]!.length} tokens differs by ${d}`);
      }
    };
    await step(2, (i) => (i * 3 + 1) % V);
    // a third row joins in slot 2
    seqs.push([9, 10]);
    const third = await slots.prefill([[9, 10]], [[2]], true);
    assert.ok(maxDiff(third[0]!, await lastLogits(dec, [9, 10])) < 1e-4);
    await step(3, (i) => (i * 5 + 2) % V);
    // the first row leaves: the last row moves into its slot
    slots.move(2, 0, seqs[2]!.length);
    seqs[0] = seqs.pop()!;
    await step(2, (i) => (i + 7) % V);
    await step(2, (i) => (i * 2) % V);
    slots.dispose();
  });

  test(`${name}: buffers grow past their first length and shrink when empty; every row stays exact`, async () => {
    const dec = await open();
    const V = dec.vocabSize;
    const slots = dec.openSlots({ rows: 2 });
    const short = [1, 2, 3];
    const long = Array.from({ length: 90 }, (_, i) => (i * 7 + 3) % V); // beyond the first 64-position buffers
    await slots.prefill([short], [[0]], true);
    await slots.prefill([long], [[1]], true);
    assert.ok(slots.capacity >= 90);
    const seqs = [short, long].map((s) => [...s]);
    for (let s = 0; s < 3; s++) {
      const tokens = [(s * 11) % V, (s * 11 + 1) % V];
      const lengths = seqs.map((q) => q.length);
      tokens.forEach((t, i) => seqs[i]!.push(t));
      const out = await slots.extend(0, tokens, lengths);
      for (let i = 0; i < 2; i++)
        assert.ok(maxDiff(out.subarray(i * V, (i + 1) * V), await lastLogits(dec, seqs[i]!)) < 1e-4);
    }
    slots.shrink();
    assert.ok(slots.capacity <= 64);
    const again = await slots.prefill([short], [[0]], true);
    assert.ok(maxDiff(again[0]!, await lastLogits(dec, short)) < 1e-4);
    slots.dispose();
  });

  test(`${name}: each slot's steer scales are its own`, async () => {
    const dec = await open();
    const d = dec.hiddenSize;
    const K = 2;
    const p1 = tensor(
      [d, K],
      Float32Array.from({ length: d * K }, (_, i) => Math.sin(i)),
    );
    const p2t = tensor(
      [K, d],
      Float32Array.from({ length: d * K }, (_, i) => Math.cos(i)),
    );
    const slots = dec.openSlots({ rows: 2, steer: { p1, p2t } });
    const a = Float32Array.from([0.5, -0.2]);
    slots.setScale(0, a);
    const logits = await slots.prefill(
      [
        [1, 2, 3],
        [1, 2, 3],
      ],
      [[0], [1]],
      true,
    );
    const alone = await dec.forward([[1, 2, 3]], { steer: { p1, p2t, scale: tensor([1, K], a) }, hiddenOnly: true });
    assert.ok(maxDiff(logits[0]!, alone.logits.data as Float32Array) < 1e-4);
    assert.ok(maxDiff(logits[1]!, await lastLogits(dec, [1, 2, 3])) < 1e-4);
    assert.ok(maxDiff(logits[0]!, logits[1]!) > 1e-3, 'the steer changed nothing');
    // a moved row takes its scales along
    slots.move(0, 1, 3);
    const moved = await slots.extend(1, [4], [3]);
    const want = await dec.forward([[1, 2, 3, 4]], { steer: { p1, p2t, scale: tensor([1, K], a) }, hiddenOnly: true });
    assert.ok(maxDiff(moved, want.logits.data as Float32Array) < 1e-4);
    slots.dispose();
  });
}
