/**
 * LoRA export: exact rank (the SVD of ΔW = E·Σ eps·s·P2·P1ᵀ), truncation error, composition, and — on the real
 * stories260K — adapters loaded the way PEFT defines them (key names, shapes, lora_alpha / r) whose
 * W + scaling·B·A reproduces the graph's steered logits, per slot at several scales and at fixed values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportLora, fixedTerms, headDelta, loraWeights, type SteerTerm } from '../../src/steer/lora.js';
import { matmulTransposed, steeredLogits } from '../../src/steer/math.js';
import { BASE_SLOT, embeddingFingerprint, type Steer } from '../../src/steer/steer.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import { readAllSafetensors } from '../../src/formats/safetensors.js';
import { loadModel } from '../../src/runtime/loadModel.js';
import { mat, svdTop } from '../../src/util/linalg.js';
import type { Tensor } from '../../src/util/tensor.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';
import { assertClose, randomSteer, randomTensor, rng } from './randomSteer.js';

/** Make slot `slot` of `steer` have rank `rank`: its P1 columns from `rank` on copy column 0. */
function lowerRank(steer: Steer, slot: number, rank: number): void {
  const [, d, r] = steer.p1.shape as [number, number, number];
  const base = slot * d * r;
  for (let t = 0; t < d; t++)
    for (let j = rank; j < r; j++) steer.p1.data[base + t * r + j] = steer.p1.data[base + t * r]!;
}

/** ΔW [V, d] in float64, densely: E·Σ eps·s·P2·P1ᵀ. */
function denseDelta(terms: SteerTerm[], E: Tensor): Float64Array {
  const [V, d] = E.shape as [number, number];
  const M = new Float64Array(d * d); // Σ eps·s·P2·P1ᵀ
  for (const { steer, slot, value } of terms) {
    const r = steer.config.rank;
    const c = steer.config.eps * value;
    const base = slot * d * r;
    for (let a = 0; a < d; a++)
      for (let b = 0; b < d; b++)
        for (let j = 0; j < r; j++)
          M[a * d + b] += c * steer.p2.data[base + a * r + j]! * steer.p1.data[base + b * r + j]!;
  }
  const out = new Float64Array(V * d);
  for (let w = 0; w < V; w++)
    for (let a = 0; a < d; a++) {
      const e = E.data[w * d + a]!;
      for (let b = 0; b < d; b++) out[w * d + b] += e * M[a * d + b]!;
    }
  return out;
}

/** B·A as a dense [V, d]. */
function product(A: Tensor, B: Tensor): Float64Array {
  const [k, d] = A.shape as [number, number];
  const V = B.shape[0]!;
  const out = new Float64Array(V * d);
  for (let w = 0; w < V; w++)
    for (let i = 0; i < k; i++) {
      const b = B.data[w * k + i]!;
      for (let t = 0; t < d; t++) out[w * d + t] += b * A.data[i * d + t]!;
    }
  return out;
}

const frob = (x: Float64Array) => Math.sqrt(x.reduce((a, v) => a + v * v, 0));
const sub = (x: Float64Array, y: Float64Array) => x.map((v, i) => v - y[i]!);

test('the exact rank of ΔW: a slot of rank 3 of 8 gives rank 3; two slots add; truncation error is what it loses', () => {
  const rand = rng(5);
  const E = randomTensor([40, 16], rand);
  const steer = randomSteer({ d: 16, rank: 8, slots: ['mood', { name: BASE_SLOT, defaultValue: 1 }], eps: 0.1 });
  lowerRank(steer, 0, 3);
  const mood = [{ steer, slot: 0, value: 2 }];
  const one = headDelta(mood, E);
  assert.equal(one.exactRank, 3);
  assert.equal(one.rank, 3);
  assert.deepEqual(one.A.shape, [3, 16]);
  assert.deepEqual(one.B.shape, [40, 3]);
  const want = denseDelta(mood, E);
  assert.ok(frob(sub(product(one.A, one.B), want)) <= 1e-6 * frob(want), 'B·A = ΔW');
  // An independent count: singular values of the dense ΔW above the same floor.
  const dense = svdTop(mat(40, 16, want), 16);
  assert.equal(dense.values.length, 3);

  const both = fixedTerms(SteerSet.of([steer]), { mood: 2 });
  const full = headDelta(both, E);
  assert.equal(full.exactRank, 11, '3 + 8');
  const cut = headDelta(both, E, { rank: 4 });
  assert.equal(cut.rank, 4);
  const wantBoth = denseDelta(both, E);
  const err = frob(sub(product(cut.A, cut.B), wantBoth)) / frob(wantBoth);
  assert.ok(Math.abs(err - cut.relativeError) < 1e-6, `${err} vs reported ${cut.relativeError}`);
  assert.ok(cut.relativeError > 0.01);
  // Eckart–Young: no rank-4 factorisation is closer; the one from stacking the first four columns is not.
  assert.ok(cut.relativeError < 1);
});

test('more projector columns than d (the reference: 2 slots × rank r > d) fold to rank ≤ d; several steers compose', () => {
  const rand = rng(7);
  const E = randomTensor([30, 6], rand);
  const a = randomSteer({
    d: 6,
    rank: 4,
    slots: ['x', { name: BASE_SLOT, defaultValue: 1 }],
    eps: 0.05,
    name: 'a',
    seed: 2,
  });
  const b = randomSteer({ d: 6, rank: 2, slots: ['y'], eps: 0.2, name: 'b', seed: 3 });
  const set = SteerSet.of([a, b]);
  const terms = fixedTerms(set, { x: -3, y: 1.5 });
  const delta = headDelta(terms, E);
  assert.equal(delta.exactRank, 6, 'R = 4 + 4 + 2 = 10 columns, rank at most d = 6');
  const h = randomTensor([5, 6], rand, 2);
  const base = matmulTransposed(h, E).data;
  const viaLora = matmulTransposed(matmulTransposed(h, delta.A), delta.B).data.map((x, i) => x + base[i]!);
  assertClose(viaLora, steeredLogits(h, E, [a, b], [set.values({ x: -3, y: 1.5 })]).data, 1e-5, 'logits');
  assert.deepEqual(loraWeights(a, [0, 1], E).rank, 4, 'the old one-steer API still works');
  assert.throws(() => headDelta(fixedTerms(set, { base: 0 }), E), /every steer value is 0/);
  assert.throws(
    () => headDelta([{ steer: a, slot: 0, value: 1e300 }], E),
    (e: Error) => /overflow float32/.test(e.message),
  );
});

test('exportLora writes PEFT folders, refuses a non-empty folder without overwrite, and notes tied embeddings', (t) => {
  const rand = rng(21);
  const E = randomTensor([13, 6], rand);
  const steer = randomSteer({ d: 6, rank: 3, slots: ['pos', { name: BASE_SLOT, defaultValue: 1 }], eps: 0.01 });
  steer.config.baseModel.embeddingFingerprint = embeddingFingerprint(E);
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-lora-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const set = SteerSet.of([steer], ['mood']);
  const plan = { name: '', terms: fixedTerms(set, { pos: -2 }), description: 'mood=-2, mood.base=1' };
  const out = join(dir, 'a');
  const [w] = exportLora([plan], E, out, { baseModel: '/abs/tiny', tiedEmbeddings: true, untieHead: true });
  assert.equal(w!.rank, 6);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.r, 6);
  assert.equal(cfg.lora_alpha, 6);
  assert.equal(cfg.base_model_name_or_path, '/abs/tiny');
  assert.match(readFileSync(join(out, 'README.md'), 'utf8'), /Tied embeddings/);
  assert.deepEqual(readAllSafetensors(join(out, 'lm_head.safetensors')).tensors['lm_head.weight']!.data, E.data);
  assert.throws(() => exportLora([plan], E, out, { baseModel: 'x' }), /not empty/);
  exportLora([plan], E, out, { baseModel: 'x', overwrite: true });
  writeFileSync(join(dir, 'b'), 'a file');
  assert.throws(() => exportLora([plan], E, join(dir, 'b'), { baseModel: 'x' }), /not a folder/);
  const other = randomTensor([13, 6], rng(99));
  assert.throws(
    () => exportLora([plan], other, join(dir, 'c'), { baseModel: 'x' }),
    (e: Error & { code?: string }) => e.code === 'MODEL_MISMATCH',
  );
  assert.throws(() => exportLora([plan], E, join(dir, 'd'), { baseModel: 'x', targetModule: 'a b' }), /module name/);
});

const skip = skipUnlessShared('models/stories260K/hf');

test(
  'on stories260K, PEFT-convention W + (alpha/r)·B·A reproduces the steered graph per slot at several scales and at fixed values',
  { skip },
  async (t) => {
    const model = await loadModel(sharedPath('models/stories260K/hf')!, { cacheDir: false, threads: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'lmsteer-lora-peft-'));
    t.after(() => {
      model.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const d = model.cfg.hiddenSize;
    const V = model.cfg.vocabSize;
    const steer = randomSteer({
      d,
      rank: 8,
      slots: ['mood', { name: BASE_SLOT, defaultValue: 1 }],
      eps: 0.05,
      seed: 4,
    });
    lowerRank(steer, 0, 5);
    steer.config.baseModel = { id: model.id, embeddingFingerprint: model.fingerprint(), vocabSize: V, hiddenSize: d };
    const set = SteerSet.of([steer], ['tone']);
    const E = model.outputEmbeddings();
    const slots = exportLora(
      fixedTerms(set).map((term, i) => ({
        name: ['tone.mood', 'tone.base'][i]!,
        terms: [{ ...term, value: 1 }],
        description: '',
      })),
      E,
      join(dir, 'per-slot'),
      { baseModel: model.id },
    );
    assert.deepEqual(
      slots.map((s) => s.rank),
      [5, 8],
      "each adapter's rank is its slot's true rank",
    );
    const fixed = exportLora(
      [{ name: '', terms: fixedTerms(set, { tone: 3 }), description: '' }],
      E,
      join(dir, 'fixed'),
      {
        baseModel: model.id,
      },
    );
    assert.equal(fixed[0]!.rank, 13);

    /** ΔW of one adapter folder read as PEFT reads it: names, shapes, scaling = lora_alpha / r. */
    const peftDelta = (folder: string): Float64Array => {
      const cfg = JSON.parse(readFileSync(join(folder, 'adapter_config.json'), 'utf8'));
      assert.equal(cfg.peft_type, 'LORA');
      assert.deepEqual(cfg.target_modules, ['lm_head']);
      assert.equal(cfg.fan_in_fan_out, false);
      assert.equal(cfg.use_rslora, false);
      const tensors = readAllSafetensors(join(folder, 'adapter_model.safetensors')).tensors;
      assert.deepEqual(Object.keys(tensors).sort(), [
        'base_model.model.lm_head.lora_A.weight',
        'base_model.model.lm_head.lora_B.weight',
      ]);
      const A = tensors['base_model.model.lm_head.lora_A.weight']!;
      const B = tensors['base_model.model.lm_head.lora_B.weight']!;
      assert.deepEqual(A.shape, [cfg.r, d], 'lora_A: [r, in_features]');
      assert.deepEqual(B.shape, [V, cfg.r], 'lora_B: [out_features, r]');
      const scaling = cfg.lora_alpha / cfg.r;
      return product(A, B).map((x) => x * scaling);
    };
    const mood = peftDelta(slots[0]!.dir);
    const base = peftDelta(slots[1]!.dir);
    const fixedDelta = peftDelta(fixed[0]!.dir);

    const prompt = model.tokenizer.encode('Once upon a time there was a little girl');
    const { hidden } = await model.decoder.forward([prompt]);
    const h: Tensor = { dtype: 'float32', shape: [prompt.length, d], data: hidden.data.subarray(0, prompt.length * d) };
    /** logits = h·(W + Σ scale·ΔW)ᵀ with W = E, in float64. */
    const viaAdapters = (parts: [Float64Array, number][]): Float64Array => {
      const W = Float64Array.from(E.data);
      for (const [delta, s] of parts) for (let i = 0; i < W.length; i++) W[i] += s * delta[i]!;
      const out = new Float64Array(prompt.length * V);
      for (let p = 0; p < prompt.length; p++)
        for (let w = 0; w < V; w++) {
          let acc = 0;
          for (let t = 0; t < d; t++) acc += h.data[p * d + t]! * W[w * d + t]!;
          out[p * V + w] = acc;
        }
      return out;
    };
    /** The graph's own steered logits at `values`. */
    const graph = async (values: Record<string, number>) => {
      const scale = set.resolve(values).scale!;
      const r = await model.decoder.forward([prompt], {
        steer: { ...set.directions!, scale: { dtype: 'float32', shape: [1, scale.length], data: scale } },
      });
      return r.logits.data;
    };
    for (const [m, b] of [
      [3, 1],
      [-7, 1],
      [0.5, 0],
      [12, 2],
    ] as const) {
      const want = await graph({ tone: m, 'tone.base': b });
      const unsteered = viaAdapters([]);
      assert.ok(
        want.some((x, i) => Math.abs(x - unsteered[i]!) > 1e-2),
        `the steer at ${m}, ${b} changes the logits`,
      );
      assertClose(
        viaAdapters([
          [mood, m],
          [base, b],
        ]),
        want,
        1e-4,
        `per-slot adapters at tone=${m}, base=${b}`,
      );
    }
    assertClose(viaAdapters([[fixedDelta, 1]]), await graph({ tone: 3 }), 1e-4, 'the fixed-value adapter');
  },
);
