import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { TextStream } from '../../src/runtime/textStream.js';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { FakeTokenizer } from '../helpers/fakeDecoder.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

function run(tok: Tokenizer, ids: number[], opts: { context?: number[]; stop?: string[] } = {}) {
  const s = new TextStream(tok, opts);
  const deltas: string[] = [];
  let stoppedAt = -1;
  for (let i = 0; i < ids.length; i++) {
    const u = s.push(ids[i]);
    deltas.push(u.delta);
    if (u.stopped) {
      stoppedAt = i;
      break;
    }
  }
  if (stoppedAt < 0) deltas.push(s.finish().delta);
  assert.equal(deltas.join(''), s.text, 'deltas concatenate to the text');
  return { deltas, text: s.text, stoppedAt };
}

test('a character split over byte tokens is emitted whole, once its last byte arrives', () => {
  const tok = new FakeTokenizer();
  const ids = [tok.word('Hello'), ...tok.bytes('—'), tok.word(' world'), ...tok.bytes('🍰')];
  const { deltas, text } = run(tok, ids);
  assert.deepEqual(deltas, ['Hello', '', '', '—', ' world', '', '', '', '🍰', '']);
  assert.equal(text, 'Hello— world🍰');
  for (const d of deltas) assert.ok(!d.includes('\uFFFD'));
});

test('finish() flushes an incomplete character as U+FFFD (what decode gives)', () => {
  const tok = new FakeTokenizer();
  const { text } = run(tok, [tok.word('a'), ...tok.bytes('—').slice(0, 2)]);
  assert.equal(text, tok.decode([tok.word('a'), ...tok.bytes('—').slice(0, 2)]));
  assert.ok(text.endsWith('\uFFFD'));
});

test('stop strings: cut before the match, across token boundaries and inside a token; held back until decided', () => {
  const tok = new FakeTokenizer();
  const w = (x: string) => tok.word(x);
  // 'END' as one token
  let r = run(tok, [w('the'), w(' cat'), w('END'), w(' sat')], { stop: ['END'] });
  assert.equal(r.text, 'the cat');
  assert.equal(r.stoppedAt, 2);
  // 'E' + 'ND' across tokens: 'E' is held back, then the match cuts it
  r = run(tok, [w('the'), w('E'), w('ND'), w(' sat')], { stop: ['END'] });
  assert.deepEqual(r.deltas, ['the', '', '']);
  assert.equal(r.text, 'the');
  // 'E' that turns out not to be a stop: released with the next token
  r = run(tok, [w('the'), w('E'), w(' cat')], { stop: ['END'] });
  assert.deepEqual(r.deltas, ['the', '', 'E cat', '']);
  // a match in the middle of a token's text: 'c' + 'at.' — stop '.' inside ' mat.'? use ' sat' + '.' with stop 't.'
  r = run(tok, [w(' cat'), w(' sat'), w('.'), w('a')], { stop: ['t.'] });
  assert.equal(r.text, ' cat sa');
  // the earliest of several stop strings wins; held-back text of the other is cut too
  r = run(tok, [w('a'), w('\n'), w('b'), w('END')], { stop: ['END', '\n'] });
  assert.equal(r.text, 'a');
  // a stop string made of a multi-byte character split over byte tokens
  r = run(tok, [w('a'), ...tok.bytes('—'), w('b')], { stop: ['—'] });
  assert.equal(r.text, 'a');
});

test('no stop strings: nothing is held back', () => {
  const tok = new FakeTokenizer();
  const r = run(tok, [tok.word('E'), tok.word('ND')]);
  assert.deepEqual(r.deltas, ['E', 'ND', '']);
});

test('a prompt ending inside a character: the completed character goes to the continuation', () => {
  const tok = new FakeTokenizer();
  const b = tok.bytes('—');
  const r = run(tok, [b[2], tok.word('a')], { context: [0, tok.word('the'), b[0], b[1]] });
  assert.equal(r.text, '—a');
});

/** Minimal adapter of tokenizers.js to the Tokenizer interface (the real one lives in src/tokenizer/). */
function hfTokenizer(dir: string): Tokenizer {
  const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  const t = new HfTokenizer(json, config);
  return {
    vocabSize: 0,
    eosIds: [],
    encode: (text, o) => t.encode(text, { add_special_tokens: o?.addSpecialTokens ?? true }).ids.map(Number),
    decode: (ids, o) => t.decode(ids, { skip_special_tokens: o?.skipSpecialTokens ?? false }),
    tokenString: (id) => t.decode([id]),
    isSpecial: () => false,
  };
}

const TEXTS = [
  'Once upon a time, there was a little girl.',
  ' Zoë ate crème brûlée 🍰 — yum!\nThe end.',
  '  two  spaces and\ttabs',
  '日本語のテキスト 👩‍👩‍👧',
];

for (const model of ['stories260K/hf', 'gpt2-tokenizer']) {
  test(
    `real ${model} tokenizer: streamed text = decode(prompt + continuation) minus decode(prompt), no partial characters`,
    { skip: skipUnlessShared('models', model) },
    () => {
      const tok = hfTokenizer(sharedPath('models', model)!);
      for (const prompt of ['Say', 'The cat']) {
        for (const cont of TEXTS) {
          const all = tok.encode(prompt + cont);
          const p = tok.encode(prompt);
          assert.deepEqual(all.slice(0, p.length), p, 'prompt tokens are a prefix (test precondition)');
          const { deltas, text } = run(tok, all.slice(p.length), { context: p });
          const full = tok.decode(all, { skipSpecialTokens: true });
          const head = tok.decode(p, { skipSpecialTokens: true });
          assert.equal(head + text, full, `${prompt} | ${cont}`);
          for (const d of deltas) assert.ok(!d.includes('\uFFFD'), `partial character in ${JSON.stringify(d)}`);
        }
      }
    },
  );
}
