/**
 * Each architecture's ONNX graph against its plain-TS reference forward (max |Δ logit| ≤ 1e-4, fp32), on tiny
 * random checkpoints; plus the KV-cache and batching invariants of the graph contract.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeSteps } from '../helpers/decodeSteps.js';
import { tinyCheckpoint } from '../helpers/tinyModels.js';
import { parseDecoderConfig } from '../../src/models/registry.js';
import { createDecoderSession } from '../../src/runtime/session.js';
import { OrtDecoder } from '../../src/runtime/ortDecoder.js';
import { referenceForward } from '../../src/models/registry.js';
import type { Tensor } from '../../src/util/tensor.js';

const KINDS = [
  'gpt2',
  'llama',
  'mistral',
  'qwen2',
  'mistral-window',
  'qwen2-window',
  'gpt_neox',
  'gpt_neox-sequential',
  'llama-rope-scaled',
  'gpt_neo',
  'gptj',
  'opt',
  'opt-350m',
  'opt-bare',
  'gemma2',
  'gemma3',
  'qwen3',
  'phi3',
  'phi3-longrope',
] as const;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Row b, position t of a [B, T, X] tensor. */
function at(t: Tensor, b: number, i: number): Float32Array {
  const [, T, X] = t.shape;
  return (t.data as Float32Array).subarray((b * T + i) * X, (b * T + i + 1) * X);
}

async function setup(kind: string, hiddenAct?: string) {
  const ck = tinyCheckpoint(kind as never, { seed: 7, hiddenAct });
  const cfg = parseDecoderConfig(ck.config, `tiny ${kind}`);
  const dec = new OrtDecoder(await createDecoderSession(cfg, ck.weights, { cacheDir: false, threads: 1 }), cfg);
  return { cfg, weights: ck.weights, dec };
}

for (const kind of KINDS) {
  test(`${kind}: ONNX graph matches the reference forward`, async () => {
    const { cfg, weights, dec } = await setup(kind);
    const ids = [1, 5, 9, 2, 7, 3, 11, 4];
    const ref = referenceForward(cfg, weights, ids);
    const out = await dec.forward([ids]);
    assert.ok(
      maxAbsDiff(out.logits.data as Float32Array, ref.logits.data) <= 1e-4,
      `logits differ by ${maxAbsDiff(out.logits.data as Float32Array, ref.logits.data)}`,
    );
    assert.ok(maxAbsDiff(out.hidden.data as Float32Array, ref.hidden.data) <= 1e-4, 'hidden states differ');
  });

  test(`${kind}: incremental KV decode equals full recompute; batched rows equal rows alone`, async () => {
    const { dec } = await setup(kind);
    const rows = [
      [3, 1, 4, 1, 5],
      [9, 2],
      [6, 5, 3, 5, 8, 9, 7],
    ];
    const cont = [
      [2, 6, 5],
      [3, 5, 8],
      [9, 7, 9],
    ];
    const stepLogits = await decodeSteps(dec, rows, 3, (s) => cont.map((c) => c[s]!));
    for (let b = 0; b < rows.length; b++) {
      const full = [...rows[b], ...cont[b]];
      const alone = await dec.forward([full]);
      for (let s = 0; s <= 3; s++) {
        const pos = rows[b].length - 1 + s;
        const V = dec.vocabSize;
        const got = stepLogits[s]!.subarray(b * V, (b + 1) * V);
        const d = maxAbsDiff(got, at(alone.logits, 0, pos));
        assert.ok(d <= 1e-4, `row ${b} step ${s}: |Δ| = ${d}`);
      }
    }
  });
}

// Every graph takes its activation from config.json, as the reference forwards do: each family with each
// activation it does not use by default (a graph hard-coding its family's default fails these).
const ACTIVATIONS: [string, string[]][] = [
  ['gpt2', ['gelu', 'relu', 'silu']],
  ['llama', ['gelu', 'gelu_pytorch_tanh', 'relu']],
  ['gpt_neox', ['gelu_new', 'relu', 'silu']],
  ['gpt_neo', ['relu']],
  ['gptj', ['gelu']],
  ['opt', ['gelu_new']],
  ['gemma2', ['gelu', 'silu']],
  ['qwen3', ['gelu_pytorch_tanh']],
  ['phi3', ['gelu']],
];
for (const [kind, acts] of ACTIVATIONS) {
  for (const act of acts) {
    test(`${kind} with ${act}: the graph uses config.json's activation`, async () => {
      const { cfg, weights, dec } = await setup(kind, act);
      const ids = [1, 5, 9, 2, 7, 3, 11, 4];
      const ref = referenceForward(cfg, weights, ids);
      const d = maxAbsDiff((await dec.forward([ids])).logits.data as Float32Array, ref.logits.data);
      assert.ok(d <= 1e-4, `logits differ by ${d}`);
    });
  }
}

test('sliding window: the same weights without the window agree before position 3 and differ after it', async () => {
  for (const kind of ['mistral-window', 'qwen2-window', 'gpt_neo', 'gemma2', 'gemma3'] as const) {
    const { cfg, weights, dec } = await setup(kind);
    const ids = [1, 5, 9, 2, 7, 3, 11, 4];
    const windowed = (await dec.forward([ids])).logits;
    const full = referenceForward({ ...cfg, slidingWindow: undefined }, weights, ids).logits;
    const V = cfg.vocabSize;
    for (let t = 0; t < ids.length; t++) {
      const d = maxAbsDiff(at(windowed, 0, t), full.data.subarray(t * V, (t + 1) * V));
      if (t < 3) assert.ok(d <= 1e-4, `${kind} position ${t}: the window should not matter yet (|Δ| = ${d})`);
      else assert.ok(d > 1e-3, `${kind} position ${t}: the window should change the logits (|Δ| = ${d})`);
    }
  }
});
