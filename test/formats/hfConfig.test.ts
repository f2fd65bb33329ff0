import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGenerationConfig, readJsonFile, readModelConfig } from '../../src/formats/hfConfig.js';
import { LmSteerError } from '../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const root = mkdtempSync(join(tmpdir(), 'lmsteer-cfg-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function dirWith(files: Record<string, string>): string {
  const d = join(root, String(n++));
  mkdirSync(d);
  for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
  return d;
}
const isErr =
  (code: string, ...parts: string[]) =>
  (e: unknown) =>
    e instanceof LmSteerError && e.code === code && parts.every((p) => e.message.includes(p)) && !!e.hint;

test('readJsonFile: parses, and names the file when missing or malformed', () => {
  const d = dirWith({ 'a.json': '{"x": [1]}', 'bad.json': '{"x": ' });
  assert.deepEqual(readJsonFile(join(d, 'a.json'), 'thing'), { x: [1] });
  assert.throws(
    () => readJsonFile(join(d, 'none.json'), 'steer file'),
    isErr('NOT_FOUND', 'steer file', join(d, 'none.json')),
  );
  assert.throws(
    () => readJsonFile(join(d, 'bad.json'), 'steer file'),
    isErr('BAD_FILE', 'steer file', join(d, 'bad.json'), 'not valid JSON'),
  );
});

test('readModelConfig: needs an object with a string model_type', () => {
  assert.deepEqual(readModelConfig(dirWith({ 'config.json': '{"model_type": "gpt2", "n_embd": 8}' })), {
    model_type: 'gpt2',
    n_embd: 8,
  });
  assert.throws(() => readModelConfig(dirWith({})), isErr('NOT_FOUND', 'config.json'));
  assert.throws(() => readModelConfig(dirWith({ 'config.json': '[1]' })), isErr('BAD_FILE', 'config.json', 'an array'));
  assert.throws(
    () => readModelConfig(dirWith({ 'config.json': '{"hidden_size": 3}' })),
    isErr('BAD_FILE', 'config.json', 'model_type'),
  );
  assert.throws(
    () => readModelConfig(dirWith({ 'config.json': '{"model_type": 3}' })),
    isErr('BAD_FILE', 'model_type', '3'),
  );
});

test('readGenerationConfig: optional, but must be an object when present', () => {
  assert.equal(readGenerationConfig(dirWith({})), undefined);
  assert.deepEqual(readGenerationConfig(dirWith({ 'generation_config.json': '{"eos_token_id": [2, 3]}' })), {
    eos_token_id: [2, 3],
  });
  assert.throws(
    () => readGenerationConfig(dirWith({ 'generation_config.json': '"x"' })),
    isErr('BAD_FILE', 'generation_config.json'),
  );
});

test('stories260K hf config', { skip: skipUnlessShared('models/stories260K/hf/config.json') }, () => {
  const dir = sharedPath('models/stories260K/hf')!;
  assert.equal(readModelConfig(dir).model_type, 'llama');
  assert.deepEqual(readGenerationConfig(dir), { bos_token_id: 1, eos_token_id: 2 });
});
