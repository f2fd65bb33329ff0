/**
 * The steer inside each architecture's graph: logits equal the plain-TS steered logits (src/steer/math.ts) of
 * the graph's own hidden states, rows with different values in one batch, and value 0 is the base model bit for
 * bit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyCheckpoint } from '../helpers/tinyModels.js';
import { outputBias, outputEmbeddings, parseDecoderConfig } from '../../src/models/registry.js';
import { createDecoderSession } from '../../src/runtime/session.js';
import { OrtDecoder } from '../../src/runtime/ortDecoder.js';
import { packSteers, steerInputs } from '../../src/steer/pack.js';
import { steeredLogits } from '../../src/steer/math.js';
import type { Steer } from '../../src/steer/steer.js';
import type { Tensor } from '../../src/util/tensor.js';

function randomSteer(d: number, S: number, r: number, eps: number, seed: number): Steer {
  let x = seed;
  const rnd = () => ((x = (x * 16807) % 2147483647) / 2147483647 - 0.5) * 2;
  const t = (): Tensor => ({ dtype: 'float32', shape: [S, d, r], data: Float32Array.from({ length: S * d * r }, rnd) });
  return {
    config: {
      formatVersion: 1,
      baseModel: { id: 'tiny', embeddingFingerprint: 'x', vocabSize: 0, hiddenSize: d },
      eps,
      rank: r,
      slots: Array.from({ length: S }, (_, i) => ({ name: `s${i}`, defaultValue: 0 })),
    },
    p1: t(),
    p2: t(),
  };
}

/** cap·tanh(z/cap), the final logit soft-capping of the graph (Gemma 2), on the plain-TS steered logits. */
function softcap(t: Tensor, cap: number | undefined): Tensor {
  return cap === undefined ? t : { ...t, data: t.data.map((z) => cap * Math.tanh(z / cap)) };
}

for (const kind of [
  'gpt2',
  'llama',
  'gpt_neox',
  'gpt_neo',
  'gptj',
  'opt-350m',
  'gemma2',
  'gemma3',
  'qwen3',
  'phi3',
] as const) {
  test(`${kind}: steered logits in the graph = plain-TS steer of the graph's hidden states; 0 = base bit for bit`, async () => {
    const ck = tinyCheckpoint(kind, { seed: 11 });
    const cfg = parseDecoderConfig(ck.config, kind);
    const dec = new OrtDecoder(await createDecoderSession(cfg, ck.weights, { cacheDir: false, threads: 1 }), cfg);
    const d = cfg.hiddenSize;
    const V = cfg.vocabSize;
    const steers = [randomSteer(d, 2, 3, 0.05, 5), randomSteer(d, 1, 4, 0.02, 9)];
    const packed = packSteers(steers);
    const ids = [3, 1, 4, 1, 5, 9, 2, 6];
    const rowValues = [
      [[2, -1], [3]],
      [[0, 0], [0]],
      [[-4, 0.5], [-2]],
    ];
    const out = await dec.forward([ids, ids, ids], { steer: steerInputs(packed, rowValues) });
    const T = ids.length;
    for (const [b, values] of rowValues.entries()) {
      const h: Tensor = {
        dtype: 'float32',
        shape: [T, d],
        data: (out.hidden.data as Float32Array).slice(b * T * d, (b + 1) * T * d),
      };
      const want = steeredLogits(h, outputEmbeddings(cfg, ck.weights), steers, [values]);
      const headBias = outputBias(cfg, ck.weights); // GPT-J: logits = h'·Eᵀ + b
      if (headBias) for (let i = 0; i < want.data.length; i++) want.data[i] += headBias.data[i % V]!;
      const capped = softcap(want, cfg.finalLogitSoftcap); // Gemma 2: cap·tanh(·/cap) of the head's output
      const got = (out.logits.data as Float32Array).subarray(b * T * V, (b + 1) * T * V);
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - capped.data[i]));
      assert.ok(worst <= 1e-4, `row ${b}: |Δ| = ${worst}`);
    }
    assert.ok(Math.abs(out.logits.data[0] - out.logits.data[T * V]) > 1e-4, 'the steer changed nothing');
    // Row 1 (all values 0, real steer directions) equals the graph with no steer at all, bit for bit.
    const base = await dec.forward([ids]);
    assert.deepEqual((out.logits.data as Float32Array).subarray(T * V, 2 * T * V), base.logits.data as Float32Array);
  });
}
