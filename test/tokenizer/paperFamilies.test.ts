/**
 * The tokenizers of GPT-Neo, GPT-J and OPT are GPT-2's byte-level BPE, loaded from tokenizer.json: GPT-Neo's is
 * GPT-2's as is, GPT-J's adds 143 <|extratoken_N|> tokens (ids 50257–50399, up to its 50400 rows), OPT's puts
 * <s> <pad> </s> <unk> at ids 0–3 and prepends </s> (its BOS) through the post-processor. Built here from the
 * real GPT-2 files in ../shared with hand-written expected ids. OPT's real file orders the BPE tokens by fairseq's
 * dictionary; this stand-in keeps GPT-2's order shifted by 4, which exercises the same machinery (specials first,
 * a BOS that is not a BPE token, a tokenizer smaller than the model's 50272 rows).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HfTokenizer } from '../../src/tokenizer/hfTokenizer.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const skip = skipUnlessShared('models/gpt2-tokenizer');
type Json = Record<string, unknown>;
const gpt2Json = (): Json =>
  JSON.parse(readFileSync(join(sharedPath('models/gpt2-tokenizer')!, 'tokenizer.json'), 'utf8'));
const special = (id: number, content: string) => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
});

test('GPT-Neo (GPT-2 as is): byte-level BPE ids, spaces and newlines', { skip }, () => {
  const tok = new HfTokenizer({
    tokenizerJson: gpt2Json(),
    modelConfig: { bos_token_id: 50256, eos_token_id: 50256 },
    source: 'neo',
  });
  assert.deepEqual(tok.encode('Hello world'), [15496, 995]);
  assert.deepEqual(tok.encode('The steering'), [464, 19702]); // The, Ġsteering (one token)
  assert.deepEqual(tok.encode('Hello,\n world!'), [15496, 11, 198, 995, 0]);
  assert.equal(tok.decode([15496, 11, 198, 995, 0]), 'Hello,\n world!');
  assert.deepEqual([tok.vocabSize, tok.bosId, tok.eosIds], [50257, 50256, [50256]]);
});

test('GPT-J: GPT-2 plus <|extratoken_1..143|> at 50257–50399', { skip }, () => {
  const j = gpt2Json();
  j.added_tokens = [
    ...(j.added_tokens as unknown[]),
    ...Array.from({ length: 143 }, (_, i) => ({ ...special(50257 + i, `<|extratoken_${i + 1}|>`), special: false })),
  ];
  const tok = new HfTokenizer({ tokenizerJson: j, source: 'gptj' });
  assert.equal(tok.vocabSize, 50400);
  assert.deepEqual(tok.encode('Hello<|extratoken_1|> world'), [15496, 50257, 995]);
  assert.deepEqual(tok.encode('<|extratoken_143|>'), [50399]);
  assert.deepEqual(tok.encode('Hello world'), [15496, 995]);
});

test('OPT-style: specials at 0–3, </s> prepended by the post-processor, BPE ids after them', { skip }, () => {
  const j = gpt2Json();
  const model = j.model as Json;
  const vocab: Record<string, number> = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3 };
  for (const [piece, id] of Object.entries(model.vocab as Record<string, number>))
    if (piece !== '<|endoftext|>') vocab[piece] = id + 4;
  model.vocab = vocab;
  j.added_tokens = [special(0, '<s>'), special(1, '<pad>'), special(2, '</s>'), special(3, '<unk>')];
  j.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '</s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: '</s>', type_id: 0 } },
      { Sequence: { id: 'A', type_id: 0 } },
      { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] } },
  };
  const tok = new HfTokenizer({
    tokenizerJson: j,
    tokenizerConfig: { bos_token: '</s>', eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' },
    modelConfig: { bos_token_id: 2, eos_token_id: 2, pad_token_id: 1 },
    source: 'opt',
  });
  assert.deepEqual(tok.encode('Hello world'), [2, 15500, 999]);
  assert.deepEqual(tok.encode('Hello world', { addSpecialTokens: false }), [15500, 999]);
  assert.equal(tok.decode([2, 15500, 999], { skipSpecialTokens: true }), 'Hello world');
  assert.deepEqual([tok.bosId, tok.eosIds, tok.padId], [2, [2], 1]);
  assert.ok(tok.vocabSize <= 50272, 'fits the model');
});
