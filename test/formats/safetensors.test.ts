import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  openSafetensors,
  openSafetensorsModel,
  readAllSafetensors,
  writeSafetensors,
} from '../../src/formats/safetensors.js';
import { LmSteerError, type ErrorCode } from '../../src/util/errors.js';
import { tensor } from '../../src/util/tensor.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const root = mkdtempSync(join(tmpdir(), 'lmsteer-st-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const tmp = (name = 'f.safetensors') => {
  const d = join(root, String(n++));
  mkdirSync(d);
  return join(d, name);
};

/** A safetensors file with a hand-made header (object or raw text) and data section. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLen?: bigint): string {
  const p = tmp();
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(h.length));
  writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

function throwsCode(fn: () => unknown, code: ErrorCode, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LmSteerError, `expected LmSteerError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const p of parts)
      assert.match(e.message, typeof p === 'string' ? new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : p);
    assert.ok(e.hint, 'has a hint');
    return true;
  });
}

test('F32 round trip with metadata, in order, header padded to 8 bytes', () => {
  const p = tmp();
  const a = tensor([2, 3], Float32Array.of(1, -2, 3.5, 1e-30, -0, 7));
  const b = tensor([4], Float32Array.of(Infinity, -Infinity, NaN, 0.1));
  const e = tensor([0, 5]);
  writeSafetensors(p, { 'w.a': a, 'w.b': b, empty: e }, { metadata: { format: 'pt', note: 'x' } });
  const bytes = readFileSync(p);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  assert.equal(headerLen % 8, 0);
  assert.equal(
    bytes
      .subarray(8, 8 + headerLen)
      .toString()
      .trimEnd()
      .endsWith('}'),
    true,
  );
  const { tensors, metadata } = readAllSafetensors(p);
  assert.deepEqual(metadata, { format: 'pt', note: 'x' });
  assert.deepEqual(Object.keys(tensors), ['w.a', 'w.b', 'empty']);
  assert.deepEqual(tensors['w.a'], a);
  assert.deepEqual(tensors['w.b'].shape, [4]);
  assert.deepEqual([...tensors['w.b'].data], [Infinity, -Infinity, NaN, Math.fround(0.1)]);
  assert.deepEqual(tensors.empty.shape, [0, 5]);
  const f = openSafetensors(p);
  assert.equal(f.dtypeOf('w.a'), 'F32');
  assert.deepEqual(f.shape('w.a'), [2, 3]);
  assert.equal(f.has('w.b') && !f.has('nope'), true);
  throwsCode(() => f.get('nope'), 'NOT_FOUND', '"nope"', p);
  f.close();
});

test('F16 and BF16 writing round to the nearest representable value', () => {
  const v = Float32Array.of(1, -2.5, 65504, 2 ** -24, 0.1, 1e6);
  const p16 = tmp();
  writeSafetensors(p16, { t: tensor([6], v) }, { dtype: 'F16' });
  const f = openSafetensors(p16);
  assert.equal(f.dtypeOf('t'), 'F16');
  assert.deepEqual([...f.get('t').data], [1, -2.5, 65504, 2 ** -24, 0.0999755859375, Infinity]);
  assert.deepEqual([...(f.getRaw('t').data as Uint16Array)].slice(0, 3), [0x3c00, 0xc100, 0x7bff]);
  f.close();
  const pb = tmp();
  writeSafetensors(pb, { t: tensor([6], v) }, { dtype: 'BF16' });
  assert.deepEqual([...readAllSafetensors(pb).tensors.t.data], [1, -2.5, 65536, 2 ** -24, 0.10009765625, 999424]);
});

test('F16/BF16/F64 files widen/narrow to float32; integer tensors only via getRaw', () => {
  const f16 = Uint16Array.of(0x3c00, 0x0001, 0x7c00, 0xfe00); // 1, smallest subnormal, inf, nan
  const bf16 = Uint16Array.of(0x3f80, 0x0001, 0xff80, 0x7fc0);
  const f64 = Float64Array.of(0.1, 1e300);
  const i64 = BigInt64Array.of(-1n, 2n ** 40n);
  const i32 = Int32Array.of(-7, 7);
  const u8 = Uint8Array.of(255, 0, 1);
  const parts = [f16, bf16, f64, i64, i32, u8, u8].map((a) => new Uint8Array(a.buffer));
  const header: Record<string, unknown> = {};
  const names = ['h', 'b', 'd', 'l', 'i', 'u', 'flag'];
  const dtypes = ['F16', 'BF16', 'F64', 'I64', 'I32', 'U8', 'BOOL'];
  let off = 0;
  parts.forEach((p, k) => {
    header[names[k]] = {
      dtype: dtypes[k],
      shape: [p.length / { F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, U8: 1, BOOL: 1 }[dtypes[k]]!],
      data_offsets: [off, off + p.length],
    };
    off += p.length;
  });
  const f = openSafetensors(rawFile(header, Buffer.concat(parts)));
  const h = [...f.get('h').data];
  assert.deepEqual(h.slice(0, 3), [1, 2 ** -24, Infinity]);
  assert.ok(Number.isNaN(h[3]));
  const b = [...f.get('b').data];
  assert.deepEqual(b.slice(0, 3), [1, 2 ** -133, -Infinity]);
  assert.ok(Number.isNaN(b[3]));
  assert.deepEqual([...f.get('d').data], [Math.fround(0.1), Infinity]);
  assert.deepEqual([...(f.getRaw('l').data as BigInt64Array)], [-1n, 2n ** 40n]);
  assert.deepEqual([...(f.getRaw('i').data as Int32Array)], [-7, 7]);
  assert.deepEqual([...(f.getRaw('flag').data as Uint8Array)], [255, 0, 1]);
  assert.equal(f.getRaw('u').dtype, 'U8');
  throwsCode(() => f.get('l'), 'UNSUPPORTED', '"l"', 'I64');
  assert.throws(
    () => f.get('i'),
    (e: unknown) => e instanceof LmSteerError && /getRaw/.test(e.hint ?? ''),
  );
  throwsCode(() => f.get('flag'), 'UNSUPPORTED', 'BOOL');
  f.close();
});

test('malformed files are BAD_FILE naming the file and the tensor', () => {
  const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const data = new Uint8Array(8);

  const short = tmp();
  writeFileSync(short, Uint8Array.of(1, 2, 3));
  throwsCode(() => openSafetensors(short), 'BAD_FILE', short, '3 bytes');
  throwsCode(() => openSafetensors(rawFile({ t: ok }, data, 10_000n)), 'BAD_FILE', 'header length 10000 runs past');
  throwsCode(() => openSafetensors(rawFile({ t: ok }, data, 2n ** 62n)), 'BAD_FILE', 'absurd');
  throwsCode(() => openSafetensors(rawFile('{"t": {"dtype": "F32",', data)), 'BAD_FILE', 'not valid UTF-8 JSON');
  throwsCode(() => openSafetensors(rawFile([1, 2], data)), 'BAD_FILE', 'not a JSON object');
  throwsCode(() => openSafetensors(rawFile('null', data)), 'BAD_FILE', 'not a JSON object');
  throwsCode(() => openSafetensors(rawFile({ t: 3 }, data)), 'BAD_FILE', '"t"');
  throwsCode(
    () => openSafetensors(rawFile({ t: { ...ok, dtype: 'F13' } }, data)),
    'BAD_FILE',
    '"t"',
    'unknown dtype "F13"',
  );
  throwsCode(() => openSafetensors(rawFile({ t: { ...ok, dtype: 'F4' } }, data)), 'UNSUPPORTED', 'F4');
  for (const shape of [[-2], [1.5], '2', [2, null], null]) {
    throwsCode(() => openSafetensors(rawFile({ t: { ...ok, shape } }, data)), 'BAD_FILE', '"t"', 'shape');
  }
  for (const offsets of [[0], [8, 0], [-8, 0], [0, 8, 16], 'x', [0, 1.5]]) {
    throwsCode(
      () => openSafetensors(rawFile({ t: { ...ok, data_offsets: offsets } }, data)),
      'BAD_FILE',
      '"t"',
      'data_offsets',
    );
  }
  throwsCode(
    () => openSafetensors(rawFile({ t: { ...ok, data_offsets: [0, 16], shape: [4] } }, data)),
    'BAD_FILE',
    '"t"',
    'beyond the data section (8 bytes)',
  );
  throwsCode(
    () => openSafetensors(rawFile({ t: { ...ok, shape: [3] } }, data)),
    'BAD_FILE',
    '"t"',
    'needs 12 bytes',
    'hold 8',
  );
  throwsCode(
    () =>
      openSafetensors(
        rawFile(
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
          },
          new Uint8Array(12),
        ),
      ),
    'BAD_FILE',
    '"a"',
    '"b"',
    'overlap',
  );
  throwsCode(() => openSafetensors(rawFile({ __metadata__: { a: 1 }, t: ok }, data)), 'BAD_FILE', '__metadata__');
  throwsCode(() => openSafetensors(join(root, 'absent.safetensors')), 'NOT_FOUND', 'absent.safetensors');
});

test('a valid hand-made file (zero-size tensor, holes between tensors) opens', () => {
  const f = openSafetensors(
    rawFile(
      { z: { dtype: 'F32', shape: [0], data_offsets: [4, 4] }, t: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } },
      new Uint8Array(8),
    ),
  );
  assert.deepEqual(f.get('z').shape, [0]);
  assert.deepEqual([...f.get('t').data], [0]);
  f.close();
});

test('writeSafetensors rejects bad names, shapes and metadata', () => {
  throwsCode(() => writeSafetensors(tmp(), { __metadata__: tensor([1]) }), 'BAD_ARGUMENT', '__metadata__');
  throwsCode(
    () => writeSafetensors(tmp(), { t: { dtype: 'float32', shape: [3], data: new Float32Array(2) } }),
    'SHAPE_MISMATCH',
    '"t"',
  );
  throwsCode(
    () => writeSafetensors(tmp(), { t: tensor([1]) }, { metadata: { a: 3 as unknown as string } }),
    'BAD_ARGUMENT',
    '"a"',
  );
});

/** Write shards of {name: value} (one-element tensors) and an index mapping names to shard files. */
function shardedDir(shards: Record<string, Record<string, number>>, weightMap?: Record<string, string>): string {
  const dir = join(root, `shards${n++}`);
  mkdirSync(dir);
  const map: Record<string, string> = {};
  for (const [file, ts] of Object.entries(shards)) {
    const tensors = Object.fromEntries(Object.entries(ts).map(([k, v]) => [k, tensor([1], Float32Array.of(v))]));
    writeSafetensors(join(dir, file), tensors);
    for (const k of Object.keys(ts)) map[k] = file;
  }
  writeFileSync(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: weightMap ?? map }),
  );
  return dir;
}

test('sharded models: tensors from every shard; missing or inconsistent shards are clear errors', () => {
  const dir = shardedDir({
    'model-00001-of-00002.safetensors': { a: 1, b: 2 },
    'model-00002-of-00002.safetensors': { c: 3 },
  });
  const s = openSafetensorsModel(dir);
  assert.deepEqual(s.names().sort(), ['a', 'b', 'c']);
  assert.deepEqual([...s.get('c').data], [3]);
  assert.deepEqual(s.shape('a'), [1]);
  assert.equal(s.dtypeOf('b'), 'F32');
  throwsCode(() => s.get('d'), 'NOT_FOUND', '"d"');
  s.close();

  rmSync(join(dir, 'model-00002-of-00002.safetensors'));
  throwsCode(
    () => openSafetensorsModel(dir),
    'NOT_FOUND',
    'model-00002-of-00002.safetensors',
    'model.safetensors.index.json',
  );

  const dup = shardedDir(
    { 'x1.safetensors': { a: 1, b: 2 }, 'x2.safetensors': { b: 5 } },
    { a: 'x1.safetensors', b: 'x2.safetensors' },
  );
  throwsCode(() => openSafetensorsModel(dup), 'BAD_FILE', '"b"', 'two shards', 'x1.safetensors', 'x2.safetensors');

  const wrong = shardedDir(
    { 'x1.safetensors': { a: 1 }, 'x2.safetensors': { b: 2 } },
    { a: 'x2.safetensors', b: 'x2.safetensors' },
  );
  throwsCode(() => openSafetensorsModel(wrong), 'BAD_FILE', '"a"', 'x2.safetensors');

  const escape = shardedDir({ 'x1.safetensors': { a: 1 } }, { a: '../x1.safetensors' });
  throwsCode(() => openSafetensorsModel(escape), 'BAD_FILE', '../x1.safetensors');

  const noMap = shardedDir({ 'x1.safetensors': { a: 1 } });
  writeFileSync(join(noMap, 'model.safetensors.index.json'), '{"metadata": {}}');
  throwsCode(() => openSafetensorsModel(noMap), 'BAD_FILE', 'weight_map');
  writeFileSync(join(noMap, 'model.safetensors.index.json'), '{"weight_map": ');
  throwsCode(() => openSafetensorsModel(noMap), 'BAD_FILE', 'model.safetensors.index.json', 'not valid JSON');
});

test('model folders: model.safetensors, a lone other name, ambiguous and empty folders', () => {
  const single = tmp('model.safetensors');
  writeSafetensors(single, { w: tensor([1], Float32Array.of(4)) });
  const s = openSafetensorsModel(join(single, '..'));
  assert.deepEqual([...s.get('w').data], [4]);
  s.close();

  const other = tmp('consolidated.safetensors');
  writeSafetensors(other, { w: tensor([1], Float32Array.of(5)) });
  const dir = join(other, '..');
  const o = openSafetensorsModel(dir);
  assert.deepEqual([...o.get('w').data], [5]);
  o.close();
  writeSafetensors(join(dir, 'extra.safetensors'), { w: tensor([1]) });
  throwsCode(() => openSafetensorsModel(dir), 'NOT_FOUND', 'consolidated.safetensors', 'extra.safetensors');

  const empty = join(tmp(), '..');
  throwsCode(() => openSafetensorsModel(empty), 'NOT_FOUND', 'model.safetensors');
  writeFileSync(join(empty, 'pytorch_model.bin'), 'x');
  throwsCode(() => openSafetensorsModel(empty), 'UNSUPPORTED', 'pytorch_model.bin');
});

test(
  'stories260K hf/model.safetensors: every tensor has the shape its config.json implies',
  { skip: skipUnlessShared('models/stories260K/hf/model.safetensors') },
  () => {
    const dir = sharedPath('models/stories260K/hf')!;
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const d = cfg.hidden_size,
      hd = cfg.head_dim,
      ff = cfg.intermediate_size;
    const expected: Record<string, number[]> = {
      'model.embed_tokens.weight': [cfg.vocab_size, d],
      'model.norm.weight': [d],
    };
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      Object.assign(expected, {
        [p + 'input_layernorm.weight']: [d],
        [p + 'post_attention_layernorm.weight']: [d],
        [p + 'self_attn.q_proj.weight']: [cfg.num_attention_heads * hd, d],
        [p + 'self_attn.k_proj.weight']: [cfg.num_key_value_heads * hd, d],
        [p + 'self_attn.v_proj.weight']: [cfg.num_key_value_heads * hd, d],
        [p + 'self_attn.o_proj.weight']: [d, cfg.num_attention_heads * hd],
        [p + 'mlp.gate_proj.weight']: [ff, d],
        [p + 'mlp.up_proj.weight']: [ff, d],
        [p + 'mlp.down_proj.weight']: [d, ff],
      });
    }
    const s = openSafetensorsModel(dir);
    try {
      assert.deepEqual(s.names().sort(), Object.keys(expected).sort());
      for (const [name, shape] of Object.entries(expected)) {
        assert.deepEqual(s.shape(name), shape, name);
        assert.equal(s.dtypeOf(name), 'F32');
      }
      const emb = s.get('model.embed_tokens.weight');
      assert.equal(emb.data.length, cfg.vocab_size * d);
      assert.ok(emb.data.every(Number.isFinite));
      assert.ok(emb.data.some((v) => v !== 0));
    } finally {
      s.close();
    }
  },
);
