import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strToU8, unzipSync, zipSync } from 'fflate';
import {
  importReferenceCheckpoint,
  loadTorchBytes,
  PT_LIMITS,
  referenceCheckpointToSteer,
} from '../../src/formats/torchPt.js';
import { readAllSafetensors } from '../../src/formats/safetensors.js';
import { f16ToF32, f32ToF16 } from '../../src/formats/halfFloat.js';
import { BASE_SLOT, type BaseModelInfo } from '../../src/steer/steer.js';
import type { Tensor } from '../../src/util/tensor.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';
import { Pickle, smallTensorSpec, torchSave, type TensorSpec } from '../helpers/torchSave.js';

const PT = ['steers', 'reference-format', 'stories260K-sample.pt'];
const EXPECTED = ['steers', 'reference-format', 'stories260K-sample.expected.safetensors'];
const base: BaseModelInfo = { id: 'stories260K', embeddingFingerprint: 'emb1-x', vocabSize: 512, hiddenSize: 64 };
type E = Error & { code?: string; hint?: string };

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-pt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function expected(): { p1: Tensor; p2: Tensor } {
  const { tensors } = readAllSafetensors(sharedPath(...EXPECTED)!);
  return { p1: tensors.projector1!, p2: tensors.projector2! };
}

const ARGS = {
  epsilon: 0.002,
  rank: 16,
  num_steers: 2,
  dummy_steer: null,
  adaptor_class: 'multiply',
  adapted_component: 'final_layer',
  model_name: 'stories260K',
};

test(
  'the reference sample imports to exactly the expected tensors',
  { skip: skipUnlessShared(...PT) || skipUnlessShared(...EXPECTED) },
  () => {
    const ckpt = importReferenceCheckpoint(sharedPath(...PT)!);
    const want = expected();
    assert.deepEqual(ckpt.projector1, want.p1);
    assert.deepEqual(ckpt.projector2, want.p2);
    assert.equal(ckpt.steps, 1000);
    assert.equal(ckpt.args.epsilon, 0.001);
    assert.equal(ckpt.args.dummy_steer, 1);

    const steer = referenceCheckpointToSteer(ckpt, base, { name: 'sample' });
    assert.equal(steer.config.eps, 0.001);
    assert.equal(steer.config.rank, 16);
    assert.deepEqual(steer.config.slots, [
      { name: 'slot0', defaultValue: 0 },
      { name: BASE_SLOT, defaultValue: 1 },
    ]);
    assert.equal(steer.config.source?.kind, 'reference-pt');
    assert.equal(steer.config.training?.steps, 1000);
    assert.equal(JSON.parse(JSON.stringify(steer.config)).source.referenceArgs.model_name, 'stories260K');
  },
);

test('fp16 tensors are widened to float32', { skip: skipUnlessShared(...EXPECTED) }, (t) => {
  const want = expected();
  const n = want.p1.data.length;
  const h1 = f32ToF16(want.p1.data);
  const h2 = f32ToF16(want.p2.data);
  const spec = (key: string): TensorSpec => ({
    key,
    storage: 'HalfStorage',
    numel: n,
    offset: 0,
    size: [2, 64, 16],
    stride: [1024, 16, 1],
    parameter: false,
  });
  const file = join(tmp(t), 'half.pt');
  writeFileSync(
    file,
    torchSave(ARGS, [spec('0'), spec('1')], { '0': new Uint8Array(h1.buffer), '1': new Uint8Array(h2.buffer) }),
  );
  const ckpt = importReferenceCheckpoint(file);
  assert.deepEqual(ckpt.projector1.data, f16ToF32(h1));
  assert.deepEqual(ckpt.projector2.data, f16ToF32(h2));
  assert.equal(ckpt.steps, 7);
  const steer = referenceCheckpointToSteer(ckpt, base);
  assert.equal(steer.config.eps, 0.002);
  assert.deepEqual(
    steer.config.slots.map((s) => s.name),
    ['slot0', 'slot1'],
    'no dummy slot when dummy_steer is None',
  );
});

test(
  'nn.Parameter-wrapped, strided and offset tensors (protocol 4 opcodes) import exactly',
  { skip: skipUnlessShared(...EXPECTED) },
  (t) => {
    const want = expected();
    const [S, d, r] = [2, 64, 16];
    // projector2 stored transposed ([S, r, d] in memory, stride (r·d, 1, d)) after 3 unused leading floats.
    const storage2 = new Float32Array(3 + S * d * r);
    for (let s = 0; s < S; s++)
      for (let i = 0; i < d; i++)
        for (let j = 0; j < r; j++) storage2[3 + s * r * d + j * d + i] = want.p2.data[s * d * r + i * r + j]!;
    const specs: [TensorSpec, TensorSpec] = [
      {
        key: '0',
        storage: 'FloatStorage',
        numel: S * d * r,
        offset: 0,
        size: [S, d, r],
        stride: [d * r, r, 1],
        parameter: true,
      },
      {
        key: '1',
        storage: 'FloatStorage',
        numel: storage2.length,
        offset: 3,
        size: [S, d, r],
        stride: [d * r, 1, d],
        parameter: true,
      },
    ];
    const file = join(tmp(t), 'param.pt');
    writeFileSync(
      file,
      torchSave(
        { ...ARGS, dummy_steer: 0 },
        specs,
        { '0': new Uint8Array(want.p1.data.slice().buffer), '1': new Uint8Array(storage2.buffer) },
        { protocol4: true, steps: 70000 },
      ),
    );
    const ckpt = importReferenceCheckpoint(file);
    assert.deepEqual(ckpt.projector1, want.p1);
    assert.deepEqual(ckpt.projector2, want.p2);
    assert.equal(ckpt.steps, 70000);
    const steer = referenceCheckpointToSteer(ckpt, base, { slotNames: ['positive'] });
    assert.deepEqual(
      steer.config.slots.map((s) => s.name),
      [BASE_SLOT, 'positive'],
    );
  },
);

test('big-endian storages (byteorder "big") are byte-swapped', () => {
  const values = new Float32Array([1.5, -2, 3.25, 1e-3]);
  const be = Buffer.alloc(16);
  values.forEach((v, i) => be.writeFloatBE(v, i * 4));
  const half = Buffer.alloc(8);
  f32ToF16(values).forEach((h, i) => half.writeUInt16BE(h, i * 2));
  const specs: [TensorSpec, TensorSpec] = [
    { key: '0', storage: 'FloatStorage', numel: 4, offset: 0, size: [1, 2, 2], stride: [4, 2, 1], parameter: false },
    { key: '1', storage: 'HalfStorage', numel: 4, offset: 0, size: [1, 2, 2], stride: [4, 2, 1], parameter: false },
  ];
  const v = loadTorchBytes(torchSave(ARGS, specs, { '0': be, '1': half }, { byteorder: 'big' })) as unknown[];
  const state = v[1] as Map<string, Tensor>;
  assert.deepEqual(state.get('projector1')!.data, values);
  assert.deepEqual(state.get('projector2')!.data, f16ToF32(f32ToF16(values)));
});

test('a checkpoint whose pickle calls os.system is refused and runs nothing', (t) => {
  const dir = tmp(t);
  const marker = join(dir, 'pwned');
  const pkl = Buffer.concat([
    Buffer.from('\x80\x02cos\nsystem\n(', 'latin1'),
    new Pickle().str(`touch ${marker}`).bytes().subarray(0, -1),
    Buffer.from('tR.', 'latin1'),
  ]);
  const file = join(dir, 'evil.pt');
  writeFileSync(file, zipSync({ 'evil/data.pkl': pkl, 'evil/version': strToU8('3\n') }, { level: 0 }));
  assert.throws(
    () => importReferenceCheckpoint(file),
    (e: E) => e.code === 'BAD_FILE' && /os\.system/.test(e.message),
  );
  assert.throws(() => readFileSync(marker), /ENOENT/);
});

test(
  'truncated zips, zips without data.pkl, legacy files and missing storages give clear errors',
  { skip: skipUnlessShared(...PT) },
  (t) => {
    const bytes = readFileSync(sharedPath(...PT)!);
    assert.throws(
      () => loadTorchBytes(bytes.subarray(0, bytes.length >> 1), 'cut.pt'),
      (e: E) => e.code === 'BAD_FILE' && /cut\.pt: cannot read its zip/.test(e.message),
    );
    assert.throws(
      () => loadTorchBytes(zipSync({ 'a/version': strToU8('3') }), 'nopkl.pt'),
      (e: E) => e.code === 'BAD_FILE' && /no data\.pkl/.test(e.message),
    );
    assert.throws(
      () => loadTorchBytes(Buffer.from('\x80\x02\x8a\x0a', 'latin1'), 'old.pt'),
      (e: E) => e.code === 'UNSUPPORTED' && /legacy/.test(e.message),
    );
    assert.throws(
      () => loadTorchBytes(Buffer.from('hello'), 'txt.pt'),
      (e: E) => e.code === 'BAD_FILE',
    );
    assert.throws(
      () => importReferenceCheckpoint(join(tmp(t), 'absent.pt')),
      (e: E) => e.code === 'NOT_FOUND',
    );
    // data.pkl refers to data/0 and data/1; drop data/1.
    const zip = torchSave(ARGS, [smallTensorSpec('0'), smallTensorSpec('1')], { '0': new Uint8Array(16) });
    assert.throws(
      () => loadTorchBytes(zip, 'partial.pt'),
      (e: E) => e.code === 'BAD_FILE' && /data\/1 is missing/.test(e.message),
    );
    // A storage too small for the tensor's view.
    const big = { ...smallTensorSpec('1'), size: [1, 2, 3], stride: [6, 3, 1] };
    assert.throws(
      () =>
        loadTorchBytes(
          torchSave(ARGS, [smallTensorSpec('0'), big], { '0': new Uint8Array(16), '1': new Uint8Array(16) }),
          'small.pt',
        ),
      /reads past its storage|more elements than its storage/,
    );
  },
);

test(
  'a steer for another width is refused as MODEL_MISMATCH naming both models',
  { skip: skipUnlessShared(...PT) },
  () => {
    const ckpt = importReferenceCheckpoint(sharedPath(...PT)!);
    assert.throws(
      () => referenceCheckpointToSteer(ckpt, { ...base, id: 'gpt2', hiddenSize: 768 }),
      (e: E) =>
        e.code === 'MODEL_MISMATCH' &&
        /trained on stories260K/.test(e.message) &&
        /gpt2 has hidden size 768/.test(e.message),
    );
    assert.throws(
      () => referenceCheckpointToSteer({ ...ckpt, args: { ...ckpt.args, dummy_steer: 5 } }, base),
      /dummy_steer is 5/,
    );
    assert.throws(
      () => referenceCheckpointToSteer({ ...ckpt, args: { ...ckpt.args, adapted_component: 'input_embedding' } }, base),
      (e: E) => e.code === 'UNSUPPORTED',
    );
  },
);

// ---- hostile files: nothing is allocated from an unchecked size ----

const data4 = () => ({ '0': new Uint8Array(16), '1': new Uint8Array(16) });

test('zip entries the pickle does not reference are never inflated', () => {
  // An extra entry whose deflate stream is invalid: inflating it would fail, so loading proves it was skipped.
  const base = torchSave(ARGS, [smallTensorSpec('0'), smallTensorSpec('1')], data4());
  const files: Record<string, Uint8Array> = unzipSync(base);
  files['archive/data/junk'] = new Uint8Array(4096).fill(7);
  const zip = zipSync(files, { level: 6 });
  const name = Buffer.from('archive/data/junk');
  const at = Buffer.from(zip).indexOf(name); // the local header's copy of the name comes first
  const extra = zip[at - 2]! | (zip[at - 1]! << 8);
  zip[at + name.length + extra] = 0xff; // BTYPE 11: an invalid deflate block
  const v = loadTorchBytes(zip, 'junk.pt') as unknown[];
  assert.deepEqual((v[1] as Map<string, Tensor>).get('projector1')!.shape, [1, 2, 2]);
});

test('a referenced storage that inflates beyond what its tensors need is refused before inflating', () => {
  const zip = torchSave(ARGS, [smallTensorSpec('0'), smallTensorSpec('1')], {
    '0': new Uint8Array(1 << 20),
    '1': new Uint8Array(16),
  });
  const deflated = zipSync(unzipSync(zip), { level: 6 }); // 1 MiB of zeros → ~1 KB
  assert.throws(
    () => loadTorchBytes(deflated, 'bomb.pt'),
    (e: E) => e.code === 'BAD_FILE' && /bomb\.pt: zip entry archive\/data\/0 inflates to 1048576 bytes/.test(e.message),
  );
});

test('too many zip entries, or storages bigger than the budget, are refused', () => {
  const zip = torchSave(ARGS, [smallTensorSpec('0'), smallTensorSpec('1')], data4());
  const saved = PT_LIMITS.entries;
  PT_LIMITS.entries = 4; // the file has 5
  try {
    assert.throws(
      () => loadTorchBytes(zip, 'many.pt'),
      (e: E) => e.code === 'BAD_FILE' && /more than 4 entries/.test(e.message),
    );
  } finally {
    PT_LIMITS.entries = saved;
  }
  const huge = torchSave(ARGS, [smallTensorSpec('0', { numel: 1_000_000_000 }), smallTensorSpec('1')], data4());
  assert.throws(
    () => loadTorchBytes(huge, 'huge.pt'),
    (e: E) => e.code === 'BAD_FILE' && /need more than/.test(e.message),
  );
});

test('stride-0 views, negative offsets and astronomic sizes are refused before allocating', () => {
  const cases: [string, Partial<TensorSpec>, RegExp][] = [
    ['stride0', { size: [1, 64, 50_000_000], stride: [0, 0, 0] }, /more elements than its storage of 4/],
    ['cube', { size: [1_000_000, 1_000_000, 1_000_000], stride: [0, 0, 0] }, /more elements than its storage/],
    ['negoffset', { offset: -64 }, /storage offset -64/],
    ['negstride', { stride: [4, -2, 1] }, /malformed/],
  ];
  for (const [name, over, re] of cases) {
    const zip = torchSave(ARGS, [smallTensorSpec('0', over), smallTensorSpec('1')], data4());
    assert.throws(
      () => loadTorchBytes(zip, `${name}.pt`),
      (e: E) => e.code === 'BAD_FILE' && re.test(e.message),
      name,
    );
  }
});
