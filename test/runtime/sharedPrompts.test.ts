/**
 * Repeated prompts (n samples of a prompt) are prefilled once and copied to every slot that shares them; each
 * row must still get what it gets alone: its own steered logits at the prompt's end, and the same logits at
 * every later step (slots level, lmsteer's graphs and an ONNX export); and the batch engine must give every
 * row the tokens it gets alone (engine level, through generate()).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyCheckpoint } from '../helpers/tinyModels.js';
import { parseDecoderConfig } from '../../src/models/registry.js';
import { createDecoderSession } from '../../src/runtime/session.js';
import { OrtDecoder } from '../../src/runtime/ortDecoder.js';
import { OnnxExportDecoder } from '../../src/runtime/onnxExportDecoder.js';
import { readOnnxExport } from '../../src/formats/onnxExport.js';
import { generate, type GenerateRequest } from '../../src/runtime/generate.js';
import type { Decoder, SteerDirections } from '../../src/runtime/decoder.js';
import { tensor } from '../../src/util/tensor.js';
import { FakeTokenizer } from '../helpers/fakeDecoder.js';
import { mulberry32 } from '../helpers/random.js';
import { writeTinyExport } from '../helpers/optimumExport.js';

const root = mkdtempSync(join(tmpdir(), 'lmsteer-shared-'));
after(() => rmSync(root, { recursive: true, force: true }));

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** K = 2 random directions, large enough to move the logits visibly. */
function directions(d: number, seed: number): SteerDirections {
  const rnd = mulberry32(seed);
  return {
    p1: tensor(
      [d, 2],
      Float32Array.from({ length: d * 2 }, () => rnd() - 0.5),
    ),
    p2t: tensor(
      [2, d],
      Float32Array.from({ length: 2 * d }, () => rnd() - 0.5),
    ),
  };
}

async function ortDecoder(kind: 'llama' | 'gpt2' | 'gpt_neox'): Promise<Decoder> {
  const ck = tinyCheckpoint(kind, { seed: 11 });
  const cfg = parseDecoderConfig(ck.config, kind);
  return new OrtDecoder(await createDecoderSession(cfg, ck.weights, { cacheDir: false, threads: 1 }), cfg);
}

async function exportDecoder(positionIds: boolean): Promise<Decoder> {
  const ex = writeTinyExport(join(root, `e${positionIds}`), 'llama', { positionIds });
  return OnnxExportDecoder.open(readOnnxExport(ex.modelPath), { maxPositions: ex.cfg.maxPositions, threads: 1 });
}

const DECODERS: [string, () => Promise<Decoder>][] = [
  ['llama', () => ortDecoder('llama')],
  ['gpt2', () => ortDecoder('gpt2')],
  ['gpt_neox', () => ortDecoder('gpt_neox')],
  ['llama export', () => exportDecoder(true)],
  ['llama export without position_ids', () => exportDecoder(false)],
];

// A repeated 5-token prompt with three different steer values, a repeated one-token prompt (nothing to
// prefill), and a prompt of its own.
const PROMPTS = [[3, 1, 4, 1, 5], [7], [3, 1, 4, 1, 5], [2, 7, 1], [7], [3, 1, 4, 1, 5]];
const SCALES = [
  [1, 0],
  [0, 2],
  [-1, 0],
  [0.5, 0.5],
  [0, -2],
  [0, 0],
];

for (const [name, open] of DECODERS) {
  test(`${name}: a prefix prefilled once into several slots gives each row its own steered logits, then and at every step`, async () => {
    const dec = await open();
    const V = dec.vocabSize;
    const steer = directions(dec.hiddenSize, 5);
    const slots = dec.openSlots({ rows: PROMPTS.length, steer });
    SCALES.forEach((s, b) => slots.setScale(b, Float32Array.from(s)));
    // What the engine does: the prefix of each distinct prompt (longer than one token) once, into its slots…
    await slots.prefill(
      [
        [3, 1, 4, 1],
        [2, 7],
      ],
      [[0, 2, 5], [3]],
      false,
    );
    // …then every row's last prompt token over its slot.
    const seqs = PROMPTS.map((p) => [...p]);
    let logits = await slots.extend(
      0,
      PROMPTS.map((p) => p[p.length - 1]!),
      PROMPTS.map((p) => p.length - 1),
    );
    for (let step = 0; step <= 4; step++) {
      for (let b = 0; b < PROMPTS.length; b++) {
        const scale = tensor([1, 2], Float32Array.from(SCALES[b]!));
        const alone = await dec.forward([seqs[b]!], { steer: { ...steer, scale }, hiddenOnly: true });
        const got = logits.subarray(b * V, (b + 1) * V);
        const d = maxDiff(got, alone.logits.data as Float32Array);
        assert.ok(d < 1e-4, `step ${step}, row ${b}: differs from the row alone by ${d}`);
      }
      // Rows that share a prompt get different next tokens from here on, so their caches must be their own.
      const next = seqs.map((_, b) => (b * 5 + step * 3 + 1) % V);
      const lengths = seqs.map((s) => s.length);
      next.forEach((t, b) => seqs[b]!.push(t));
      logits = await slots.extend(0, next, lengths);
    }
    // The steer really differs between the rows that share a prompt (else the test would prove nothing).
    const first = await slots.extend(0, [1, 1], [5, 5]);
    assert.ok(maxDiff(first.subarray(0, V), first.subarray(V, 2 * V)) > 1e-3);
    slots.dispose();
  });

  test(`${name}: the batch engine gives every row the tokens it gets alone (shared prompts, steers, rows joining as others finish)`, async () => {
    const dec = await open();
    const tok = new FakeTokenizer();
    const steer = directions(dec.hiddenSize, 9);
    const requests: GenerateRequest[] = PROMPTS.map((p, i) => ({
      prompt: { ids: p },
      numSamples: 2,
      seed: 100 + i,
      maxNewTokens: 3 + (i % 3) * 2, // rows finish at different steps, so others join mid-flight
      steerScale: Float32Array.from(SCALES[i]!),
    }));
    const opts = { steer, stopAtEos: false, maxBatch: 4 };
    const together = await generate(dec, tok, requests, opts);
    for (let i = 0; i < requests.length; i++) {
      const [alone] = await generate(dec, tok, [requests[i]!], { ...opts, maxBatch: 1 });
      assert.deepEqual(
        together[i]!.samples.map((s) => s.tokenIds),
        alone!.samples.map((s) => s.tokenIds),
        `request ${i}`,
      );
    }
  });
}

test('generate() opens no more KV slots than it has rows, and reserves a row’s room before decoding', async () => {
  // Every slot's cache is allocated and zero-filled at each capacity it grows to: generate() once opened
  // `maxBatch` (32) slots for one row and stalled 0.7–1.6 s at its first decode step (docs/PERFORMANCE.md).
  const dec = await ortDecoder('llama');
  const opened: { rows: number; capacities: number[] }[] = [];
  const open = dec.openSlots.bind(dec);
  dec.openSlots = (opts) => {
    const slots = open(opts);
    const seen = { rows: opts.rows, capacities: [] as number[] };
    opened.push(seen);
    const extend = slots.extend.bind(slots);
    slots.extend = (first, tokens, lengths) => {
      seen.capacities.push(slots.capacity);
      return extend(first, tokens, lengths);
    };
    return slots;
  };
  const tok = new FakeTokenizer();
  const prompt = { ids: Array.from({ length: 70 }, (_, i) => 1 + (i % 9)) };
  await generate(dec, tok, [{ prompt, maxNewTokens: 20 }], { stopAtEos: false });
  await generate(dec, tok, [{ prompt, numSamples: 3, maxNewTokens: 4 }], { stopAtEos: false, maxBatch: 8 });
  assert.deepEqual(
    opened.map((o) => o.rows),
    [1, 3],
  );
  // 70 + 20 positions reserved at the join: every decode step runs at one capacity (the cache never grew mid-run).
  assert.equal(new Set(opened[0]!.capacities).size, 1, `capacities ${opened[0]!.capacities}`);
  assert.ok(opened[0]!.capacities[0]! >= 90);
});
