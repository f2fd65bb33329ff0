/**
 * The `Tokenizer` of lmsteer over @huggingface/tokenizers (tokenizers.js): a Hugging Face tokenizer.json plus the
 * optional tokenizer_config.json, generation_config.json and config.json that say which ids are BOS/EOS/pad.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as TokenizersJs } from '@huggingface/tokenizers';
import { FILE_LIMITS, readJsonFile } from '../formats/safeRead.js';
import { LmSteerError } from '../util/errors.js';
import type { LocalTokenizerSource, Tokenizer } from './tokenizer.js';

type Json = Record<string, unknown>;

/** The JSON documents a Hugging Face tokenizer is made of; only `tokenizerJson` is required. */
export interface HfTokenizerFiles {
  tokenizerJson: unknown;
  tokenizerConfig?: Json;
  generationConfig?: Json;
  /** config.json of the model: a last resort for bos/eos/pad ids. */
  modelConfig?: Json;
  /** Where the files came from, for error messages (a folder or a file path). */
  source: string;
}

const TOKENIZER_JSON_HINT =
  'point lmsteer at a Hugging Face model folder that has tokenizer.json; a model that ships only vocab.json/merges.txt ' +
  'or tokenizer.model can be converted with transformers: AutoTokenizer.from_pretrained(dir).save_pretrained(dir)';

/** tokenizer.json model types tokenizers.js handles (WordLevel by its word-lookup fallback); others it would guess at. */
const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram', 'WordLevel'];

/** `dir`/tokenizer.json, or NOT_FOUND saying how to make one: a check cheap enough to run before a long build. */
export function tokenizerJsonIn(dir: string): string {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path)) throw new LmSteerError('NOT_FOUND', `no tokenizer.json in ${dir}`, TOKENIZER_JSON_HINT);
  return path;
}

function readOptionalJsonObject(path: string): Json | undefined {
  if (!existsSync(path)) return undefined;
  const v = readJsonFile(path);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new LmSteerError(
      'BAD_FILE',
      `${path} holds ${Array.isArray(v) ? 'an array' : typeof v}, expected a JSON object`,
      'download the file again',
    );
  }
  return v as Json;
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId?: number;
  readonly eosIds: number[];
  readonly padId?: number;
  readonly source: string;
  /** Set by loadTokenizer (load.ts). */
  origin?: LocalTokenizerSource;
  private readonly tok: TokenizersJs;
  private readonly specialIds: Set<number>;
  private readonly cleanUpSpaces: boolean;
  private readonly addBos: boolean;
  private readonly addEos: boolean;
  private readonly decoderSpec: unknown;
  private tokenStrings?: string[];

  /** Load `dir`/tokenizer.json with tokenizer_config.json, generation_config.json and config.json when present. */
  static fromDir(dir: string): HfTokenizer {
    const path = tokenizerJsonIn(dir);
    return new HfTokenizer({
      tokenizerJson: readJsonFile(path, { maxBytes: FILE_LIMITS.tokenizer, what: 'tokenizer' }),
      tokenizerConfig: readOptionalJsonObject(join(dir, 'tokenizer_config.json')),
      generationConfig: readOptionalJsonObject(join(dir, 'generation_config.json')),
      modelConfig: readOptionalJsonObject(join(dir, 'config.json')),
      source: path,
    });
  }

  constructor(files: HfTokenizerFiles) {
    this.source = files.source;
    const tj = files.tokenizerJson as Json;
    if (tj === null || typeof tj !== 'object' || Array.isArray(tj)) {
      throw new LmSteerError('BAD_FILE', `${files.source} is not a tokenizer.json object`, TOKENIZER_JSON_HINT);
    }
    const model = tj.model as Json | undefined;
    if (!model || typeof model !== 'object' || !model.vocab) {
      throw new LmSteerError(
        'BAD_FILE',
        `${files.source} has no "model" section (with "type" and "vocab")`,
        TOKENIZER_JSON_HINT,
      );
    }
    if (model.type !== undefined && !MODEL_TYPES.includes(model.type as string)) {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${files.source}: tokenizer model type ${JSON.stringify(model.type)} is not supported`,
        `supported: ${MODEL_TYPES.join(', ')}`,
      );
    }
    if (!Array.isArray(tj.added_tokens ?? [])) {
      throw new LmSteerError('BAD_FILE', `${files.source}: "added_tokens" must be an array`, TOKENIZER_JSON_HINT);
    }
    const cfg: Json = { ...(files.tokenizerConfig ?? {}) };
    // tokenizers.js cleans up spaces (" ." → ".") unless told otherwise; current transformers defaults to not doing
    // it, and generated text must round-trip, so an absent setting means false here.
    this.cleanUpSpaces = cfg.clean_up_tokenization_spaces === true;
    cfg.clean_up_tokenization_spaces = this.cleanUpSpaces;
    try {
      // tokenizers.js insists on these keys being present; transformers writes them as null when unused.
      const full = {
        normalizer: null,
        pre_tokenizer: null,
        post_processor: null,
        decoder: null,
        ...tj,
        added_tokens: tj.added_tokens ?? [],
      };
      this.tok = new TokenizersJs(full, cfg);
    } catch (e) {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${files.source} could not be loaded by @huggingface/tokenizers: ${(e as Error).message}`,
        'the tokenizer.json uses a feature tokenizers.js does not support, or is malformed; re-save it with a recent transformers',
        { cause: e },
      );
    }
    this.decoderSpec = tj.decoder;

    const vocab = this.tok.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    if (this.vocabSize === 0) {
      throw new LmSteerError('BAD_FILE', `${files.source} has an empty vocabulary`, TOKENIZER_JSON_HINT);
    }

    const added = this.tok.get_added_tokens_decoder();
    const idOfName = (v: unknown): number | undefined => {
      const content = typeof v === 'string' ? v : v && typeof v === 'object' ? (v as Json).content : undefined;
      return typeof content === 'string' ? this.tok.token_to_id(content) : undefined;
    };
    const gen = files.generationConfig ?? {};
    const mc = files.modelConfig ?? {};
    // An id outside the vocabulary would never be produced (an EOS that never stops) or fed (a BOS the model
    // cannot embed): refused, naming the file and field, instead of being dropped.
    const ids = (v: unknown, field?: string, file?: Json): number[] => {
      const list = (Array.isArray(v) ? v : [v]).filter((x): x is number => Number.isInteger(x));
      const out = list.find((x) => x < 0 || x >= this.vocabSize);
      if (out !== undefined && field) {
        const where = file === gen ? 'generation_config.json' : 'config.json';
        throw new LmSteerError(
          'BAD_FILE',
          `${files.source}: ${where} gives ${field} ${out}, outside the tokenizer's ${this.vocabSize} ids`,
          'the tokenizer and the model files do not belong together; use the files saved with the model',
        );
      }
      return list.filter((x) => x >= 0 && x < this.vocabSize);
    };
    // Special tokens by their usual names, for a bare tokenizer.json without configs.
    const byName = (names: string[]): number | undefined => {
      for (const t of added.values()) if (t.special && names.includes(t.content)) return t.id;
      return undefined;
    };

    this.bosId =
      ids(gen.bos_token_id, 'bos_token_id', gen)[0] ??
      idOfName(cfg.bos_token) ??
      ids(mc.bos_token_id, 'bos_token_id', mc)[0] ??
      byName(['<s>', '<|begin_of_text|>', '<bos>', '<|startoftext|>']);
    let eos = [
      ...ids(gen.eos_token_id, 'eos_token_id', gen),
      ...[idOfName(cfg.eos_token)].filter((x): x is number => x !== undefined),
    ];
    if (eos.length === 0) eos = ids(mc.eos_token_id, 'eos_token_id', mc);
    if (eos.length === 0) {
      const e = byName(['</s>', '<|endoftext|>', '<|end_of_text|>', '<eos>', '<|eot_id|>', '<|im_end|>']);
      if (e !== undefined) eos = [e];
    }
    this.eosIds = [...new Set(eos)];
    this.padId = ids(gen.pad_token_id)[0] ?? idOfName(cfg.pad_token) ?? ids(mc.pad_token_id)[0];

    this.specialIds = new Set([...added.values()].filter((t) => t.special).map((t) => t.id));
    for (const id of [this.bosId, ...this.eosIds, this.padId]) if (id !== undefined) this.specialIds.add(id);

    // transformers' LlamaTokenizerFast adds BOS/EOS from these flags itself when tokenizer.json has no
    // post-processor; with one, the post-processor already says what to add.
    const noPost = tj.post_processor === null || tj.post_processor === undefined;
    this.addBos = noPost && cfg.add_bos_token === true && this.bosId !== undefined;
    this.addEos = noPost && cfg.add_eos_token === true && this.eosIds.length > 0;
  }

  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[] {
    const add = opts?.addSpecialTokens ?? true;
    const ids: number[] = this.tok.encode(text, { add_special_tokens: add }).ids.map(Number);
    // tokenizers.js gives NaN ids for pieces some models cannot map (seen: WordLevel's unknown words); an id
    // that is no id must fail here, naming the tokenizer, not later as a wrong token.
    const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0);
    if (bad >= 0) {
      throw new LmSteerError(
        'BAD_FILE',
        `${this.source} encoded ${JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)} to token id ${ids[bad]} at position ${bad}`,
        'the tokenizer cannot encode this text (an unknown token without a working unk_token?); check tokenizer.json',
      );
    }
    if (add && this.addBos && ids[0] !== this.bosId) ids.unshift(this.bosId!);
    if (add && this.addEos) ids.push(this.eosIds[0]!);
    return ids;
  }

  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string {
    for (const id of ids) this.checkId(id);
    const kept = opts?.skipSpecialTokens ? ids.filter((id) => !this.specialIds.has(id)) : ids;
    // tokenizers.js throws on an empty list; the decoding of nothing is the empty string.
    if (kept.length === 0) return '';
    return this.tok.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  /**
   * The text token `id` contributes inside decoded text: GPT-2 "Ġhello" → " hello", Llama "▁the" → " the" (the
   * decoder's strip of the very first space is not applied, as the token is seen mid-text). A token whose bytes
   * are not complete UTF-8 on their own (Llama <0xE2>, a GPT-2 token holding half a character) gives its raw bytes
   * as latin1 characters, one char per byte (<0xE2> → "\u00e2"), so no two byte tokens look alike and none is empty.
   * Special tokens give their content ("<|endoftext|>"). Computed once for the whole vocabulary.
   */
  tokenString(id: number): string {
    this.checkId(id);
    if (!this.tokenStrings) {
      const added = this.tok.get_added_tokens_decoder(); // a fresh Map per call: fetch it once for the vocab
      this.tokenStrings = Array.from(
        { length: this.vocabSize },
        (_, i) => added.get(i)?.content ?? this.computeTokenString(i),
      );
    }
    return this.tokenStrings[id]!;
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The vocabulary piece of `id` as stored in tokenizer.json ("Ġhello", "▁the", "<0x0A>"). */
  piece(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `token id ${id} is outside the vocabulary of ${this.source} (0..${this.vocabSize - 1})`,
        'the ids come from another model or tokenizer',
      );
    }
  }

  private computeTokenString(id: number): string {
    const piece = this.tok.id_to_token(id);
    if (piece === undefined) return '';
    const r = applyDecoderToPiece(piece, this.decoderSpec);
    return r ?? this.tok.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}

/**
 * One piece through the steps of a tokenizer.json decoder, skipping the steps that only act at the ends of the
 * whole text (Strip) or across pieces (Fuse). Returns undefined for a decoder it does not know (the caller then
 * asks tokenizers.js to decode the lone token). Hand-written because tokenizers.js only decodes whole sequences.
 */
function applyDecoderToPiece(piece: string, spec: unknown): string | undefined {
  let text = piece;
  let bytes: Uint8Array | undefined;
  const steps: Json[] = [];
  const flatten = (s: unknown): boolean => {
    if (s === null || s === undefined) return true;
    const d = s as Json;
    if (d.type === 'Sequence' && Array.isArray(d.decoders)) return d.decoders.every(flatten);
    steps.push(d);
    return true;
  };
  flatten(spec);
  for (const d of steps) {
    if (bytes) break; // after bytes are known only whole-text steps (Fuse, Strip) can follow
    switch (d.type) {
      case 'Replace': {
        const pat = d.pattern as Json;
        const content = String(d.content ?? '');
        if (typeof pat?.String === 'string') text = text.split(pat.String).join(content);
        else if (typeof pat?.Regex === 'string') text = text.replace(new RegExp(pat.Regex, 'gu'), content);
        break;
      }
      case 'ByteFallback': {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
        if (m) bytes = Uint8Array.of(parseInt(m[1]!, 16));
        break;
      }
      case 'ByteLevel':
        bytes = byteLevelToBytes(text);
        break;
      case 'Metaspace':
        text = text.split(typeof d.replacement === 'string' ? d.replacement : '\u2581').join(' ');
        break;
      case 'WordPiece': {
        const prefix = typeof d.prefix === 'string' ? d.prefix : '##';
        text = text.startsWith(prefix) ? text.slice(prefix.length) : ' ' + text;
        break;
      }
      case 'BPEDecoder': {
        const suffix = typeof d.suffix === 'string' ? d.suffix : '</w>';
        text = text.split(suffix).join(' ');
        break;
      }
      case 'Fuse':
      case 'Strip':
        break;
      default:
        return undefined;
    }
  }
  if (!bytes) return text;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return String.fromCharCode(...bytes);
  }
}

let byteDecoder: Map<string, number> | undefined;
/** GPT-2's bytes_to_unicode() inverted: the printable char each byte was mapped to, back to the byte. */
function byteLevelToBytes(text: string): Uint8Array {
  if (!byteDecoder) {
    byteDecoder = new Map();
    let n = 0;
    for (let b = 0; b < 256; b++) {
      const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      byteDecoder.set(String.fromCharCode(printable ? b : 256 + n++), b);
    }
  }
  const out: number[] = [];
  for (const ch of text) {
    const b = byteDecoder.get(ch);
    if (b !== undefined) out.push(b);
    else out.push(...new TextEncoder().encode(ch)); // not a byte-level char: keep it as its UTF-8
  }
  return Uint8Array.from(out);
}
