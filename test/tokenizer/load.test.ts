import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/tokenizer/load.js';
import { LmSteerError } from '../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const S = 'models/stories260K';

test(
  'loadTokenizer: hf folder and llama2.c tokenizer.bin give the same tokenizer',
  { skip: skipUnlessShared(S) },
  async () => {
    const hf = await loadTokenizer({ kind: 'hf', dir: join(sharedPath(S)!, 'hf') });
    const l2c = await loadTokenizer({
      kind: 'llama2c',
      tokenizerPath: join(sharedPath(S)!, 'llama2c', 'tokenizer.bin'),
      vocabSize: 512,
    });
    const text = 'Lily and Ben went to the park.';
    assert.deepEqual(l2c.encode(text), hf.encode(text));
    assert.equal(hf.encode(text)[0], 1);
    assert.equal(l2c.decode(l2c.encode(text), { skipSpecialTokens: true }), text);
  },
);

test('loadTokenizer: a folder without tokenizer.json is NOT_FOUND', () => {
  assert.throws(
    () => loadTokenizer({ kind: 'hf', dir: '/nonexistent-model-dir' }),
    (e: unknown) => e instanceof LmSteerError && e.code === 'NOT_FOUND',
  );
});
