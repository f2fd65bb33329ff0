import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSteer, saveSteer } from '../../src/steer/steerFile.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { BASE_SLOT } from '../../src/steer/steer.js';
import { tensor } from '../../src/util/tensor.js';
import { randomSteer } from './randomSteer.js';

type E = Error & { code?: string; hint?: string };

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-steerfile-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('saveSteer then loadSteer round-trips tensors and config exactly', (t) => {
  const dir = join(tmp(t), 'detox');
  const s = randomSteer({ d: 6, rank: 2, slots: ['toxic', { name: BASE_SLOT, defaultValue: 1 }], eps: 2e-3 });
  s.config.training = { dataset: 'jigsaw', steps: 10, custom: [1, 2] };
  s.config.metrics = { ppl: 12.5 };
  saveSteer(dir, s);
  assert.ok(existsSync(join(dir, 'steer.json')) && existsSync(join(dir, 'steer.safetensors')));
  const back = loadSteer(dir, { expectFingerprint: 'emb1-test' });
  assert.deepEqual(back.p1, s.p1);
  assert.deepEqual(back.p2, s.p2);
  assert.deepEqual(back.config, { ...s.config, name: 'detox' }, 'the folder name becomes the steer name');
  // A path to a file inside the folder works too.
  assert.deepEqual(loadSteer(join(dir, 'steer.json')).p1, s.p1);
});

test('a steer for another base model is refused naming both, unless forced', (t) => {
  const dir = tmp(t);
  saveSteer(dir, randomSteer({ d: 4, rank: 1, slots: ['a'] }));
  assert.throws(
    () => loadSteer(dir, { expectFingerprint: 'emb1-other', expectModelId: 'gpt2' }),
    (e: E) =>
      e.code === 'MODEL_MISMATCH' &&
      /test\/tiny/.test(e.message) &&
      /gpt2/.test(e.message) &&
      /--force/.test(e.hint ?? ''),
  );
  assert.equal(loadSteer(dir, { expectFingerprint: 'emb1-other', force: true }).config.rank, 1);
  assert.throws(
    () => loadSteer(dir, { expectHiddenSize: 8, force: true }),
    (e: E) => e.code === 'MODEL_MISMATCH' && /hidden size 8/.test(e.message),
  );
});

test('missing files, bad JSON, bad fields, future versions and wrong shapes give clear errors', (t) => {
  const root = tmp(t);
  assert.throws(
    () => loadSteer(join(root, 'nope')),
    (e: E) => e.code === 'NOT_FOUND',
  );
  const dir = join(root, 's');
  saveSteer(dir, randomSteer({ d: 4, rank: 2, slots: ['a'] }));
  const json = readFileSync(join(dir, 'steer.json'), 'utf8');

  writeFileSync(join(dir, 'steer.json'), '{ "formatVersion": 1, ');
  assert.throws(
    () => loadSteer(dir),
    (e: E) => e.code === 'BAD_FILE' && /steer\.json is not valid JSON/.test(e.message),
  );

  writeFileSync(join(dir, 'steer.json'), JSON.stringify({ ...JSON.parse(json), formatVersion: 7 }));
  assert.throws(
    () => loadSteer(dir),
    (e: E) => e.code === 'UNSUPPORTED' && /formatVersion 7/.test(e.message),
  );

  writeFileSync(join(dir, 'steer.json'), JSON.stringify({ ...JSON.parse(json), eps: 'big' }));
  assert.throws(
    () => loadSteer(dir),
    (e: E) => e.code === 'BAD_FILE' && /eps/.test(e.message),
  );

  writeFileSync(join(dir, 'steer.json'), JSON.stringify({ ...JSON.parse(json), rank: 3 }));
  assert.throws(
    () => loadSteer(dir),
    (e: E) => e.code === 'SHAPE_MISMATCH' && /projector1/.test(e.message),
  );

  writeFileSync(join(dir, 'steer.json'), json);
  writeSafetensors(join(dir, 'steer.safetensors'), { projector1: tensor([1, 4, 2]) });
  assert.throws(
    () => loadSteer(dir),
    (e: E) => e.code === 'BAD_FILE' && /no tensor "projector2"/.test(e.message),
  );

  unlinkSync(join(dir, 'steer.safetensors'));
  assert.throws(
    () => loadSteer(dir),
    (e: E) => e.code === 'NOT_FOUND' && /no steer\.safetensors/.test(e.message),
  );
  unlinkSync(join(dir, 'steer.json'));
  assert.throws(
    () => loadSteer(dir),
    (e: E) => e.code === 'NOT_FOUND' && /steer\.json is missing/.test(e.message),
  );
});

test('a .pt path is pointed at the import', (t) => {
  const f = join(tmp(t), 'x.pt');
  writeFileSync(f, 'PK');
  assert.throws(
    () => loadSteer(f),
    (e: E) => e.code === 'BAD_ARGUMENT' && /PyTorch checkpoint/.test(e.message),
  );
});

test('saveSteer refuses an invalid steer and writes nothing', (t) => {
  const dir = join(tmp(t), 'bad');
  const s = randomSteer({ d: 4, rank: 1, slots: ['a'] });
  s.p1.data[0] = Infinity;
  assert.throws(() => saveSteer(dir, s), /Infinity/);
  assert.ok(!existsSync(join(dir, 'steer.json')));
});
