/**
 * Repeated prompts in one batch (n samples of a prompt) are prefilled once and copied to every row that shares
 * them; each row must still get what it gets alone: its own steered logits at the prompt's end, and the same
 * logits at every later step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyCheckpoint } from '../helpers/tinyModels.js';
import { parseDecoderConfig } from '../../src/models/registry.js';
import { createDecoderSession } from '../../src/runtime/session.js';
import { OrtDecoder } from '../../src/runtime/ortDecoder.js';
import type { SteerInputs } from '../../src/runtime/decoder.js';
import { mulberry32 } from '../helpers/random.js';

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A K = 2 steer with one scale row per prompt, large enough to move the logits visibly. */
function steerFor(d: number, scales: number[][], seed: number): SteerInputs {
  const rnd = mulberry32(seed);
  const K = 2;
  return {
    p1: { dtype: 'float32', shape: [d, K], data: Float32Array.from({ length: d * K }, () => rnd() - 0.5) },
    p2t: { dtype: 'float32', shape: [K, d], data: Float32Array.from({ length: K * d }, () => rnd() - 0.5) },
    scale: { dtype: 'float32', shape: [scales.length, K], data: Float32Array.from(scales.flat()) },
  };
}

function rowSteer(s: SteerInputs, b: number): SteerInputs {
  const K = s.scale.shape[1];
  return {
    ...s,
    scale: { dtype: 'float32', shape: [1, K], data: s.scale.data.slice(b * K, (b + 1) * K) as Float32Array },
  };
}

for (const kind of ['llama', 'gpt2', 'gpt_neox'] as const) {
  test(`${kind}: repeated prompts prefilled once give each row its own steered logits, at the start and every step`, async () => {
    const ck = tinyCheckpoint(kind, { seed: 11 });
    const cfg = parseDecoderConfig(ck.config, kind);
    const dec = new OrtDecoder(await createDecoderSession(cfg, ck.weights, { cacheDir: false, threads: 1 }), cfg);
    const V = dec.vocabSize;
    // A repeated 5-token prompt with three different steer values, a repeated one-token prompt (nothing to
    // prefill), and a prompt of its own.
    const prompts = [[3, 1, 4, 1, 5], [7], [3, 1, 4, 1, 5], [2, 7, 1], [7], [3, 1, 4, 1, 5]];
    const steer = steerFor(
      cfg.hiddenSize,
      [
        [1, 0],
        [0, 2],
        [-1, 0],
        [0.5, 0.5],
        [0, -2],
        [0, 0],
      ],
      5,
    );
    const { batch, out } = await dec.start(prompts, steer, { maxNewTokens: 6 });
    const seqs = prompts.map((p) => [...p]);
    let logits = out.logits.data as Float32Array;
    for (let step = 0; step <= 4; step++) {
      for (let b = 0; b < prompts.length; b++) {
        const alone = await dec.forward([seqs[b]], { steer: rowSteer(steer, b) });
        const want = (alone.logits.data as Float32Array).subarray((seqs[b].length - 1) * V, seqs[b].length * V);
        const got = logits.subarray(b * V, (b + 1) * V);
        assert.ok(
          maxDiff(got, want) < 1e-4,
          `step ${step}, row ${b}: differs from the row alone by ${maxDiff(got, want)}`,
        );
      }
      // Rows that share a prompt get different next tokens from here on, so their caches must be their own.
      const next = seqs.map((_, b) => (b * 5 + step * 3 + 1) % V);
      next.forEach((t, b) => seqs[b].push(t));
      logits = (await batch.step(next)).logits.data as Float32Array;
    }
    batch.dispose();
    // The steer really differs between the rows that share a prompt (else the test would prove nothing).
    const first = (
      await dec.start([prompts[0], prompts[0]], {
        ...steer,
        scale: { dtype: 'float32', shape: [2, 2], data: Float32Array.from([1, 0, -1, 0]) },
      })
    ).out.logits.data as Float32Array;
    assert.ok(maxDiff(first.subarray(0, V), first.subarray(V, 2 * V)) > 1e-3);
  });
}
