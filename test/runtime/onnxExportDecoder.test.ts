import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import ort from 'onnxruntime-node';
import { readOnnxExport } from '../../src/formats/onnxExport.js';
import { referenceForward } from '../../src/models/registry.js';
import { outputEmbeddings } from '../../src/models/registry.js';
import { generate } from '../../src/runtime/generate.js';
import { loadModel } from '../../src/runtime/loadModel.js';
import { OnnxExportDecoder } from '../../src/runtime/onnxExportDecoder.js';
import { OrtDecoder } from '../../src/runtime/ortDecoder.js';
import { steeredLogits } from '../../src/steer/math.js';
import { packScale, packSteers, steerInputs } from '../../src/steer/pack.js';
import { embeddingFingerprint } from '../../src/steer/steer.js';
import { LmSteerError } from '../../src/util/errors.js';
import type { Tensor } from '../../src/util/tensor.js';
import { decodeSteps } from '../helpers/decodeSteps.js';
import { writeTinyExport, type ExportOptions } from '../helpers/optimumExport.js';
import type { TinyKind } from '../helpers/tinyModels.js';
import { assertClose, randomSteer } from '../steer/randomSteer.js';

const root = mkdtempSync(join(tmpdir(), 'lmsteer-onnxdec-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

async function open(kind: TinyKind, o: ExportOptions = {}) {
  const ex = writeTinyExport(join(root, `m${n++}`), kind, o);
  const exp = readOnnxExport(ex.modelPath);
  const dec = await OnnxExportDecoder.open(exp, { maxPositions: ex.cfg.maxPositions, threads: 1 });
  return { ...ex, exp, dec };
}

const ROWS = [
  [5, 17, 3, 40, 22, 9, 61],
  [12, 7],
  [33, 1, 58, 20],
];

function row(t: Tensor, b: number, i: number, len: number): Float32Array {
  const inner = t.shape[2]!;
  const T = t.shape[1]!;
  return (t.data as Float32Array).slice((b * T + i) * inner, (b * T + i) * inner + len * inner);
}

const VARIANTS: [string, TinyKind, ExportOptions][] = [
  ['llama (GQA, untied head MatMul, external data)', 'llama', { external: true }],
  ['gpt2 (tied head via Transpose)', 'gpt2', { head: 'transpose' }],
  ['llama (Gemm head between Reshapes)', 'llama', { head: 'gemm' }],
  ['gpt2 merged decoder (If on use_cache_branch)', 'gpt2', { merged: true }],
  ['gpt2 without a position_ids input', 'gpt2', { positionIds: false }],
];

for (const [name, kind, o] of VARIANTS) {
  test(`${name}: forward over rows of different lengths matches the reference forward`, async () => {
    const m = await open(kind, o);
    try {
      const res = await m.dec.forward(ROWS);
      const T = Math.max(...ROWS.map((r) => r.length));
      assert.deepEqual(res.logits.shape, [3, T, m.cfg.vocabSize]);
      assert.deepEqual(res.lengths, [7, 2, 4]);
      ROWS.forEach((ids, b) => {
        const ref = referenceForward(m.cfg, m.weights, ids);
        assertClose(row(res.logits, b, 0, ids.length), ref.logits.data, 1e-4, `row ${b} logits`);
        assertClose(row(res.hidden, b, 0, ids.length), ref.hidden.data, 1e-4, `row ${b} hidden`);
        // shorter rows repeat their last position, as OrtDecoder.forward does
        if (ids.length < T) assert.deepEqual(row(res.logits, b, T - 1, 1), row(res.logits, b, ids.length - 1, 1));
      });
      const last = await m.dec.forward(ROWS, { hiddenOnly: true });
      assert.deepEqual(last.logits.shape, [3, 1, m.cfg.vocabSize]);
      ROWS.forEach((ids, b) => assert.deepEqual(row(last.logits, b, 0, 1), row(res.logits, b, ids.length - 1, 1)));
    } finally {
      await m.dec.release();
    }
  });

  test(`${name}: incremental decode (start + steps) matches full recompute`, async () => {
    const m = await open(kind, o);
    try {
      const seqs = ROWS.map((r) => [...r]);
      const nextOf = (step: number) => seqs.map((s, b) => (s[s.length - 1]! * 7 + b + step) % m.cfg.vocabSize);
      const logits = await decodeSteps(m.dec, ROWS, 4, (step) => {
        const next = nextOf(step);
        seqs.forEach((s, b) => s.push(next[b]!));
        return next;
      });
      const replay = ROWS.map((r) => [...r]);
      for (let step = 0; step < 4; step++) {
        const full = await m.dec.forward(replay, { hiddenOnly: true });
        assertClose(logits[step]!, full.logits.data, 1e-4, `step ${step} logits`);
        replay.forEach((s, b) => s.push(seqs[b]![ROWS[b]!.length + step]!));
      }
    } finally {
      await m.dec.release();
    }
  });
}

test("the steer changes the logits exactly as h'·Eᵀ (steeredLogits on the hidden output), per row", async () => {
  for (const [kind, o] of [
    ['llama', {}],
    ['gpt2', { merged: true }],
    ['llama', { head: 'gemm' }],
  ] as [TinyKind, ExportOptions][]) {
    const m = await open(kind, o);
    try {
      const d = m.cfg.hiddenSize;
      const steers = [
        randomSteer({ d, rank: 3, slots: ['a', 'b'], eps: 0.5, seed: 4 }),
        randomSteer({ d, rank: 2, slots: ['c'], eps: 0.3, seed: 5 }),
      ];
      const values = [
        [[1, -2], [0.5]],
        [[0, 3], [-1]],
        [[2, 0], [0]],
      ];
      const packed = packSteers(steers);
      const res = await m.dec.forward(ROWS, { steer: steerInputs(packed, values) });
      const E = outputEmbeddings(m.cfg, m.weights);
      const plain = await m.dec.forward(ROWS);
      ROWS.forEach((ids, b) => {
        const T = res.hidden.shape[1]!;
        const h: Tensor = {
          dtype: 'float32',
          shape: [ids.length, d],
          data: (res.hidden.data as Float32Array).slice(b * T * d, (b * T + ids.length) * d),
        };
        const expected = steeredLogits(h, E, steers, [values[b]!]);
        assertClose(row(res.logits, b, 0, ids.length), expected.data, 1e-4, `${kind} row ${b} steered logits`);
        // hidden is the unsteered state: the same with and without the steer
        assert.deepEqual(row(res.hidden, b, 0, ids.length), row(plain.hidden, b, 0, ids.length));
      });
      assert.notDeepEqual(Array.from(res.logits.data), Array.from(plain.logits.data));
    } finally {
      await m.dec.release();
    }
  }
});

test('zero steer gives bit for bit the logits of the original, un-rewritten export', async () => {
  for (const [kind, o] of [
    ['llama', { external: true }],
    ['gpt2', { head: 'transpose' }],
    ['gpt2', { merged: true }],
  ] as [TinyKind, ExportOptions][]) {
    const m = await open(kind, o);
    try {
      const original = await ort.InferenceSession.create(readFileSync(m.modelPath), {
        intraOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        extra: { session: { model_external_initializers_file_folder_path: join(m.dir, 'onnx') } },
      });
      const ids = [[3, 9, 27, 4, 50]];
      const T = ids[0]!.length;
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids[0]!.map(BigInt)), [1, T]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
        position_ids: new ort.Tensor('int64', BigInt64Array.from(ids[0]!.map((_, t) => BigInt(t))), [1, T]),
      };
      if (o.merged) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(0), [1]);
      for (let i = 0; i < m.cfg.numLayers; i++) {
        for (const kv of ['key', 'value'])
          feeds[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [
            1,
            m.cfg.numKvHeads,
            0,
            m.cfg.headDim,
          ]);
      }
      const want = (await original.run(feeds)).logits!.data as Float32Array;
      const got = await m.dec.forward(ids);
      assert.deepEqual(
        Buffer.from(got.logits.data.buffer),
        Buffer.from(want.buffer.slice(want.byteOffset, want.byteOffset + want.byteLength)),
      );
      await original.release();
    } finally {
      await m.dec.release();
    }
  }
});

test('steer inputs of the wrong shape are refused with SHAPE_MISMATCH', async () => {
  const m = await open('llama');
  try {
    const steer = steerInputs(packSteers([randomSteer({ d: m.cfg.hiddenSize + 1, rank: 2, slots: ['a'] })]), [[[1]]]);
    await assert.rejects(
      m.dec.forward([[1, 2]], { steer }),
      (e: unknown) => e instanceof LmSteerError && e.code === 'SHAPE_MISMATCH',
    );
    await assert.rejects(
      m.dec.forward([[1, 99]]),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT' && /99/.test(e.message),
    );
  } finally {
    await m.dec.release();
  }
});

test('loadModel on an export folder: tokenizer, config, E and fingerprint as for the HF checkpoint; generate() runs steered', async () => {
  const ex = writeTinyExport(join(root, `m${n++}`), 'llama', { external: true });
  const model = await loadModel(ex.dir, { cacheDir: join(root, 'cache'), threads: 1 });
  try {
    assert.ok(model.decoder instanceof OnnxExportDecoder);
    assert.ok(!(model.decoder instanceof OrtDecoder));
    assert.equal(model.cfg.vocabSize, 64);
    assert.equal(model.tokenizer.vocabSize, 64);
    const E = outputEmbeddings(ex.cfg, ex.weights);
    assert.deepEqual(Array.from(model.outputEmbeddings().data), Array.from(E.data));
    assert.equal(model.fingerprint(), embeddingFingerprint(E));

    const steer = randomSteer({ d: ex.cfg.hiddenSize, rank: 2, slots: ['s'], eps: 1, seed: 7 });
    const packed = packSteers([steer]);
    const prompts = [{ ids: [1, 5, 9] }, { ids: [1, 30] }];
    const opts = { maxNewTokens: 6, temperature: 0, stopAtEos: false, maxPositions: model.cfg.maxPositions };
    const plain = await generate(
      model.decoder,
      model.tokenizer,
      prompts.map((prompt) => ({ prompt })),
      opts,
    );
    const steered = await generate(
      model.decoder,
      model.tokenizer,
      prompts.map((prompt) => ({ prompt, steerScale: packScale(packed, [[[40]]]).data as Float32Array })),
      { ...opts, steer: { p1: packed.p1, p2t: packed.p2t } },
    );
    for (const r of [...plain, ...steered]) assert.equal(r.samples[0]!.tokenIds.length, 6);
    // greedy tokens follow the reference forward's argmax
    for (const [i, p] of prompts.entries()) {
      const seq = [...p.ids];
      for (let t = 0; t < 6; t++) {
        const ref = referenceForward(ex.cfg, ex.weights, seq);
        const last = ref.logits.data.subarray((seq.length - 1) * 64, seq.length * 64);
        seq.push(last.indexOf(Math.max(...last)));
      }
      assert.deepEqual(plain[i]!.samples[0]!.tokenIds, seq.slice(p.ids.length));
    }
    assert.notDeepEqual(
      steered.map((r) => r.samples[0]!.tokenIds),
      plain.map((r) => r.samples[0]!.tokenIds),
    );
  } finally {
    model.close();
  }
});
