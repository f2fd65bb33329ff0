import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointDir, loadCheckpoint, saveCheckpoint, type Checkpoint } from '../../src/train/checkpoint.js';
import { adamInit } from '../../src/train/adam.js';
import { LmSteerError } from '../../src/util/errors.js';
import { randomTensor } from './fixtures/fakeModel.js';

function sample(step: number): Checkpoint {
  const adam = adamInit([6, 6]);
  adam.step = step;
  adam.m[0]!.fill(0.5);
  adam.v[1]!.fill(0.25);
  return {
    step,
    p1: randomTensor([3, 2], step),
    p2t: randomTensor([2, 3], step + 1),
    adam,
    history: [{ step, loss: 1.5, tokens: 10 }],
    sampler: { seed: 0, epoch: 1, batchInEpoch: 2 },
    options: { lr: 0.01 },
  };
}

test('save/load round trip; older tensors files are removed', () => {
  const out = mkdtempSync(join(tmpdir(), 'lmsteer-ck-'));
  assert.equal(loadCheckpoint(out), undefined);
  saveCheckpoint(out, sample(3));
  saveCheckpoint(out, sample(4));
  const ck = loadCheckpoint(out)!;
  assert.equal(ck.step, 4);
  assert.deepEqual(ck.p1.data, sample(4).p1.data);
  assert.deepEqual(ck.adam.m[0], sample(4).adam.m[0]);
  assert.deepEqual(ck.adam.v[1], sample(4).adam.v[1]);
  assert.equal(ck.adam.step, 4);
  assert.deepEqual(ck.sampler, { seed: 0, epoch: 1, batchInEpoch: 2 });
  assert.deepEqual(ck.options, { lr: 0.01 });
  assert.deepEqual(readdirSync(checkpointDir(out)).sort(), ['checkpoint.json', 'tensors-0000004.safetensors']);
});

test('a damaged checkpoint is BAD_FILE with a hint, not a silent restart', () => {
  const out = mkdtempSync(join(tmpdir(), 'lmsteer-ck-'));
  saveCheckpoint(out, sample(2));
  const t = join(checkpointDir(out), 'tensors-0000002.safetensors');
  const bytes = readFileSync(t);
  bytes[bytes.length - 1] ^= 1;
  writeFileSync(t, bytes);
  assert.throws(
    () => loadCheckpoint(out),
    (e: unknown) =>
      e instanceof LmSteerError && e.code === 'BAD_FILE' && /sha256/.test(e.message) && /delete/.test(e.hint!),
  );
  writeFileSync(join(checkpointDir(out), 'checkpoint.json'), '{"format": ');
  assert.throws(() => loadCheckpoint(out), /not valid JSON/);
});
