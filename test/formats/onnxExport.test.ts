import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { chooseOnnxFile, openOnnxExport, readOnnxExport } from '../../src/formats/onnxExport.js';
import { GraphBuilder } from '../../src/graph/builder.js';
import { decodeModel } from '../../src/graph/onnxProto.js';
import { outputEmbeddings } from '../../src/models/registry.js';
import { LmSteerError } from '../../src/util/errors.js';
import { writeTinyExport } from '../helpers/optimumExport.js';

const root = mkdtempSync(join(tmpdir(), 'lmsteer-onnxexport-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `m${n++}`);

function assertUnsupported(fn: () => unknown, pattern: RegExp): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof LmSteerError && e.code === 'UNSUPPORTED' && pattern.test(e.message) && !!e.hint,
  );
}

test('llama export with external data: IO described, E read back, hidden + steer inputs added', () => {
  const ex = writeTinyExport(fresh(), 'llama', { external: true });
  assert.ok(existsSync(join(ex.dir, 'onnx', 'model.onnx_data')));
  const r = readOnnxExport(ex.modelPath);
  assert.deepEqual(r.io, {
    numLayers: 2,
    numKvHeads: 2,
    headDim: 8,
    hasPositionIds: true,
    hasUseCacheBranch: false,
    vocabSize: 64,
    hiddenSize: 32,
    headNode: '/lm_head/MatMul',
  });
  assert.deepEqual(r.head.shape, [64, 32]);
  assert.deepEqual(Array.from(r.head.data), Array.from(outputEmbeddings(ex.cfg, ex.weights).data));
  const g = decodeModel(r.bytes).graph;
  assert.deepEqual(
    g.input.map((i: { name: string }) => i.name).filter((s: string) => s.startsWith('steer')),
    ['steer_p1', 'steer_p2t', 'steer_scale'],
  );
  assert.ok(g.output.some((o: { name: string }) => o.name === 'hidden'));
  // external data stays where it was: the rewritten model still points at the export's own file
  assert.ok(
    g.initializer.some((t: { external_data?: { key: string; value: string }[] }) =>
      t.external_data?.some((e) => e.key === 'location' && e.value === 'model.onnx_data'),
    ),
  );
});

for (const [kind, head] of [
  ['gpt2', 'transpose'],
  ['llama', 'gemm'],
  ['gpt2', 'gemm'],
] as const) {
  test(`${kind}: LM head as ${head} is found and E matches the checkpoint's`, () => {
    const ex = writeTinyExport(fresh(), kind, { head });
    const r = readOnnxExport(ex.modelPath);
    assert.deepEqual(Array.from(r.head.data), Array.from(outputEmbeddings(ex.cfg, ex.weights).data));
    assert.equal(r.io.hiddenSize, ex.cfg.hiddenSize);
  });
}

test('merged decoder: the head inside both If branches is rewritten; use_cache_branch is reported', () => {
  const ex = writeTinyExport(fresh(), 'gpt2', { merged: true, file: 'decoder_model_merged.onnx' });
  const r = readOnnxExport(ex.modelPath);
  assert.equal(r.io.hasUseCacheBranch, true);
  assert.deepEqual(Array.from(r.head.data), Array.from(outputEmbeddings(ex.cfg, ex.weights).data));
  const ifNode = decodeModel(r.bytes).graph.node.find((x: { op_type: string }) => x.op_type === 'If');
  for (const a of ifNode.attribute)
    assert.ok(
      a.g.node.some((x: { input: string[] }) => x.input.includes('steer_p1')),
      `${a.name} has the steer`,
    );
});

test('logits from an op that is not a MatMul/Gemm: UNSUPPORTED naming the node', () => {
  const ex = writeTinyExport(fresh(), 'llama', { head: 'scaled' });
  assertUnsupported(() => readOnnxExport(ex.modelPath), /"\/lm_head\/softcap" \(Mul\)/);
});

test('an export without KV cache inputs, or with an unknown input, is refused by name', () => {
  const dir = fresh();
  const make = (extra: boolean) => {
    const g = new GraphBuilder('nocache');
    g.input('input_ids', 'int64', ['b', 's']);
    g.input('attention_mask', 'int64', ['b', 's']);
    if (extra) {
      g.input('past_key_values.0.key', 'float32', ['b', 1, 'p', 8]);
      g.input('token_type_ids', 'int64', ['b', 's']);
    }
    const emb = g.weight('E', { dtype: 'float32', shape: [5, 4], data: new Float32Array(20) });
    const h = g.op('Gather', [emb, 'input_ids'], { axis: 0 });
    g.output(g.op('MatMul', [h, g.op('Transpose', [emb], { perm: [1, 0] })]), 'logits', 'float32', ['b', 's', 5]);
    const p = join(dir, extra ? 'extra.onnx' : 'nocache.onnx');
    writeFileSync(p, g.serialize());
    return p;
  };
  mkdirSync(dir);
  assertUnsupported(() => readOnnxExport(make(false)), /no past_key_values/);
  assertUnsupported(() => readOnnxExport(make(true)), /"token_type_ids"/);
});

test('a file that is not ONNX is BAD_FILE', () => {
  const p = join(root, 'junk.onnx');
  writeFileSync(p, 'not a model at all');
  assert.throws(
    () => readOnnxExport(p),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE' && e.message.includes(p),
  );
});

test('the rewrite is cached by content: a second open reads the cache, a changed model gets a new entry', () => {
  const cacheDir = fresh();
  const ex = writeTinyExport(fresh(), 'llama', { external: true });
  const a = openOnnxExport(ex.modelPath, { cacheDir });
  const entries = readdirSync(join(cacheDir, 'onnx-exports'));
  assert.equal(entries.length, 1);
  assert.deepEqual(readdirSync(join(cacheDir, 'onnx-exports', entries[0]!)).sort(), [
    'head.bin',
    'io.json',
    'model.onnx',
  ]);
  const b = openOnnxExport(ex.modelPath, { cacheDir });
  assert.equal(b.key, a.key);
  assert.deepEqual(b.io, a.io);
  assert.deepEqual(Buffer.from(b.bytes), Buffer.from(a.bytes));
  assert.deepEqual(Array.from(b.head.data), Array.from(a.head.data));
  writeTinyExport(ex.dir, 'llama', { external: true, seed: 9 });
  const c = openOnnxExport(ex.modelPath, { cacheDir });
  assert.notEqual(c.key, a.key);
  assert.notDeepEqual(Array.from(c.head.data), Array.from(a.head.data));
  assert.equal(readdirSync(join(cacheDir, 'onnx-exports')).length, 2);
});

test('chooseOnnxFile prefers the with-past decoders and asks when the choice is unclear', () => {
  assert.equal(
    chooseOnnxFile('/m', ['/m/onnx/decoder_model.onnx', '/m/onnx/decoder_model_merged.onnx']),
    '/m/onnx/decoder_model_merged.onnx',
  );
  assert.equal(chooseOnnxFile('/m', ['/m/onnx/model_fp16.onnx', '/m/onnx/model.onnx']), '/m/onnx/model.onnx');
  assert.equal(chooseOnnxFile('/m', ['/m/x.onnx']), '/m/x.onnx');
  assert.throws(
    () => chooseOnnxFile('/m', ['/m/onnx/model_fp16.onnx', '/m/onnx/model_q4.onnx']),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT' && /onnx\/model_q4\.onnx/.test(e.message),
  );
});
