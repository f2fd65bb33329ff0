import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HfTokenizer } from '../../src/tokenizer/hfTokenizer.js';
import {
  llama2cToHfTokenizer,
  loadLlama2cTokenizer,
  parseLlama2cTokenizer,
} from '../../src/tokenizer/llama2cTokenizer.js';
import { LmSteerError } from '../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const S = 'models/stories260K';
const binPath = () => join(sharedPath(S)!, 'llama2c', 'tokenizer.bin');
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
const isErr = (code: string, re?: RegExp) => (e: unknown) =>
  e instanceof LmSteerError && e.code === code && (!re || re.test(e.message)) && !!e.hint;

test(
  'tok512 tokenizer.bin parses: 512 tokens, max length 7, specials as llama2.c stores them',
  { skip: skipUnlessShared(S) },
  () => {
    const v = parseLlama2cTokenizer(readFileSync(binPath()), binPath());
    assert.equal(v.maxTokenLength, 7);
    assert.equal(v.pieces.length, 512);
    assert.deepEqual(v.pieces.slice(0, 4), ['<unk>', '\n<s>\n', '\n</s>\n', '<0x00>']);
  },
);

test(
  'tok512 converts to exactly hf/tokenizer.json (vocab, merges, every section) and its config',
  { skip: skipUnlessShared(S) },
  () => {
    const v = parseLlama2cTokenizer(readFileSync(binPath()), binPath());
    const { tokenizerJson, tokenizerConfig } = llama2cToHfTokenizer(v, binPath());
    const ref = readJson(join(sharedPath(S)!, 'hf', 'tokenizer.json'));
    const model = tokenizerJson.model as { vocab: unknown; merges: string[] };
    assert.equal(model.merges.length, 165);
    assert.deepEqual(model.vocab, ref.model.vocab);
    assert.deepEqual(model.merges, ref.model.merges);
    assert.deepEqual(tokenizerJson, ref);
    const refCfg = readJson(join(sharedPath(S)!, 'hf', 'tokenizer_config.json'));
    for (const k of [
      'add_bos_token',
      'add_eos_token',
      'bos_token',
      'eos_token',
      'unk_token',
      'legacy',
      'clean_up_tokenization_spaces',
    ]) {
      assert.deepEqual(tokenizerConfig[k], refCfg[k], k);
    }
  },
);

test(
  'tok512 tokenizes the expected cases like hf/tokenizer.json and decodes the greedy ids',
  { skip: skipUnlessShared(S) },
  () => {
    const exp = readJson(join(sharedPath(S)!, 'expected.json'));
    const tok = loadLlama2cTokenizer(binPath(), { vocabSize: 512 });
    const hf = HfTokenizer.fromDir(join(sharedPath(S)!, 'hf'));
    const extra = ['', ' ', '  two  spaces  ', 'tab\there\nnewline', '日本語 مرحبا 👨‍👩‍👧', '<s> not special in run.c'];
    for (const c of exp.tokenization.cases as { text: string; ids: number[] }[]) {
      assert.deepEqual(tok.encode(c.text), c.ids, c.text);
    }
    for (const t of [...exp.tokenization.cases.map((c: { text: string }) => c.text), ...extra]) {
      assert.deepEqual(tok.encode(t), hf.encode(t), JSON.stringify(t));
    }
    assert.equal(tok.decode(exp.greedy_from_bos.ids, { skipSpecialTokens: true }), exp.greedy_from_bos.text);
    assert.equal(tok.bosId, 1);
    assert.deepEqual(tok.eosIds, [2]);
    assert.equal(tok.vocabSize, 512);
    assert.equal(tok.tokenString(403), ' Once');
  },
);

test('malformed or truncated tokenizer.bin: BAD_FILE naming the problem', { skip: skipUnlessShared(S) }, () => {
  const good = readFileSync(binPath());
  const p = (b: Uint8Array) => () => parseLlama2cTokenizer(b, 'x/tokenizer.bin');
  assert.throws(p(good.subarray(0, 2)), isErr('BAD_FILE', /too short/));
  assert.throws(p(good.subarray(0, good.length - 3)), isErr('BAD_FILE', /truncated.*token 511/));
  assert.throws(p(good.subarray(0, good.length - 5)), isErr('BAD_FILE', /truncated/));
  const badLen = Uint8Array.from(good);
  new DataView(badLen.buffer).setInt32(8, 1000, true); // length of token 0
  assert.throws(p(badLen), isErr('BAD_FILE', /token 0 has length 1000/));
  const badMax = Uint8Array.from(good);
  new DataView(badMax.buffer).setInt32(0, -1, true);
  assert.throws(p(badMax), isErr('BAD_FILE', /max_token_length/));
  const notUtf8 = Uint8Array.from(good);
  notUtf8[12] = 0xff; // first byte of "<unk>"
  assert.throws(p(notUtf8), isErr('BAD_FILE', /UTF-8/));
  assert.throws(() => loadLlama2cTokenizer(binPath(), { vocabSize: 32000 }), isErr('MODEL_MISMATCH', /512 tokens/));
  assert.throws(() => loadLlama2cTokenizer('/nonexistent/tok.bin'), isErr('NOT_FOUND', /nonexistent/));
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-l2c-'));
  try {
    const f = join(dir, 'tokenizer.bin');
    writeFileSync(f, good.subarray(0, 101));
    assert.throws(() => loadLlama2cTokenizer(f), isErr('BAD_FILE', /tokenizer\.bin/));
    // cut exactly after token 6: the format cannot tell, only the model's vocab_size can
    writeFileSync(f, good.subarray(0, 100));
    assert.equal(loadLlama2cTokenizer(f).vocabSize, 7);
    assert.throws(() => loadLlama2cTokenizer(f, { vocabSize: 512 }), isErr('MODEL_MISMATCH', /7 tokens/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tokenizer.bin without llama2.c specials at 0..2 is refused', () => {
  const enc = new TextEncoder();
  const parts: number[] = [];
  const i32 = (v: number) => parts.push(...new Uint8Array(Int32Array.of(v).buffer));
  i32(3);
  for (const s of ['a', 'b', 'c', 'ab']) {
    parts.push(...new Uint8Array(Float32Array.of(0).buffer));
    i32(s.length);
    parts.push(...enc.encode(s));
  }
  const v = parseLlama2cTokenizer(Uint8Array.from(parts), 'mem');
  assert.deepEqual(v.pieces, ['a', 'b', 'c', 'ab']);
  assert.throws(() => llama2cToHfTokenizer(v, 'mem'), isErr('UNSUPPORTED', /token 0/));
});
