/**
 * A fake Decoder and Tokenizer for testing generation logic without a model. The fake's logits for a row are a
 * function of that row's own tokens (prompt + generated) only, as a real model's are, so batching must not
 * change any output.
 */
import { mulberry32 } from './random.js';
import type { Decoder, DecoderBatch, SteerInputs, StepOutput } from '../../src/runtime/decoder.js';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.js';

export const BOS = 0;
export const EOS = 1;
/** Ids 2..257 are the byte tokens <0x00>..<0xFF>; words follow. */
export const BYTE0 = 2;
export const WORDS = [
  ' ',
  'a',
  'b',
  'c',
  'the',
  ' cat',
  ' sat',
  ' on',
  ' mat',
  '.',
  '\n',
  'END',
  'E',
  'ND',
  'Hello',
  ' world',
  '!',
  ' —',
];

/** Sentencepiece-like tokenizer with byte fallback: words, else UTF-8 bytes as <0xNN> tokens. */
export class FakeTokenizer implements Tokenizer {
  readonly vocabSize = BYTE0 + 256 + WORDS.length;
  readonly bosId?: number;
  readonly eosIds = [EOS];
  private readonly enc = new TextEncoder();

  constructor(opts: { bos?: boolean } = {}) {
    if (opts.bos ?? true) this.bosId = BOS;
  }

  /** The id of a word piece. */
  word(w: string): number {
    const i = WORDS.indexOf(w);
    if (i < 0) throw new Error(`no word ${JSON.stringify(w)}`);
    return BYTE0 + 256 + i;
  }

  /** Byte tokens of a string. */
  bytes(s: string): number[] {
    return Array.from(this.enc.encode(s), (b) => BYTE0 + b);
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const ids: number[] = (opts.addSpecialTokens ?? true) ? (this.bosId !== undefined ? [this.bosId] : []) : [];
    let i = 0;
    while (i < text.length) {
      let best = '';
      for (const w of WORDS) if (w.length > best.length && text.startsWith(w, i)) best = w;
      if (best) {
        ids.push(this.word(best));
        i += best.length;
      } else {
        const ch = String.fromCodePoint(text.codePointAt(i)!);
        ids.push(...this.bytes(ch));
        i += ch.length;
      }
    }
    return ids;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const bytes: number[] = [];
    for (const id of ids) {
      if (this.isSpecial(id)) {
        if (!opts.skipSpecialTokens) bytes.push(...this.enc.encode(id === BOS ? '<s>' : '</s>'));
      } else if (id < BYTE0 + 256) bytes.push(id - BYTE0);
      else bytes.push(...this.enc.encode(WORDS[id - BYTE0 - 256]));
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  }

  tokenString(id: number): string {
    return this.decode([id]);
  }

  isSpecial(id: number): boolean {
    return id === BOS || id === EOS;
  }
}

export { mulberry32 } from './random.js';

/** Logits of one row from its tokens; `promptLength` tells which of them are new. */
export type LogitsFn = (tokens: readonly number[], promptLength: number) => Float32Array;

/** A random "trigram" model: logits depend on the last two tokens through seeded random tables. */
export function randomLogits(vocab: number, seed: number, scale = 3): LogitsFn {
  const rnd = mulberry32(seed);
  const a = Float32Array.from({ length: vocab * vocab }, () => (rnd() - 0.5) * 2 * scale);
  const b = Float32Array.from({ length: vocab * 7 }, () => (rnd() - 0.5) * scale);
  return (tokens) => {
    const last = tokens[tokens.length - 1];
    const prev = tokens.length > 1 ? tokens[tokens.length - 2] : 0;
    const out = a.slice(last * vocab, (last + 1) * vocab);
    for (let v = 0; v < vocab; v++) out[v] += b[(prev % 7) * vocab + v];
    return out;
  };
}

/** Logits that make greedy decoding emit `script` after any prompt (and EOS after it), by a margin of 10. */
export function scriptedLogits(vocab: number, script: readonly number[]): LogitsFn {
  return (tokens, promptLength) => {
    const out = new Float32Array(vocab);
    const t = tokens.length - promptLength;
    out[t < script.length ? script[t] : EOS] = 10;
    return out;
  };
}

export interface FakeCall {
  kind: 'start' | 'step';
  batchSize: number;
  tokens: number[][];
  steer?: SteerInputs;
  maxNewTokens?: number;
}

export class FakeDecoder implements Decoder {
  readonly calls: FakeCall[] = [];
  disposed = 0;
  live = 0;

  constructor(
    readonly vocabSize: number,
    private readonly logits: LogitsFn,
    readonly hiddenSize = 4,
  ) {}

  /** Row logits plus the steer's effect: Σ_k scale[b,k] · p2t[k, v mod d] (enough to see scales reach rows). */
  private rowLogits(tokens: number[], promptLength: number, steer: SteerInputs | undefined, b: number): Float32Array {
    const out = this.logits(tokens, promptLength);
    if (steer) {
      const K = steer.scale.shape[1];
      const d = this.hiddenSize;
      for (let k = 0; k < K; k++) {
        const s = steer.scale.data[b * K + k];
        if (s !== 0) for (let v = 0; v < out.length; v++) out[v] += s * steer.p2t.data[k * d + (v % d)];
      }
    }
    return out;
  }

  private output(rows: number[][], promptLengths: number[], steer?: SteerInputs): StepOutput {
    const V = this.vocabSize;
    const data = new Float32Array(rows.length * V);
    rows.forEach((t, b) => data.set(this.rowLogits(t, promptLengths[b], steer, b), b * V));
    return { logits: { dtype: 'float32', shape: [rows.length, V], data } };
  }

  async start(
    prompts: number[][],
    steer?: SteerInputs,
    opts?: { maxNewTokens?: number },
  ): Promise<{ batch: DecoderBatch; out: StepOutput }> {
    const rows = prompts.map((p) => [...p]);
    const promptLengths = prompts.map((p) => p.length);
    this.calls.push({
      kind: 'start',
      batchSize: prompts.length,
      tokens: rows.map((r) => [...r]),
      steer,
      maxNewTokens: opts?.maxNewTokens,
    });
    this.live++;
    let disposed = false;
    const batch: DecoderBatch = {
      batchSize: prompts.length,
      step: async (next: number[]) => {
        if (disposed) throw new Error('fake: step after dispose');
        if (next.length !== rows.length)
          throw new Error(`fake: step got ${next.length} tokens for ${rows.length} rows`);
        next.forEach((id, b) => rows[b].push(id));
        this.calls.push({ kind: 'step', batchSize: rows.length, tokens: next.map((id) => [id]) });
        await Promise.resolve();
        return this.output(rows, promptLengths, steer);
      },
      dispose: () => {
        if (disposed) throw new Error('fake: double dispose');
        disposed = true;
        this.disposed++;
        this.live--;
      },
    };
    return { batch, out: this.output(rows, promptLengths, steer) };
  }
}
