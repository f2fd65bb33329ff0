/**
 * llama2.c `tokenizer.bin` → a Hugging Face tokenizer.json (the Llama "legacy" pipeline transformers'
 * LlamaConverter writes), loaded through HfTokenizer. The conversion is the one in
 * ../shared/models/_tools/convert_stories260k.py, so tok512 gives exactly stories260K/hf/tokenizer.json.
 *
 * File layout (llama2.c tokenizer.py export / run.c build_tokenizer): int32 max_token_length, then per token
 * float32 score, int32 byte length, UTF-8 bytes. The token count is not stored: run.c takes it from the model.
 */
import { FILE_LIMITS, readRegularFile } from '../formats/safeRead.js';
import { LmSteerError } from '../util/errors.js';
import { HfTokenizer } from './hfTokenizer.js';

const SPACE = '\u2581'; // sentencepiece's "▁"; llama2.c stores it as a plain space
const SPECIALS = ['<unk>', '<s>', '</s>'] as const;
// how llama2.c's export writes BOS/EOS (so run.c can print them on their own line)
const STORED_SPECIALS = ['<unk>', '\n<s>\n', '\n</s>\n'];

export interface Llama2cVocab {
  maxTokenLength: number;
  /** The pieces as stored (plain spaces, "\n<s>\n"). */
  pieces: string[];
  scores: number[];
}

/** Parse tokenizer.bin bytes; BAD_FILE naming `source` and the byte offset on anything malformed. */
export function parseLlama2cTokenizer(bytes: Uint8Array, source: string): Llama2cVocab {
  const bad = (what: string) =>
    new LmSteerError(
      'BAD_FILE',
      `${source} is not a valid llama2.c tokenizer.bin: ${what}`,
      'use the tokenizer.bin (or tok512.bin etc.) that came with the llama2.c model, or download it again',
    );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4)
    throw bad(`only ${bytes.byteLength} bytes, too short for the int32 max_token_length header`);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) throw bad(`max_token_length is ${maxTokenLength}`);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const pieces: string[] = [];
  const scores: number[] = [];
  let off = 4;
  while (off < bytes.byteLength) {
    const id = pieces.length;
    if (off + 8 > bytes.byteLength) throw bad(`truncated at byte ${off}, inside the header of token ${id}`);
    const score = view.getFloat32(off, true);
    const len = view.getInt32(off + 4, true);
    off += 8;
    if (!Number.isFinite(score)) throw bad(`token ${id} has score ${score}`);
    if (len < 0 || len > maxTokenLength)
      throw bad(`token ${id} has length ${len} (max_token_length is ${maxTokenLength})`);
    if (off + len > bytes.byteLength)
      throw bad(`truncated at byte ${bytes.byteLength}: token ${id} needs ${len} bytes from byte ${off}`);
    try {
      pieces.push(utf8.decode(bytes.subarray(off, off + len)));
    } catch {
      throw bad(`token ${id} (at byte ${off}) is not valid UTF-8`);
    }
    scores.push(score);
    off += len;
  }
  if (pieces.length < SPECIALS.length) throw bad(`only ${pieces.length} tokens`);
  return { maxTokenLength, pieces, scores };
}

/** Characters of candidate halves looked up while extracting merges; real vocabularies need a few million. */
export const MERGE_WORK_LIMIT = 300_000_000;

/**
 * transformers' SentencePieceExtractor.extract(vocab_scores): every split of every piece into two vocab pieces is
 * a merge (ordered by the ids of the halves), then all merges stably sorted by the merged piece's score, highest
 * first. Splits are by code point, as Python slices strings.
 * Only splits whose two halves both have the length of some vocab piece are looked up, and the characters
 * looked up are budgeted: rebuilding every prefix of every piece was quadratic in a piece's length (a 240 KB
 * file with 60,000-character tokens took minutes).
 */
export function extractMerges(pieces: string[], scores: number[], source = 'tokenizer'): [string, string][] {
  const vocab = new Map(pieces.map((p, i) => [p, i]));
  const lengths = new Set<number>();
  const cpLength = (p: string) => {
    let n = 0;
    for (const _ of p) n++;
    return n;
  };
  for (const p of pieces) lengths.add(cpLength(p));
  let work = 0;
  const merges: { left: string; right: string; score: number }[] = [];
  pieces.forEach((piece, i) => {
    // UTF-16 offset of each code point boundary, so halves are plain (cheap) slices
    const at: number[] = [0];
    for (const ch of piece) at.push(at[at.length - 1]! + ch.length);
    const L = at.length - 1;
    const local: { left: string; right: string; score: number }[] = [];
    for (let k = 1; k < L; k++) {
      if (!lengths.has(k) || !lengths.has(L - k)) continue;
      work += at[L]!;
      if (work > MERGE_WORK_LIMIT) {
        throw new LmSteerError(
          'BAD_FILE',
          `${source}: its tokens overlap in too many ways to convert (more than ${MERGE_WORK_LIMIT} characters of merge candidates)`,
          'this is not a real llama2.c tokenizer; use the tokenizer.bin that came with the model',
        );
      }
      const left = piece.slice(0, at[k]);
      const right = piece.slice(at[k]);
      if (vocab.has(left) && vocab.has(right)) local.push({ left, right, score: scores[i]! });
    }
    local.sort((a, b) => vocab.get(a.left)! - vocab.get(b.left)! || vocab.get(a.right)! - vocab.get(b.right)!);
    merges.push(...local);
  });
  merges.sort((a, b) => b.score - a.score); // Array.prototype.sort is stable, like Python's
  return merges.map((m) => [m.left, m.right]);
}

/** The tokenizer.json and tokenizer_config.json transformers' LlamaConverter would write for this vocabulary. */
export function llama2cToHfTokenizer(
  vocab: Llama2cVocab,
  source: string,
): { tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  STORED_SPECIALS.forEach((s, i) => {
    if (vocab.pieces[i] !== s) {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${source}: token ${i} is ${JSON.stringify(vocab.pieces[i])}, expected ${JSON.stringify(s)} (llama2.c's <unk>, <s>, </s> at ids 0, 1, 2)`,
        'only sentencepiece-Llama tokenizers exported by llama2.c tokenizer.py are supported; use the Hugging Face tokenizer.json of the model instead',
      );
    }
  });
  const pieces = vocab.pieces.map((p, i) => (i < SPECIALS.length ? SPECIALS[i]! : p.split(' ').join(SPACE)));
  const seen = new Map<string, number>();
  pieces.forEach((p, i) => {
    const j = seen.get(p);
    if (j !== undefined)
      throw new LmSteerError(
        'BAD_FILE',
        `${source}: tokens ${j} and ${i} are both ${JSON.stringify(p)}`,
        'the tokenizer.bin is corrupt; download it again',
      );
    seen.set(p, i);
  });
  // LlamaConverter.vocab(): ids 0..2 get score 0, the rest keep their sentencepiece scores.
  const scores = vocab.scores.map((s, i) => (i < SPECIALS.length ? 0 : s));
  const merges = extractMerges(pieces, scores, source);
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((c, i) => special(i, c)),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(pieces.map((p, i) => [p, i])),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: true,
    tokenizer_class: 'LlamaTokenizer',
  };
  return { tokenizerJson, tokenizerConfig };
}

/**
 * Load a llama2.c tokenizer.bin as an HfTokenizer. `vocabSize` (the model's) must match the token count when
 * given: run.c would silently read a prefix of a bigger file, which means the tokenizer belongs to another model.
 */
export function loadLlama2cTokenizer(path: string, opts: { vocabSize?: number } = {}): HfTokenizer {
  const bytes = readRegularFile(path, FILE_LIMITS.tokenizerBin, 'llama2.c tokenizer');
  const vocab = parseLlama2cTokenizer(bytes, path);
  if (opts.vocabSize !== undefined && opts.vocabSize !== vocab.pieces.length) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `${path} has ${vocab.pieces.length} tokens but the model's vocab_size is ${opts.vocabSize}`,
      'use the tokenizer.bin made for this model',
    );
  }
  const { tokenizerJson, tokenizerConfig } = llama2cToHfTokenizer(vocab, path);
  return new HfTokenizer({
    tokenizerJson,
    tokenizerConfig,
    generationConfig: { bos_token_id: 1, eos_token_id: 2 },
    source: path,
  });
}
