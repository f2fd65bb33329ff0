/**
 * Small hand-written tokenizer.json documents of the tokenizer types the model families use, laid out as
 * transformers' converters write them (convert_slow_tokenizer.py), with a vocabulary small enough that the
 * expected ids of a text can be worked out by hand:
 *   byteLevelBpe  Qwen2/Qwen3 (and GPT-2, Phi-4-mini): regex split, bytes as printable chars, no BOS
 *   llamaSpBpe    Llama, Phi-3: SentencePiece BPE with byte fallback, "▁" prepended, <s> BOS
 *   gemmaSpBpe    Gemma 2/3: SentencePiece BPE with byte fallback, spaces → "▁" without a prepended one, <bos>
 * The merges are the same six in each, over the same pieces: " t", "he", " the", "at", " c", " cat".
 */

/** GPT-2's bytes_to_unicode(): the printable char standing for each byte in byte-level vocabularies. */
export function byteChar(b: number): string {
  const printable = (x: number) => (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
  if (printable(b)) return String.fromCharCode(b);
  let n = 0;
  for (let x = 0; x < b; x++) if (!printable(x)) n++;
  return String.fromCharCode(256 + n);
}

const SPACE_MERGES = (space: string) => [
  [space, 't'],
  ['h', 'e'],
  [`${space}t`, 'he'],
  ['a', 't'],
  [space, 'c'],
  [`${space}c`, 'at'],
];

function added(id: number, content: string, special = true) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

/** Byte-level BPE as Qwen's: ids 0..255 are the bytes, 256..261 the merged pieces, 262..264 special tokens. */
export const BYTE_LEVEL = { endOfText: 262, imStart: 263, imEnd: 264, vocabSize: 265 };

export function byteLevelBpe(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[byteChar(b)] = b;
  const G = byteChar(32); // "Ġ"
  const merges = SPACE_MERGES(G);
  merges.forEach(([a, b], i) => (vocab[a! + b!] = 256 + i));
  const pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      added(BYTE_LEVEL.endOfText, '<|endoftext|>'),
      added(BYTE_LEVEL.imStart, '<|im_start|>'),
      added(BYTE_LEVEL.imEnd, '<|im_end|>'),
    ],
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, byteLevel],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** SentencePiece BPE pieces after the special tokens and the 256 byte tokens <0x00>..<0xFF>. */
function spVocab(specials: string[]): { vocab: Record<string, number> } {
  const vocab: Record<string, number> = {};
  specials.forEach((s, i) => (vocab[s] = i));
  const byteBase = specials.length;
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = byteBase + b;
  let next = byteBase + 256;
  for (const piece of ['▁', 't', 'h', 'e', 'c', 'a', 'he', '▁t', '▁the', 'at', '▁c', '▁cat']) vocab[piece] = next++;
  return { vocab };
}

function spModel(vocab: Record<string, number>, unk: string): Record<string, unknown> {
  return {
    type: 'BPE',
    dropout: null,
    unk_token: unk,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: true,
    ignore_merges: false,
    vocab,
    merges: SPACE_MERGES('▁').map(([a, b]) => `${a} ${b}`),
  };
}

function bosTemplate(bos: string, id: number) {
  return {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: bos, type_id: 0 } },
      { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: bos, type_id: 1 } },
      { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { [bos]: { id: bos, ids: [id], tokens: [bos] } },
  };
}

/** Llama / Phi-3 (LlamaConverter, legacy): <unk> 0, <s> 1, </s> 2, bytes 3..258, pieces 259..270. */
export const LLAMA_SP = { vocabSize: 271 };

export function llamaSpBpe(): Record<string, unknown> {
  const { vocab } = spVocab(['<unk>', '<s>', '</s>']);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: bosTemplate('<s>', 1),
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: spModel(vocab, '<unk>'),
  };
}

/** Gemma (GemmaConverter): <pad> 0, <eos> 1, <bos> 2, <unk> 3, turn markers 4 and 5, bytes 6..261, pieces 262..273. */
export const GEMMA_SP = { vocabSize: 274 };

export function gemmaSpBpe(): Record<string, unknown> {
  const { vocab } = spVocab(['<pad>', '<eos>', '<bos>', '<unk>', '<start_of_turn>', '<end_of_turn>']);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['<pad>', '<eos>', '<bos>', '<unk>', '<start_of_turn>', '<end_of_turn>'].map((t, i) => added(i, t)),
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false },
    post_processor: bosTemplate('<bos>', 2),
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
      ],
    },
    model: spModel(vocab, '<unk>'),
  };
}
