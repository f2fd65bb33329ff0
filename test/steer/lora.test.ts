import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportLora, loraWeights } from '../../src/steer/lora.js';
import { matmulTransposed, steeredLogits } from '../../src/steer/math.js';
import { BASE_SLOT, embeddingFingerprint } from '../../src/steer/steer.js';
import { readAllSafetensors } from '../../src/formats/safetensors.js';
import { assertClose, randomSteer, randomTensor, rng } from './randomSteer.js';

function setup() {
  const rand = rng(21);
  const E = randomTensor([13, 6], rand);
  const steer = randomSteer({
    d: 6,
    rank: 3,
    slots: ['pos', 'neg', { name: BASE_SLOT, defaultValue: 1 }],
    eps: 0.01,
    name: 'mood',
    vocab: 13,
  });
  steer.config.baseModel.embeddingFingerprint = embeddingFingerprint(E);
  const h = randomTensor([4, 6], rand, 2);
  return { E, steer, h };
}

/** h·Eᵀ + (h·Aᵀ)·Bᵀ: what PEFT computes with scaling 1. */
function loraLogits(
  h: ReturnType<typeof setup>['h'],
  E: ReturnType<typeof setup>['E'],
  A: ReturnType<typeof setup>['E'],
  B: ReturnType<typeof setup>['E'],
): Float32Array {
  const base = matmulTransposed(h, E);
  const ha = matmulTransposed(h, A); // [n, R]
  const delta = matmulTransposed(ha, B); // [n, V]
  return base.data.map((x, i) => x + delta.data[i]!);
}

test('h·Eᵀ + (h·Aᵀ)·Bᵀ equals the steered logits', () => {
  const { E, steer, h } = setup();
  const values = [3, 0, 1]; // the zero slot is left out: R = 2 slots · rank 3
  const { A, B, rank } = loraWeights(steer, values, E);
  assert.equal(rank, 6);
  assert.deepEqual(
    [A.shape, B.shape],
    [
      [6, 6],
      [13, 6],
    ],
  );
  const want = steeredLogits(h, E, [steer], [[values]]).data;
  assertClose(loraLogits(h, E, A, B), want, 1e-5, 'logits');
  // Not trivially equal to the base model.
  const base = matmulTransposed(h, E).data;
  assert.ok(want.some((x, i) => Math.abs(x - base[i]!) > 1e-3));
});

test('exportLora writes a PEFT adapter whose tensors reproduce the steer', (t) => {
  const { E, steer, h } = setup();
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-lora-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = exportLora(steer, { pos: -2 }, E, dir, { baseModelId: 'org/tiny' });
  assert.deepEqual(out.values, [-2, 0, 1], 'names resolved, defaults applied (dummy 1)');
  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.task_type, 'CAUSAL_LM');
  assert.equal(cfg.r, 6);
  assert.equal(cfg.lora_alpha / cfg.r, 1);
  assert.deepEqual(cfg.target_modules, ['lm_head']);
  assert.equal(cfg.base_model_name_or_path, 'org/tiny');
  assert.equal(cfg.fan_in_fan_out, false);
  assert.equal(cfg.bias, 'none');
  const { tensors } = readAllSafetensors(join(dir, 'adapter_model.safetensors'));
  const A = tensors['base_model.model.lm_head.lora_A.weight']!;
  const B = tensors['base_model.model.lm_head.lora_B.weight']!;
  assertClose(loraLogits(h, E, A, B), steeredLogits(h, E, [steer], [[[-2, 0, 1]]]).data, 1e-5, 'logits');
  assert.match(readFileSync(join(dir, 'README.md'), 'utf8'), /lora_A\.weight = \[\(eps·s_i·P1_i\)ᵀ/);
});

test('exportLora refuses other embeddings (unless forced), all-zero values and bad module names', (t) => {
  const { E, steer } = setup();
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-lora-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const other = randomTensor([13, 6], rng(99));
  assert.throws(
    () => exportLora(steer, [1, 0, 1], other, dir, { baseModelId: 'x' }),
    (e: Error & { code?: string }) => e.code === 'MODEL_MISMATCH',
  );
  exportLora(steer, [1, 0, 1], other, dir, { baseModelId: 'x', force: true, targetModule: 'embed_out' });
  assert.ok(
    readAllSafetensors(join(dir, 'adapter_model.safetensors')).tensors['base_model.model.embed_out.lora_B.weight'],
  );
  assert.throws(() => loraWeights(steer, [0, 0, 0], E), /every steer value is 0/);
  assert.throws(
    () => exportLora(steer, [1, 0, 1], E, dir, { baseModelId: 'x', targetModule: 'a b' }),
    /not a module name/,
  );
});
