/**
 * The q8/q4 builds (src/graph/buildOptions.ts) of the GPT-Neo, GPT-J and OPT graphs: every weight matrix goes
 * through linearLayer / embeddingLookup (MatMulNBits, GatherBlockQuantized) — only the LM head's Eᵀ stays a
 * float32 MatMul — the logits stay near the float64 reference (q8 closer than q4), and the KV-cache and batching
 * invariants hold as in fp32.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { decodeSteps } from '../helpers/decodeSteps.js';
import { tinyCheckpoint, type TinyKind } from '../helpers/tinyModels.js';
import type { WeightDType } from '../../src/graph/buildOptions.js';
import { buildDecoderGraph, parseDecoderConfig, referenceForward } from '../../src/models/registry.js';
import { OrtDecoder } from '../../src/runtime/ortDecoder.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Linear layers per model: 4 a layer (fused q/k/v, output, two MLP), OPT-350m's project_in/out besides. */
const LINEARS: [TinyKind, number][] = [
  ['gpt_neo', 8],
  ['gptj', 8],
  ['opt', 8],
  ['opt-350m', 10],
];

async function open(kind: TinyKind, dtype: WeightDType) {
  const ck = tinyCheckpoint(kind, { seed: 7 });
  const cfg = parseDecoderConfig(ck.config, kind);
  const g = buildDecoderGraph(cfg, ck.weights, { dtype });
  const session = await ort.InferenceSession.create(g.serialize(), { intraOpNumThreads: 1 });
  return { cfg, weights: ck.weights, g, dec: new OrtDecoder(session, cfg) };
}

for (const [kind, linears] of LINEARS) {
  test(`${kind} q8/q4: weights quantized, only the head float32; logits near the reference`, async () => {
    const ids = [1, 5, 9, 2, 7, 3, 11, 4];
    const errors: number[] = [];
    for (const dtype of ['q8', 'q4'] as const) {
      const { cfg, weights, g, dec } = await open(kind, dtype);
      const nodes = g.nodeViews();
      assert.equal(nodes.filter((n) => n.opType === 'MatMulNBits').length, linears, 'MatMulNBits per linear layer');
      assert.ok(
        nodes.some((n) => n.opType === 'GatherBlockQuantized'),
        'a block-quantized embedding table',
      );
      const floatWeights = nodes
        .filter((n) => n.opType === 'MatMul' && g.initializerInfo(n.inputs[1]!) !== undefined)
        .map((n) => n.inputs[1]);
      assert.deepEqual(floatWeights.length, 1, `float32 weight MatMuls: ${floatWeights.join(', ')}`);
      assert.match(floatWeights[0]!, /_t$/, 'the one float32 MatMul is the LM head');
      const ref = referenceForward(cfg, weights, ids).logits.data;
      errors.push(maxAbsDiff((await dec.forward([ids])).logits.data as Float32Array, ref));
      const range = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assert.ok(errors.at(-1)! < (dtype === 'q8' ? 0.05 : 0.5) * range, `${dtype} |Δ| = ${errors.at(-1)} of ${range}`);
    }
    assert.ok(errors[0]! < errors[1]!, `q8 (${errors[0]}) should be closer than q4 (${errors[1]})`);
  });
}

test('q8: incremental decode equals full recompute and batched rows equal rows alone (gptj, opt-350m)', async () => {
  for (const kind of ['gptj', 'opt-350m'] as const) {
    const { dec } = await open(kind, 'q8');
    const rows = [
      [3, 1, 4, 1, 5],
      [9, 2],
    ];
    const cont = [
      [2, 6],
      [3, 5],
    ];
    const steps = await decodeSteps(dec, rows, 2, (s) => cont.map((c) => c[s]!));
    const V = dec.vocabSize;
    for (let b = 0; b < rows.length; b++) {
      const alone = (await dec.forward([[...rows[b]!, ...cont[b]!]])).logits.data as Float32Array;
      for (let s = 0; s <= 2; s++) {
        const pos = rows[b]!.length - 1 + s;
        const d = maxAbsDiff(steps[s]!.subarray(b * V, (b + 1) * V), alone.subarray(pos * V, (pos + 1) * V));
        assert.ok(d <= 1e-4, `${kind} row ${b} step ${s}: |Δ| = ${d}`);
      }
    }
  }
});
