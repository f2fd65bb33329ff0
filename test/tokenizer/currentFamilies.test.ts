/**
 * The tokenizer types of the model families (gemma2/gemma3, qwen3, phi3, llama) load from tokenizer.json through
 * src/tokenizer/ and give the ids worked out by hand from test/helpers/familyTokenizers.ts' vocabularies
 * (merge ranks: 0 "▁ t", 1 "h e", 2 "▁t he", 3 "a t", 4 "▁ c", 5 "▁c at"; Ġ for ▁ in the byte-level one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/tokenizer/load.js';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { byteLevelBpe, gemmaSpBpe, llamaSpBpe } from '../helpers/familyTokenizers.js';

function load(tokenizerJson: Record<string, unknown>, config?: Record<string, unknown>): Tokenizer {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-tok-'));
  try {
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
    if (config) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    return loadTokenizer({ kind: 'hf', dir });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('byte-level BPE (Qwen3): regex split, merges by rank, bytes of é, special tokens, no BOS', () => {
  const tok = load(byteLevelBpe(), { eos_token: '<|im_end|>' });
  assert.equal(tok.vocabSize, 265);
  // "the" | " cat": t·he (no "t he" merge) and Ġ·c·a·t → Ġ·c·at → Ġc·at → Ġcat.
  assert.deepEqual(tok.encode('the cat'), [116, 257, 261]);
  // " the": Ġt (rank 0) · h · e → Ġt · he → Ġthe.
  assert.deepEqual(tok.encode(' the cat'), [258, 261]);
  // "cat" | "'s": c · at and ' · s (no merges across the regex pieces).
  assert.deepEqual(tok.encode("cat's"), [99, 259, 39, 115]);
  // é is UTF-8 C3 A9: two byte tokens (ids = byte values).
  assert.deepEqual(tok.encode('é'), [0xc3, 0xa9]);
  assert.deepEqual(tok.encode('<|im_start|>the<|im_end|>'), [263, 116, 257, 264]);
  assert.equal(tok.bosId, undefined);
  assert.deepEqual(tok.eosIds, [264]);
  assert.equal(tok.decode([258, 261, 0xc3, 0xa9]), ' the caté');
  assert.equal(tok.decode([263, 116, 257, 264], { skipSpecialTokens: true }), 'the');
  assert.equal(tok.tokenString(258), ' the');
  assert.equal(tok.tokenString(0xc3), '\u00c3'); // a lone lead byte: its raw byte as latin1
});

test('SentencePiece BPE with byte fallback, Llama / Phi-3 style: ▁ prepended, <s> first, bytes for unknown chars', () => {
  const tok = load(llamaSpBpe());
  assert.equal(tok.vocabSize, 271);
  // "▁the▁cat": ▁t (0) → he (1) → ▁the (2) → at (3) → ▁c (4) → ▁cat (5).
  assert.deepEqual(tok.encode('the cat'), [1, 267, 270]);
  assert.deepEqual(tok.encode('the cat', { addSpecialTokens: false }), [267, 270]);
  // "▁hat": ▁ · h · at (nothing merges ▁ with h).
  assert.deepEqual(tok.encode('hat'), [1, 259, 261, 268]);
  // é is not a piece: byte fallback to <0xC3> <0xA9> (ids 3 + byte).
  assert.deepEqual(tok.encode('é'), [1, 259, 3 + 0xc3, 3 + 0xa9]);
  assert.deepEqual([tok.bosId, tok.eosIds], [1, [2]]);
  assert.equal(tok.decode([1, 267, 270]), '<s> the cat'); // Strip only sees the fused text's first char
  assert.equal(tok.decode([267, 270, 259, 3 + 0xc3, 3 + 0xa9]), 'the cat é');
  assert.equal(tok.tokenString(270), ' cat');
  assert.equal(tok.tokenString(3 + 0x41), 'A'); // <0x41>
});

test('SentencePiece BPE with byte fallback, Gemma style: spaces → ▁ with none prepended, <bos>, turn markers', () => {
  const tok = load(gemmaSpBpe());
  assert.equal(tok.vocabSize, 274);
  // "the▁cat": he (1) → at (3) → ▁c (4) → ▁cat (5); "t" stays alone.
  assert.deepEqual(tok.encode('the cat'), [2, 263, 268, 273]);
  assert.deepEqual(tok.encode(' the cat'), [2, 270, 273]);
  assert.deepEqual(tok.encode('<start_of_turn>the'), [2, 4, 263, 268]);
  assert.deepEqual(tok.encode('é'), [2, 6 + 0xc3, 6 + 0xa9]);
  assert.deepEqual([tok.bosId, tok.eosIds, tok.padId], [2, [1], undefined]);
  assert.ok(tok.isSpecial(4) && tok.isSpecial(5));
  assert.equal(tok.decode([263, 268, 273, 6 + 0xc3, 6 + 0xa9]), 'the caté');
  assert.equal(tok.tokenString(270), ' the');
});
