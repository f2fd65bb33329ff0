import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadWeights, locateModel } from '../../src/formats/modelFiles.js';
import { LmSteerError } from '../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const root = mkdtempSync(join(tmpdir(), 'lmsteer-mf-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function dirWith(files: Record<string, string>): string {
  const d = join(root, String(n++));
  mkdirSync(d);
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(d, f, '..'), { recursive: true });
    writeFileSync(join(d, f), text);
  }
  return d;
}
const isErr =
  (code: string, ...parts: string[]) =>
  (e: unknown) =>
    e instanceof LmSteerError && e.code === code && parts.every((p) => e.message.includes(p)) && !!e.hint;

test('stories260K hf folder: located and loaded', { skip: skipUnlessShared('models/stories260K/hf') }, () => {
  const dir = sharedPath('models/stories260K/hf')!;
  const m = locateModel(dir);
  assert.deepEqual(m, {
    kind: 'hf',
    dir,
    configPath: join(dir, 'config.json'),
    generationConfigPath: join(dir, 'generation_config.json'),
    tokenizerJsonPath: join(dir, 'tokenizer.json'),
    tokenizerConfigPath: join(dir, 'tokenizer_config.json'),
  });
  assert.deepEqual(locateModel(join(dir, 'config.json')), m);
  const { config, generationConfig, weights } = loadWeights(m);
  assert.equal(config.model_type, 'llama');
  assert.deepEqual(generationConfig, { bos_token_id: 1, eos_token_id: 2 });
  assert.deepEqual(weights.shape('model.embed_tokens.weight'), [512, 64]);
  weights.close();
});

test(
  'stories260K llama2c: folder or .bin path; tokenizer found beside it',
  { skip: skipUnlessShared('models/stories260K/llama2c/model.bin') },
  () => {
    const dir = sharedPath('models/stories260K/llama2c')!;
    const m = locateModel(dir);
    assert.deepEqual(m, {
      kind: 'llama2c',
      dir,
      modelPath: join(dir, 'model.bin'),
      tokenizerPath: join(dir, 'tokenizer.bin'),
    });
    assert.deepEqual(locateModel(join(dir, 'model.bin')), m);
    const { config, generationConfig, weights } = loadWeights(m);
    assert.equal(config.model_type, 'llama');
    assert.equal(config.tie_word_embeddings, true);
    assert.equal(generationConfig, undefined);
    assert.deepEqual(weights.shape('model.layers.0.self_attn.k_proj.weight'), [32, 64]);
    weights.close();

    // Other names: stories260K.bin + tok512.bin (links, not copies).
    const d = dirWith({});
    symlinkSync(join(dir, 'model.bin'), join(d, 'stories260K.bin'));
    symlinkSync(join(dir, 'tokenizer.bin'), join(d, 'tok512.bin'));
    assert.deepEqual(locateModel(d), {
      kind: 'llama2c',
      dir: d,
      modelPath: join(d, 'stories260K.bin'),
      tokenizerPath: join(d, 'tok512.bin'),
    });
    assert.throws(() => locateModel(join(d, 'tok512.bin')), isErr('BAD_ARGUMENT', 'tok512.bin', 'tokenizer'));
  },
);

test('llama2.c files without a tokenizer, or ambiguous folders, are clear errors', () => {
  const lone = dirWith({ 'stories.bin': 'x' });
  assert.throws(() => locateModel(lone), isErr('NOT_FOUND', 'tokenizer.bin', 'stories.bin'));
  assert.throws(() => locateModel(join(lone, 'stories.bin')), isErr('NOT_FOUND', 'tokenizer.bin'));
  const two = dirWith({ 'a.bin': 'x', 'b.bin': 'y', 'tokenizer.bin': 't' });
  assert.throws(() => locateModel(two), isErr('BAD_ARGUMENT', 'a.bin', 'b.bin'));
  assert.equal(locateModel(join(two, 'b.bin')).kind, 'llama2c');
  const toks = dirWith({ 'm.bin': 'x', 'tok1.bin': 't', 'tok2.bin': 't' });
  assert.throws(() => locateModel(toks), isErr('BAD_ARGUMENT', 'tok1.bin', 'tok2.bin'));
  // A file that is not a llama2.c checkpoint fails when loaded, naming it.
  const notModel = dirWith({ 'model.bin': 'not a checkpoint', 'tokenizer.bin': 't' });
  assert.throws(() => loadWeights(locateModel(notModel)), isErr('BAD_FILE', join(notModel, 'model.bin')));
});

test('ONNX folders are recognized; their weights cannot be loaded as a checkpoint', () => {
  const top = dirWith({ 'model.onnx': 'x', 'tokenizer.json': '{}' });
  const m = locateModel(top);
  assert.deepEqual(m, {
    kind: 'onnx',
    dir: top,
    onnxPaths: [join(top, 'model.onnx')],
    tokenizerJsonPath: join(top, 'tokenizer.json'),
  });
  assert.throws(() => loadWeights(m), isErr('UNSUPPORTED', 'model.onnx'));
  const sub = dirWith({ 'onnx/decoder_model.onnx': 'x' });
  assert.deepEqual(locateModel(sub), {
    kind: 'onnx',
    dir: sub,
    onnxPaths: [join(sub, 'onnx', 'decoder_model.onnx')],
    tokenizerJsonPath: undefined,
  });
  assert.equal(locateModel(join(sub, 'onnx', 'decoder_model.onnx')).kind, 'onnx');
  // With config.json: safetensors win (lmsteer's own graph); without them the onnx/ export is the model.
  const exportOnly = dirWith({ 'config.json': '{"model_type":"gpt2"}', 'onnx/model.onnx': 'x' });
  assert.deepEqual(locateModel(exportOnly), {
    kind: 'onnx',
    dir: exportOnly,
    onnxPaths: [join(exportOnly, 'onnx', 'model.onnx')],
    tokenizerJsonPath: undefined,
  });
  const both = dirWith({ 'config.json': '{"model_type":"gpt2"}', 'model.safetensors': 'x', 'onnx/model.onnx': 'x' });
  assert.equal(locateModel(both).kind, 'hf');
  // …and the .onnx file itself picks the export, config.json found one folder up
  assert.deepEqual(locateModel(join(both, 'onnx', 'model.onnx')), {
    kind: 'onnx',
    dir: both,
    onnxPaths: [join(both, 'onnx', 'model.onnx')],
    tokenizerJsonPath: undefined,
  });
});

test('nothing there: NOT_FOUND with a hint saying what a model folder holds', () => {
  assert.throws(() => locateModel(join(root, 'absent')), isErr('NOT_FOUND', join(root, 'absent'), 'does not exist'));
  assert.throws(
    () => locateModel(dirWith({ 'README.md': 'hi' })),
    (e: unknown) =>
      e instanceof LmSteerError &&
      e.code === 'NOT_FOUND' &&
      /config\.json/.test(e.hint ?? '') &&
      /tokenizer\.bin/.test(e.hint ?? ''),
  );
  const d = dirWith({ 'notes.txt': 'x' });
  assert.throws(() => locateModel(join(d, 'notes.txt')), isErr('BAD_ARGUMENT', 'notes.txt'));
  // An HF folder without weights is located, and loading says what is missing.
  const hf = dirWith({ 'config.json': '{"model_type":"llama"}' });
  assert.throws(() => loadWeights(locateModel(hf)), isErr('NOT_FOUND', 'model.safetensors'));
  const torch = dirWith({ 'config.json': '{"model_type":"llama"}', 'pytorch_model.bin': 'x' });
  assert.equal(locateModel(join(torch, 'pytorch_model.bin')).kind, 'hf');
  assert.throws(() => loadWeights(locateModel(torch)), isErr('UNSUPPORTED', 'pytorch_model.bin'));
});
