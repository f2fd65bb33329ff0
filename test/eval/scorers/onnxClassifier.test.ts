import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../../../src/graph/builder.js';
import { createScorer } from '../../../src/eval/scorers/registry.js';
import { OnnxClassifierScorer, pickLabel } from '../../../src/eval/scorers/onnxClassifier.js';
import { HfTokenizer } from '../../../src/tokenizer/hfTokenizer.js';
import { LmSteerError } from '../../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../../helpers/shared.js';

const V = 50257;
const D = 4;

function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 2);
}

/** A tiny sequence classifier: masked mean of token embeddings (+ token-type embeddings) → linear → 2 logits. */
function buildClassifier(withTokenTypes: boolean) {
  const E = seeded(V * D, 1);
  const Tt = seeded(2 * D, 2);
  const W = seeded(D * 2, 3).map((x) => x * 4);
  const b = Float32Array.from([0.1, -0.2]);
  const g = new GraphBuilder('tiny-classifier');
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'seq']);
  let emb = g.op('Gather', [g.weight('emb', { dtype: 'float32', shape: [V, D], data: E }), ids]);
  if (withTokenTypes) {
    const tt = g.input('token_type_ids', 'int64', ['batch', 'seq']);
    emb = g.op('Add', [emb, g.op('Gather', [g.weight('tt', { dtype: 'float32', shape: [2, D], data: Tt }), tt])]);
  }
  const m = g.op('Cast', [mask], { to: 1 });
  const summed = g.op('ReduceSum', [g.op('Mul', [emb, g.op('Unsqueeze', [m, g.constI64([2])])]), g.constI64([1])], {
    keepdims: 0,
  });
  const count = g.op('ReduceSum', [m, g.constI64([1])], { keepdims: 1 });
  const mean = g.op('Div', [summed, count]);
  const logits = g.op('Add', [
    g.op('MatMul', [mean, g.weight('w', { dtype: 'float32', shape: [D, 2], data: W })]),
    g.weight('b', { dtype: 'float32', shape: [2], data: b }),
  ]);
  g.output(logits, 'logits', 'float32', ['batch', 2]);
  const reference = (tokenIds: number[]): number[] => {
    const h = new Float64Array(D);
    for (const id of tokenIds) for (let k = 0; k < D; k++) h[k] += E[id * D + k]! + (withTokenTypes ? Tt[k]! : 0);
    for (let k = 0; k < D; k++) h[k] /= tokenIds.length;
    const z = [0, 1].map((j) => b[j]! + [...h].reduce((a, x, k) => a + x * W[k * 2 + j]!, 0));
    const mx = Math.max(...z);
    const e = z.map((x) => Math.exp(x - mx));
    return e.map((x) => x / (e[0]! + e[1]!));
  };
  return { bytes: g.serialize(), reference };
}

function modelDir(withTokenTypes: boolean, id2label: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-onnxcls-'));
  const built = buildClassifier(withTokenTypes);
  writeFileSync(join(dir, 'model.onnx'), built.bytes);
  copyFileSync(sharedPath('models', 'gpt2-tokenizer', 'tokenizer.json')!, join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ id2label, max_position_embeddings: 1024 }));
  return { dir, reference: built.reference };
}

const texts = [
  'What a wonderful, happy day!',
  'This is terrible.',
  'ok',
  'A much longer sentence, so that the batch needs padding on the others.',
];

for (const withTokenTypes of [false, true]) {
  test(
    `onnx-classifier scores like the model's own math (token_type_ids: ${withTokenTypes})`,
    { skip: skipUnlessShared('models/gpt2-tokenizer') },
    async () => {
      const { dir, reference } = modelDir(withTokenTypes, { 0: 'NEGATIVE', 1: 'POSITIVE' });
      const scorer = await createScorer('onnx-classifier', { modelPath: dir });
      assert.equal(scorer.attribute, 'positive-sentiment');
      assert.match(scorer.version, /^onnx-classifier sha256:[0-9a-f]{16} label POSITIVE$/);
      const tok = HfTokenizer.fromDir(dir);
      const got = await scorer.score(texts);
      texts.forEach((t, i) => {
        const want = reference(tok.encode(t))[1]!;
        assert.ok(Math.abs(got[i]! - want) < 1e-5, `${t}: ${got[i]} vs ${want}`);
      });
      // Batching does not change a score.
      const one = await scorer.score([texts[3]!]);
      assert.ok(Math.abs(one[0]! - got[3]!) < 1e-6);
      // The other label by name is the complement.
      const neg = await OnnxClassifierScorer.load(dir, { label: 'negative' });
      const n = await neg.score(texts);
      n.forEach((p, i) => assert.ok(Math.abs(p + got[i]! - 1) < 1e-5));
      assert.equal(neg.attribute, 'negative');
    },
  );
}

test('onnx-classifier: label choice and bad folders', { skip: skipUnlessShared('models/gpt2-tokenizer') }, async () => {
  assert.equal(pickLabel(['non-toxic', 'toxic']), 1);
  assert.equal(pickLabel(['LABEL_0', 'LABEL_1'], '1'), 1);
  assert.throws(
    () => pickLabel(['LABEL_0', 'LABEL_1']),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT' && /--scorer-label/.test(e.hint ?? ''),
  );
  assert.throws(
    () => pickLabel(['a', 'b'], 'c'),
    (e: unknown) => e instanceof LmSteerError && e.code === 'NOT_FOUND' && /0=a, 1=b/.test(e.hint ?? ''),
  );
  const { dir } = modelDir(false, { 0: 'clean', 1: 'toxic' });
  const s = await createScorer('onnx-classifier', { modelPath: dir });
  assert.equal(s.attribute, 'toxicity');
  const empty = mkdtempSync(join(tmpdir(), 'lmsteer-onnxcls-'));
  await assert.rejects(
    createScorer('onnx-classifier', { modelPath: empty }),
    (e: unknown) => e instanceof LmSteerError && e.code === 'NOT_FOUND' && /model\.onnx/.test(e.message),
  );
  const bad = modelDir(false, { 0: 'only' }).dir;
  await assert.rejects(
    OnnxClassifierScorer.load(bad),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE' && /id2label/.test(e.message),
  );
});
