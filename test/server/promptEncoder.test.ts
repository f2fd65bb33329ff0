/** Server prompt encoding: bounded before tokenizing, long prompts on the tokenizing thread, same ids. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PromptEncoder } from '../../src/server/promptEncoder.js';
import { loadTokenizer } from '../../src/tokenizer/load.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const skip = skipUnlessShared('models/stories260K/hf');

test('long prompts are tokenized on the worker thread to the same ids as inline', { skip }, async () => {
  const tok = loadTokenizer({ kind: 'hf', dir: sharedPath('models/stories260K/hf')! });
  const enc = new PromptEncoder(tok, 512, { inlineChars: 10 });
  try {
    for (const text of ['Once upon a time, there was a little dog named Max.', 'héllo wörld ✓ 🙂 '.repeat(20)]) {
      for (const special of [true, false]) {
        assert.deepEqual(await enc.encode(text, special, 'prompt'), tok.encode(text, { addSpecialTokens: special }));
      }
    }
    // concurrent requests each get their own answer
    const texts = ['The cat sat on the mat.', 'A big red ball rolled away.', 'Lily was happy today.'];
    const got = await Promise.all(texts.map((t) => enc.encode(t, true, 'prompt')));
    assert.deepEqual(
      got,
      texts.map((t) => tok.encode(t)),
    );
  } finally {
    await enc.close();
  }
});

test('a prompt that cannot fit the context is refused before tokenizing', { skip }, async () => {
  const tok = loadTokenizer({ kind: 'hf', dir: sharedPath('models/stories260K/hf')! });
  let calls = 0;
  const counting = Object.assign(Object.create(tok), {
    encode: (t: string, o?: { addSpecialTokens?: boolean }) => (calls++, tok.encode(t, o)),
  });
  const enc = new PromptEncoder(counting, 512);
  const limit = enc.charLimit();
  assert.ok(limit >= 512 && limit < 100_000, String(limit));
  await assert.rejects(enc.encode('happy '.repeat(150_000), true, 'prompt'), (e: Error & { status?: number }) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /900000 characters, more than this server's context of 512 tokens/);
    return true;
  });
  assert.equal(calls, 0);
  await enc.close();
});
