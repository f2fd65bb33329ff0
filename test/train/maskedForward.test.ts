import { test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readOnnxExport } from '../../src/formats/onnxExport.js';
import { OnnxExportDecoder } from '../../src/runtime/onnxExportDecoder.js';
import { writeTinyExport } from '../helpers/optimumExport.js';
import assert from 'node:assert/strict';
import { parseDecoderConfig } from '../../src/models/registry.js';
import { referenceForward } from '../../src/models/registry.js';
import { OrtDecoder } from '../../src/runtime/ortDecoder.js';
import { createDecoderSession } from '../../src/runtime/session.js';
import { MaskedForward } from '../../src/train/maskedForward.js';
import { maskedLlamaHidden } from '../helpers/maskedReference.js';
import { tinyCheckpoint, type TinyKind } from '../helpers/tinyModels.js';

async function open(kind: TinyKind) {
  const ck = tinyCheckpoint(kind, { seed: 3 });
  const cfg = parseDecoderConfig(ck.config, kind);
  const decoder = new OrtDecoder(await createDecoderSession(cfg, ck.weights, { cacheDir: false, threads: 1 }), cfg);
  return { cfg, weights: ck.weights, decoder, mf: await MaskedForward.open({ decoder }) };
}

// Right-padded rows (pad = 2, the EOS of the tiny Llama configs): real lengths 5, 2, 7.
const ROWS = [
  [1, 9, 4, 17, 30, 2, 2],
  [1, 5, 2, 2, 2, 2, 2],
  [1, 8, 8, 3, 11, 6, 40],
];
const LENGTHS = [5, 2, 7];
// With a sliding window (3 in qwen2-window's layer 1), a pad more than 3 positions past the last real token
// would have no key left at all: a fully masked row, which transformers itself resolves differently per version.
const WINDOW_LENGTHS = [5, 6, 7];

test('MaskedForward over an ONNX export (its attention_mask): every position equals the float64 loop', async () => {
  const root = mkdtempSync(join(tmpdir(), 'lmsteer-masked-export-'));
  try {
    const ex = writeTinyExport(join(root, 'm'), 'llama', { seed: 3 });
    const decoder = await OnnxExportDecoder.open(readOnnxExport(ex.modelPath), {
      maxPositions: ex.cfg.maxPositions,
      threads: 1,
    });
    const mf = await MaskedForward.open({ decoder });
    const h = await mf.hidden(ROWS, LENGTHS);
    const [, T, d] = h.shape as [number, number, number];
    let worst = 0;
    ROWS.forEach((row, b) => {
      const ref = maskedLlamaHidden(ex.cfg, ex.weights, row, LENGTHS[b]!);
      for (let t = 0; t < T; t++)
        for (let j = 0; j < d; j++) worst = Math.max(worst, Math.abs(h.data[(b * T + t) * d + j]! - ref[t]![j]!));
    });
    assert.ok(worst < 1e-4, `max |Δ| ${worst}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

for (const kind of ['llama', 'qwen2-window'] as const) {
  test(`MaskedForward (${kind}): every position, pads included, equals a float64 loop under the attention mask`, async () => {
    const { cfg, weights, mf } = await open(kind);
    try {
      const lengths = kind === 'llama' ? LENGTHS : WINDOW_LENGTHS;
      const h = await mf.hidden(ROWS, lengths);
      const [B, T, d] = h.shape as [number, number, number];
      assert.deepEqual([B, T, d], [3, 7, cfg.hiddenSize]);
      let worst = 0;
      ROWS.forEach((row, b) => {
        const ref = maskedLlamaHidden(cfg, weights, row, lengths[b]!);
        for (let t = 0; t < T; t++)
          for (let j = 0; j < d; j++) worst = Math.max(worst, Math.abs(h.data[(b * T + t) * d + j]! - ref[t]![j]!));
      });
      assert.ok(worst < 1e-4, `max |Δ| ${worst}`);
    } finally {
      await mf.close();
    }
  });
}

test('MaskedForward (gpt2): real positions equal the plain forward; a pad state sees only the real tokens', async () => {
  const { cfg, weights, mf } = await open('gpt2');
  try {
    const d = cfg.hiddenSize;
    const rowA = [5, 9, 4, 7, 7, 7];
    const rowB = [5, 9, 4, 7, 3, 12]; // other pad tokens after position 3
    const h = await mf.hidden([rowA, rowB], [3, 3]);
    const ref = referenceForward(cfg, weights, [5, 9, 4]).hidden;
    for (let t = 0; t < 3; t++)
      for (let j = 0; j < d; j++) assert.ok(Math.abs(h.data[t * d + j]! - ref.data[t * d + j]!) < 1e-4);
    // Position 3 holds token 7 in both rows: the later pad tokens (masked keys) change nothing.
    for (let j = 0; j < d; j++) assert.ok(Math.abs(h.data[3 * d + j]! - h.data[(6 + 3) * d + j]!) < 1e-6);
    // Position 4 holds different tokens: its own input differs, so its state does.
    let diff = 0;
    for (let j = 0; j < d; j++) diff = Math.max(diff, Math.abs(h.data[4 * d + j]! - h.data[(6 + 4) * d + j]!));
    assert.ok(diff > 1e-3, 'the pad state depends on the pad token itself');
    // It is not what an unmasked forward gives (the pad attending to itself and earlier pads).
    const open = referenceForward(cfg, weights, rowA).hidden;
    let gap = 0;
    for (let j = 0; j < d; j++) gap = Math.max(gap, Math.abs(h.data[4 * d + j]! - open.data[4 * d + j]!));
    assert.ok(gap > 1e-3, 'pad keys are masked');
  } finally {
    await mf.close();
  }
});
