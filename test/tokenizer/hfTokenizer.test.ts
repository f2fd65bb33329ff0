import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HfTokenizer } from '../../src/tokenizer/hfTokenizer.js';
import { LmSteerError } from '../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';
import { tinyTokenizerJson } from '../helpers/optimumExport.js';

const GPT2 = 'models/gpt2-tokenizer';
const STORIES = 'models/stories260K';
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

let gpt2Cache: HfTokenizer | undefined;
const gpt2 = () => (gpt2Cache ??= HfTokenizer.fromDir(sharedPath(GPT2)!));

test('gpt2: exact ids and decode round-trip for every expected.json string', { skip: skipUnlessShared(GPT2) }, () => {
  const exp = readJson(join(sharedPath(GPT2)!, 'expected.json'));
  assert.ok(exp.cases.length >= 50);
  const tok = gpt2();
  for (const c of exp.cases as { text: string; ids: number[] }[]) {
    assert.deepEqual(tok.encode(c.text), c.ids, `encode ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids), c.text, `decode ${JSON.stringify(c.text)}`);
  }
  const sp = exp.special_token_case;
  assert.deepEqual(tok.encode(sp.text), sp.hf);
  assert.equal(tok.decode(sp.hf), sp.text);
  assert.equal(tok.decode(sp.hf, { skipSpecialTokens: true }), 'Hithere');
});

test('gpt2: special ids and vocab size', { skip: skipUnlessShared(GPT2) }, () => {
  const tok = gpt2();
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.bosId, 50256);
  assert.deepEqual(tok.eosIds, [50256]);
  assert.equal(tok.padId, undefined);
  assert.ok(tok.isSpecial(50256));
  assert.ok(!tok.isSpecial(15496));
  assert.equal(tok.decode([]), '');
});

test('gpt2: tokenString is the text a token adds inside decoded text', { skip: skipUnlessShared(GPT2) }, () => {
  const tok = gpt2();
  assert.equal(tok.piece(23748), 'Ġhello');
  assert.equal(tok.tokenString(23748), ' hello');
  assert.equal(tok.tokenString(198), '\n');
  assert.equal(tok.tokenString(50256), '<|endoftext|>');
  // whole-character tokens: the same as decoding the token alone
  let partial = 0;
  for (let id = 0; id < tok.vocabSize; id++) {
    const d = tok.decode([id]);
    if (d.includes('\uFFFD')) {
      partial++;
      const s = tok.tokenString(id);
      // a real U+FFFD token (bytes EF BF BD) is itself; a partial character is its raw bytes, never U+FFFD
      assert.ok(s.length > 0 && (s === d || !s.includes('\uFFFD')), `partial token ${id} gives raw bytes`);
    } else {
      assert.equal(tok.tokenString(id), d, `token ${id}`);
    }
  }
  assert.ok(partial > 0 && partial < 2000, `${partial} partial-UTF-8 tokens`);
  // a lone UTF-8 lead byte is its latin1 char: byte 0xE2 is the byte-level char "â"
  assert.equal(tok.tokenString(tok.encode('â')[0]!), 'â'); // a real "â" (C3 A2) is one whole char
  const e2 = [...Array(tok.vocabSize).keys()].find((i) => tok.piece(i) === 'â')!;
  assert.equal(tok.tokenString(e2), '\u00e2');
});

test('gpt2: concatenated tokenStrings give the text back', { skip: skipUnlessShared(GPT2) }, () => {
  const tok = gpt2();
  for (const text of ['Hello, world!', '  two leading spaces', 'line one\nline two', "I'm fine, you're great"]) {
    assert.equal(
      tok
        .encode(text)
        .map((i) => tok.tokenString(i))
        .join(''),
      text,
    );
  }
});

test('stories260K: expected tokenizations (with BOS) and greedy decoding', { skip: skipUnlessShared(STORIES) }, () => {
  const exp = readJson(join(sharedPath(STORIES)!, 'expected.json'));
  const tok = HfTokenizer.fromDir(join(sharedPath(STORIES)!, 'hf'));
  assert.equal(exp.tokenization.cases.length, 5);
  for (const c of exp.tokenization.cases as { text: string; ids: number[] }[]) {
    assert.deepEqual(tok.encode(c.text), c.ids, c.text);
    assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids.slice(1));
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.text);
  }
  const g = exp.greedy_from_bos;
  assert.equal(tok.decode(g.ids, { skipSpecialTokens: true }), g.text);
  assert.equal(tok.decode([...g.prompt_ids, ...g.ids], { skipSpecialTokens: true }), g.text);
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.bosId, 1);
  assert.deepEqual(tok.eosIds, [2]);
  assert.ok(tok.isSpecial(0) && tok.isSpecial(1) && tok.isSpecial(2) && !tok.isSpecial(3));
});

test(
  'stories260K: tokenString keeps the space of "▁" and gives byte tokens as latin1',
  { skip: skipUnlessShared(STORIES) },
  () => {
    const tok = HfTokenizer.fromDir(join(sharedPath(STORIES)!, 'hf'));
    assert.equal(tok.piece(403), '▁Once');
    assert.equal(tok.tokenString(403), ' Once'); // decode([403]) alone strips it to "Once"
    assert.equal(tok.tokenString(3 + 0x0a), '\n');
    assert.equal(tok.tokenString(3 + 0x41), 'A');
    assert.equal(tok.tokenString(3 + 0xe2), '\u00e2');
    assert.equal(tok.tokenString(1), '<s>');
    const ids = tok.encode('Once upon a time, there was', { addSpecialTokens: false });
    assert.equal(ids.map((i) => tok.tokenString(i)).join(''), ' Once upon a time, there was');
    assert.throws(
      () => tok.tokenString(512),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT',
    );
  },
);

test(
  'adds BOS from tokenizer_config.add_bos_token when tokenizer.json has no post-processor',
  { skip: skipUnlessShared(STORIES) },
  () => {
    const tj = readJson(join(sharedPath(STORIES)!, 'hf', 'tokenizer.json'));
    tj.post_processor = null;
    const plain = new HfTokenizer({ tokenizerJson: tj, source: 'mem' });
    assert.deepEqual(plain.encode('Once upon a time'), [403, 407, 261, 378]);
    assert.equal(plain.bosId, 1); // from the special added token named <s>
    assert.deepEqual(plain.eosIds, [2]);
    const withCfg = new HfTokenizer({
      tokenizerJson: tj,
      tokenizerConfig: { add_bos_token: true, bos_token: '<s>' },
      source: 'mem',
    });
    assert.deepEqual(withCfg.encode('Once upon a time'), [1, 403, 407, 261, 378]);
    assert.deepEqual(withCfg.encode('Once upon a time', { addSpecialTokens: false }), [403, 407, 261, 378]);
  },
);

test('generation_config adds extra eos ids', { skip: skipUnlessShared(STORIES) }, () => {
  const tj = readJson(join(sharedPath(STORIES)!, 'hf', 'tokenizer.json'));
  const tok = new HfTokenizer({
    tokenizerJson: tj,
    tokenizerConfig: { eos_token: { content: '</s>' } },
    generationConfig: { eos_token_id: [2, 13], pad_token_id: 0 },
    source: 'mem',
  });
  assert.deepEqual(tok.eosIds, [2, 13]);
  assert.equal(tok.padId, 0);
  assert.ok(tok.isSpecial(13));
});

test('missing or malformed tokenizer.json: clear errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-tok-'));
  try {
    assert.throws(
      () => HfTokenizer.fromDir(dir),
      (e: unknown) => e instanceof LmSteerError && e.code === 'NOT_FOUND' && e.message.includes(dir) && !!e.hint,
    );
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": {"type": "BPE", "vocab": {"a": 0}');
    assert.throws(
      () => HfTokenizer.fromDir(dir),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE' && e.message.includes('tokenizer.json'),
    );
    writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
    assert.throws(
      () => HfTokenizer.fromDir(dir),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE' && /"model"/.test(e.message),
    );
    writeFileSync(join(dir, 'tokenizer.json'), '[1,2]');
    assert.throws(
      () => HfTokenizer.fromDir(dir),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE',
    );
    writeFileSync(
      join(dir, 'tokenizer.json'),
      JSON.stringify({ normalizer: { type: 'Nope' }, model: { type: 'BPE', vocab: { a: 0 }, merges: [] } }),
    );
    assert.throws(
      () => HfTokenizer.fromDir(dir),
      (e: unknown) => e instanceof LmSteerError && e.code === 'UNSUPPORTED',
    );
    writeFileSync(
      join(dir, 'tokenizer.json'),
      JSON.stringify({ model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: [] } }),
    );
    writeFileSync(join(dir, 'tokenizer_config.json'), '{oops');
    assert.throws(
      () => HfTokenizer.fromDir(dir),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE' && e.message.includes('tokenizer_config.json'),
    );
    rmSync(join(dir, 'tokenizer_config.json'));
    const tok = HfTokenizer.fromDir(dir);
    assert.deepEqual(tok.encode('ab'), [0, 1]);
    assert.throws(
      () => tok.decode([5]),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT' && e.message.includes('5'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a text the tokenizer maps to no id (tokenizers.js gives NaN) fails naming the tokenizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-tok-nan-'));
  try {
    writeFileSync(join(dir, 'tokenizer.json'), tinyTokenizerJson(16));
    const tok = HfTokenizer.fromDir(dir);
    assert.deepEqual(tok.encode('w1 w5'), [1, 5]);
    assert.throws(
      () => tok.encode('hello'),
      (e: unknown) =>
        e instanceof LmSteerError &&
        e.code === 'BAD_FILE' &&
        /tokenizer\.json encoded "hello" to token id NaN/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
