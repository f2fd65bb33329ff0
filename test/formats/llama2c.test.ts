import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLlama2c, permuteRopeRows } from '../../src/formats/llama2c.js';
import { openSafetensors } from '../../src/formats/safetensors.js';
import type { WeightStore } from '../../src/formats/weights.js';
import { LmSteerError } from '../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const root = mkdtempSync(join(tmpdir(), 'lmsteer-l2c-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function write(parts: (Uint8Array | ArrayBufferView)[]): string {
  const p = join(root, `m${n++}.bin`);
  writeFileSync(p, Buffer.concat(parts.map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength))));
  return p;
}
const isErr =
  (code: string, ...parts: string[]) =>
  (e: unknown) =>
    e instanceof LmSteerError && e.code === code && parts.every((p) => e.message.includes(p)) && !!e.hint;

const MODEL = 'models/stories260K/llama2c/model.bin';
const HF = 'models/stories260K/hf';

/** The legacy file's arrays, read by plain offset arithmetic (independent of the reader under test). */
function legacyArrays(path: string) {
  const buf = readFileSync(path);
  const [dim, hid, L, H, KV, V, S] = Array.from(new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + 28)));
  const f = new Float32Array(buf.buffer.slice(buf.byteOffset + 28, buf.byteOffset + buf.length));
  const hd = dim / H,
    kv = hd * KV;
  const sizes: [string, number][] = [
    ['emb', V * dim],
    ['rms_att', L * dim],
    ['wq', L * dim * dim],
    ['wk', L * kv * dim],
    ['wv', L * kv * dim],
    ['wo', L * dim * dim],
    ['rms_ffn', L * dim],
    ['w1', L * hid * dim],
    ['w2', L * dim * hid],
    ['w3', L * hid * dim],
    ['rms_final', dim],
    ['fr', (S * hd) / 2],
    ['fi', (S * hd) / 2],
  ];
  const a: Record<string, Float32Array> = {};
  let o = 0;
  for (const [k, s] of sizes) {
    a[k] = f.slice(o, o + s);
    o += s;
  }
  assert.equal(o, f.length);
  return { hdr: { dim, hid, L, H, KV, V, S }, a };
}

function v1Header(version: number, ints: number[], shared: number, groupSize?: number): Uint8Array {
  const h = new Uint8Array(256);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, 0x616b3432, true);
  dv.setInt32(4, version, true);
  ints.forEach((v, i) => dv.setInt32(8 + 4 * i, v, true));
  dv.setUint8(36, shared);
  if (groupSize !== undefined) dv.setInt32(37, groupSize, true);
  return h;
}

function assertSameWeights(
  got: WeightStore,
  want: WeightStore,
  close = (x: number, y: number, _name: string) => x === y || (Number.isNaN(x) && Number.isNaN(y)),
): void {
  assert.deepEqual(got.names().sort(), want.names().sort());
  for (const name of want.names()) {
    const g = got.get(name),
      w = want.get(name);
    assert.deepEqual(g.shape, w.shape, name);
    assert.deepEqual(got.shape(name), w.shape, name);
    for (let i = 0; i < w.data.length; i++) {
      if (!close(g.data[i], w.data[i], name)) assert.fail(`${name}[${i}]: ${g.data[i]} vs ${w.data[i]}`);
    }
  }
}

test('permuteRopeRows moves interleaved pairs into rotate_half halves, per head', () => {
  // 2 heads of head_dim 4, 1 column: rows 0..7 → head 0 [0,2,1,3], head 1 [4,6,5,7].
  assert.deepEqual([...permuteRopeRows(Float32Array.of(0, 1, 2, 3, 4, 5, 6, 7), 8, 1, 2)], [0, 2, 1, 3, 4, 6, 5, 7]);
  // 1 head of head_dim 6, 2 columns: new row j*3+i = old row 2i+j → [0,2,4,1,3,5].
  assert.deepEqual(
    [...permuteRopeRows(Float32Array.of(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5), 6, 2, 1)],
    [0, 0, 2, 2, 4, 4, 1, 1, 3, 3, 5, 5],
  );
});

test(
  'stories260K llama2c/model.bin (v0) = hf/model.safetensors exactly; config matches config.json',
  { skip: skipUnlessShared(MODEL) },
  () => {
    const { config, weights, header } = openLlama2c(sharedPath(MODEL)!);
    const hf = openSafetensors(join(sharedPath(HF)!, 'model.safetensors'));
    try {
      assert.equal(header.version, 0);
      assertSameWeights(weights, hf);
      const want = JSON.parse(readFileSync(join(sharedPath(HF)!, 'config.json'), 'utf8'));
      for (const k of [
        'model_type',
        'hidden_size',
        'intermediate_size',
        'num_hidden_layers',
        'num_attention_heads',
        'num_key_value_heads',
        'head_dim',
        'vocab_size',
        'max_position_embeddings',
        'rms_norm_eps',
        'rope_theta',
        'tie_word_embeddings',
        'bos_token_id',
        'eos_token_id',
        'hidden_act',
        'architectures',
      ]) {
        assert.deepEqual(config[k], want[k], k);
      }
      assert.equal(weights.has('lm_head.weight'), false);
      assert.throws(() => weights.get('lm_head.weight'), isErr('NOT_FOUND', 'lm_head.weight', 'model.bin'));
    } finally {
      weights.close();
      hf.close();
    }
  },
);

test(
  'v1 (ak42, fp32) and an untied v0 give the same tensors; untied adds lm_head.weight',
  { skip: skipUnlessShared(MODEL) },
  () => {
    const { hdr, a } = legacyArrays(sharedPath(MODEL)!);
    const ints = [hdr.dim, hdr.hid, hdr.L, hdr.H, hdr.KV, hdr.V, hdr.S];
    const hf = openSafetensors(join(sharedPath(HF)!, 'model.safetensors'));
    const cls = a.emb.map((v) => v * 2);
    try {
      const v1 = openLlama2c(
        write([
          v1Header(1, ints, 1),
          a.rms_att,
          a.rms_ffn,
          a.rms_final,
          a.emb,
          a.wq,
          a.wk,
          a.wv,
          a.wo,
          a.w1,
          a.w2,
          a.w3,
        ]),
      );
      assert.equal(v1.header.version, 1);
      assert.equal(v1.config.tie_word_embeddings, true);
      assertSameWeights(v1.weights, hf);
      v1.weights.close();

      const v1u = openLlama2c(
        write([
          v1Header(1, ints, 0),
          a.rms_att,
          a.rms_ffn,
          a.rms_final,
          a.emb,
          a.wq,
          a.wk,
          a.wv,
          a.wo,
          a.w1,
          a.w2,
          a.w3,
          cls,
        ]),
      );
      assert.equal(v1u.config.tie_word_embeddings, false);
      assert.deepEqual([...v1u.weights.get('lm_head.weight').data], [...cls]);
      v1u.weights.close();

      const untied = Int32Array.from(ints);
      untied[5] = -hdr.V; // legacy: negative vocab_size = separate classifier at the end
      const v0u = openLlama2c(
        write([
          untied,
          a.emb,
          a.rms_att,
          a.wq,
          a.wk,
          a.wv,
          a.wo,
          a.rms_ffn,
          a.w1,
          a.w2,
          a.w3,
          a.rms_final,
          a.fr,
          a.fi,
          cls,
        ]),
      );
      assert.equal(v0u.config.tie_word_embeddings, false);
      assert.equal(v0u.config.vocab_size, hdr.V);
      assert.deepEqual([...v0u.weights.get('lm_head.weight').data], [...cls]);
      assert.deepEqual(
        v0u.weights.get('model.layers.4.self_attn.k_proj.weight'),
        hf.get('model.layers.4.self_attn.k_proj.weight'),
      );
      v0u.weights.close();
    } finally {
      hf.close();
    }
  },
);

/** llama2.c export.py quantize_q80 per layer: int8 values then one f32 scale per group. */
function q80(w: Float32Array, layers: number, gs: number): { bytes: Uint8Array[]; deq: Float32Array } {
  const per = w.length / layers;
  const bytes: Uint8Array[] = [];
  const deq = new Float32Array(w.length);
  for (let l = 0; l < layers; l++) {
    const q = new Int8Array(per),
      s = new Float32Array(per / gs);
    for (let g = 0; g < per / gs; g++) {
      let max = 0;
      for (let i = 0; i < gs; i++) max = Math.max(max, Math.abs(w[l * per + g * gs + i]));
      s[g] = max / 127;
      for (let i = 0; i < gs; i++) {
        const k = g * gs + i;
        q[k] = Math.round(w[l * per + k] / s[g]);
        deq[l * per + k] = Math.fround(q[k] * s[g]);
      }
    }
    bytes.push(new Uint8Array(q.buffer), new Uint8Array(s.buffer));
  }
  return { bytes, deq };
}

test('v2 (Q8_0) dequantizes to q·scale, close to the fp32 weights', { skip: skipUnlessShared(MODEL) }, () => {
  const { hdr, a } = legacyArrays(sharedPath(MODEL)!);
  const ints = [hdr.dim, hdr.hid, hdr.L, hdr.H, hdr.KV, hdr.V, hdr.S];
  const gs = 32;
  const mats = {
    emb: q80(a.emb, 1, gs),
    wq: q80(a.wq, hdr.L, gs),
    wk: q80(a.wk, hdr.L, gs),
    wv: q80(a.wv, hdr.L, gs),
    wo: q80(a.wo, hdr.L, gs),
    w1: q80(a.w1, hdr.L, gs),
    w2: q80(a.w2, hdr.L, gs),
    w3: q80(a.w3, hdr.L, gs),
  };
  const parts = [
    v1Header(2, ints, 1, gs),
    a.rms_att,
    a.rms_ffn,
    a.rms_final,
    ...Object.values(mats).flatMap((m) => m.bytes),
  ];
  const v2 = openLlama2c(write(parts));
  // The expected store: the v0 reader over a v0 file of the dequantized values.
  const v0 = openLlama2c(
    write([
      Int32Array.from(ints),
      mats.emb.deq,
      a.rms_att,
      mats.wq.deq,
      mats.wk.deq,
      mats.wv.deq,
      mats.wo.deq,
      a.rms_ffn,
      mats.w1.deq,
      mats.w2.deq,
      mats.w3.deq,
      a.rms_final,
      a.fr,
      a.fi,
    ]),
  );
  const hf = openSafetensors(join(sharedPath(HF)!, 'model.safetensors'));
  try {
    assert.equal(v2.header.groupSize, gs);
    assertSameWeights(v2.weights, v0.weights);
    assertSameWeights(v2.weights, hf, (x, y) => Math.abs(x - y) < 0.02);
  } finally {
    v2.weights.close();
    v0.weights.close();
    hf.close();
  }
});

test(
  'truncated or oversized files are BAD_FILE naming expected and actual bytes',
  { skip: skipUnlessShared(MODEL) },
  () => {
    const full = readFileSync(sharedPath(MODEL)!);
    const cut = write([full.subarray(0, full.length - 100)]);
    assert.throws(
      () => openLlama2c(cut),
      isErr('BAD_FILE', cut, `${full.length - 100} bytes`, `implies ${full.length} bytes`, 'dim 64'),
    );
    assert.throws(
      () => openLlama2c(cut),
      (e: unknown) => e instanceof LmSteerError && /truncated/.test(e.hint ?? ''),
    );
    const big = write([full, new Uint8Array(4)]);
    assert.throws(
      () => openLlama2c(big),
      isErr('BAD_FILE', `${full.length + 4} bytes`, `implies ${full.length} bytes`),
    );
    const tiny = write([full.subarray(0, 20)]);
    assert.throws(() => openLlama2c(tiny), isErr('BAD_FILE', tiny, '20 bytes'));
  },
);

test('nonsense headers are BAD_FILE naming the field; unknown versions UNSUPPORTED', () => {
  const legacy = (ints: number[]) => openLlama2c(write([Int32Array.from(ints), new Float32Array(16)]));
  assert.throws(() => legacy([0, 172, 5, 8, 4, 512, 512]), isErr('BAD_FILE', 'dim is 0'));
  assert.throws(() => legacy([64, 172, -5, 8, 4, 512, 512]), isErr('BAD_FILE', 'n_layers is -5'));
  assert.throws(() => legacy([64, 172, 5, 7, 7, 512, 512]), isErr('BAD_FILE', 'n_heads 7 does not divide dim 64'));
  assert.throws(
    () => legacy([64, 172, 5, 8, 3, 512, 512]),
    isErr('BAD_FILE', 'n_kv_heads 3 does not divide n_heads 8'),
  );
  assert.throws(() => legacy([64, 172, 5, 64, 64, 512, 512]), isErr('BAD_FILE', 'head size 1 is odd'));
  const ints = [64, 172, 5, 8, 4, 512, 512];
  assert.throws(() => openLlama2c(write([v1Header(3, ints, 1)])), isErr('UNSUPPORTED', 'version 3'));
  assert.throws(() => openLlama2c(write([v1Header(1, ints, 7)])), isErr('BAD_FILE', 'shared_classifier'));
  assert.throws(
    () => openLlama2c(write([v1Header(1, [64, 172, 5, 8, 4, -512, 512], 1)])),
    isErr('BAD_FILE', 'vocab_size is -512'),
  );
  assert.throws(() => openLlama2c(write([v1Header(2, ints, 1, 0)])), isErr('BAD_FILE', 'group_size 0'));
  assert.throws(() => openLlama2c(write([v1Header(2, ints, 1, 48)])), isErr('BAD_FILE', 'group_size 48'));
  assert.throws(() => openLlama2c(write([v1Header(1, ints, 1).subarray(0, 100)])), isErr('BAD_FILE', '100 bytes'));
  assert.throws(() => openLlama2c(join(root, 'absent.bin')), isErr('NOT_FOUND', 'absent.bin'));
});
