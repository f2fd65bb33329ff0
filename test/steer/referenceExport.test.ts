/**
 * `.pt` export: the reference checkpoint layout, read back by lmsteer's own .pt reader (which follows torch's
 * format) bit for bit — import → export → import gives the same steer — and laid out as torch.save lays it out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { importReferenceCheckpoint, referenceCheckpointToSteer } from '../../src/formats/torchPt.js';
import { exportReferenceSteer } from '../../src/steer/referenceExport.js';
import { BASE_SLOT } from '../../src/steer/steer.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';
import { randomSteer } from './randomSteer.js';

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const base = { id: 'tiny', embeddingFingerprint: 'emb1-x', vocabSize: 512, hiddenSize: 64 };

test(
  'the reference sample: import → export → import is bit-exact, args and steps kept',
  { skip: skipUnlessShared('steers/reference-format/stories260K-sample.pt') },
  (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'lmsteer-pt-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const src = sharedPath('steers/reference-format/stories260K-sample.pt')!;
    const ckpt = importReferenceCheckpoint(src);
    const first = referenceCheckpointToSteer(ckpt, base, { slotNames: ['mood'] });
    const out = join(dir, 'again.pt');
    exportReferenceSteer(first, out);
    const back = importReferenceCheckpoint(out);
    assert.ok(bits(back.projector1.data).equals(bits(ckpt.projector1.data)));
    assert.ok(bits(back.projector2.data).equals(bits(ckpt.projector2.data)));
    assert.deepEqual(back.projector1.shape, ckpt.projector1.shape);
    assert.equal(back.steps, ckpt.steps);
    const { lmsteer_slot_names, ...args } = back.args;
    assert.deepEqual(lmsteer_slot_names, ['mood']);
    assert.deepEqual(args, ckpt.args, 'the training flags come back as the reference wrote them');
    const second = referenceCheckpointToSteer(back, base);
    assert.deepEqual({ ...second.config, source: undefined }, { ...first.config, source: undefined });
    assert.deepEqual(second.config.source!.referenceArgs, first.config.source!.referenceArgs);
    assert.throws(() => exportReferenceSteer(first, out), /already exists/);
    exportReferenceSteer(first, out, { overwrite: true });

    // torch.save's layout: one archive folder, stored entries, data 64-byte aligned, version 3, little-endian.
    const bytes = readFileSync(out);
    const names = Object.keys(unzipSync(bytes));
    assert.deepEqual(names, ['again/data.pkl', 'again/byteorder', 'again/data/0', 'again/data/1', 'again/version']);
    for (let off = 0; bytes.readUInt32LE(off) === 0x04034b50;) {
      assert.equal(bytes.readUInt16LE(off + 8), 0, 'stored, not deflated');
      const size = bytes.readUInt32LE(off + 18);
      const data = off + 30 + bytes.readUInt16LE(off + 26) + bytes.readUInt16LE(off + 28);
      assert.equal(data % 64, 0, `entry at ${off}: data at ${data}`);
      off = data + size;
    }
  },
);

test('a steer trained in lmsteer exports with its eps, rank, base slot and names', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-pt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const steer = randomSteer({
    d: 64,
    rank: 3,
    slots: ['joy', 'anger', { name: BASE_SLOT, defaultValue: 1 }],
    eps: 2.5e-3,
    name: 'emo',
    seed: 9,
  });
  steer.config.baseModel = base;
  steer.config.training = { steps: 1234, lr: 0.01, dataset: 'mine.tsv' };
  exportReferenceSteer(steer, join(dir, 'emo.pt'));
  const ckpt = importReferenceCheckpoint(join(dir, 'emo.pt'));
  assert.equal(ckpt.args.epsilon, 2.5e-3);
  assert.equal(ckpt.args.num_steers, 3);
  assert.equal(ckpt.args.dummy_steer, 2);
  assert.equal(ckpt.args.adaptor_class, 'multiply');
  assert.equal(ckpt.steps, 1234);
  const back = referenceCheckpointToSteer(ckpt, base);
  assert.equal(back.config.name, 'emo');
  assert.deepEqual(back.config.slots, steer.config.slots);
  assert.ok(bits(back.p1.data).equals(bits(steer.p1.data)));
  assert.ok(bits(back.p2.data).equals(bits(steer.p2.data)));
  steer.config.slots[0]!.defaultValue = 2;
  assert.throws(() => exportReferenceSteer(steer, join(dir, 'bad.pt')), /slot defaults/);
});
