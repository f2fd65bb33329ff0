/**
 * A fake Decoder and Tokenizer for testing generation logic without a model. The fake's logits for a row are a
 * function of that row's own tokens (prompt + generated) only, as a real model's are, so batching must not
 * change any output.
 */
import { mulberry32 } from './random.js';
import type { Decoder, ForwardResult, KvSlots, SteerDirections } from '../../src/runtime/decoder.js';
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
  /** open: a slot pool; prefill: prompts from an empty cache; extend: one token for each of some slots. */
  kind: 'open' | 'prefill' | 'extend';
  /** Rows of the call (pool rows for 'open'). */
  batchSize: number;
  /** The tokens each row of the call brings (whole prompts for prefill, one token for extend). */
  tokens: number[][];
  /** 'open': the pool's steer directions. */
  steer?: SteerDirections;
  /** prefill/extend: the steer scale rows in effect for the call's rows [n·K]. */
  scales?: number[];
  /** extend: the first slot. */
  first?: number;
}

/**
 * A fake Decoder whose logits for a row depend on the row's own tokens only (prompt + generated), plus the
 * steer's effect: Σ_k scale[k] · p2t[k, v mod d] (enough to see scales reach rows). Its slots keep each slot's
 * tokens instead of keys/values.
 */
export class FakeDecoder implements Decoder {
  readonly calls: FakeCall[] = [];
  disposed = 0;
  live = 0;
  readonly maxPositions: number;

  constructor(
    readonly vocabSize: number,
    private readonly logits: LogitsFn,
    readonly hiddenSize = 4,
    maxPositions = 1 << 20,
  ) {
    this.maxPositions = maxPositions;
  }

  rowLogits(
    tokens: number[],
    promptLength: number,
    steer: SteerDirections | undefined,
    scale: ArrayLike<number>,
  ): Float32Array {
    const out = this.logits(tokens, promptLength);
    if (steer) {
      const K = steer.p2t.shape[0]!;
      const d = this.hiddenSize;
      for (let k = 0; k < K; k++) {
        const s = scale[k]!;
        if (s !== 0) for (let v = 0; v < out.length; v++) out[v] += s * steer.p2t.data[k * d + (v % d)]!;
      }
    }
    return out;
  }

  async forward(): Promise<ForwardResult> {
    throw new Error('fake: forward is not faked');
  }

  openSlots(opts: { rows: number; steer?: SteerDirections }): KvSlots {
    const fake = this;
    const { steer } = opts;
    const K = steer ? steer.p1.shape[1]! : 1;
    const held: { tokens: number[]; promptLength: number }[] = Array.from({ length: opts.rows }, () => ({
      tokens: [],
      promptLength: 0,
    }));
    const scales = new Float32Array(opts.rows * K);
    let disposed = false;
    this.calls.push({ kind: 'open', batchSize: opts.rows, tokens: [], steer });
    this.live++;
    const live = () => {
      if (disposed) throw new Error('fake: slots used after dispose');
    };
    return {
      rows: opts.rows,
      K,
      capacity: fake.maxPositions,
      reserve: () => {},
      shrink: () => {},
      setScale(slot, scale) {
        if (scale) scales.set(scale, slot * K);
        else scales.fill(0, slot * K, (slot + 1) * K);
      },
      async prefill(prompts, dest, logits) {
        live();
        fake.calls.push({
          kind: 'prefill',
          batchSize: prompts.length,
          tokens: prompts.map((p) => [...p]),
          scales: dest.flatMap((d) => Array.from(scales.subarray(d[0]! * K, (d[0]! + 1) * K))),
        });
        // Without logits this is a shared prompt's prefix: its last token comes with the first extend.
        prompts.forEach((p, i) =>
          dest[i]!.forEach((s) => (held[s] = { tokens: [...p], promptLength: logits ? p.length : -1 })),
        );
        await Promise.resolve();
        return logits
          ? prompts.map((p, i) => fake.rowLogits([...p], p.length, steer, scales.subarray(dest[i]![0]! * K)))
          : [];
      },
      async extend(first, tokens, lengths) {
        live();
        fake.calls.push({
          kind: 'extend',
          batchSize: tokens.length,
          tokens: tokens.map((t) => [t]),
          scales: Array.from(scales.subarray(first * K, (first + tokens.length) * K)),
          first,
        });
        const V = fake.vocabSize;
        const out = new Float32Array(tokens.length * V);
        tokens.forEach((t, i) => {
          const h = held[first + i]!;
          if (h.tokens.length < lengths[i]!)
            throw new Error(`fake: slot ${first + i} holds ${h.tokens.length} tokens, not ${lengths[i]}`);
          h.tokens.length = lengths[i]!;
          h.tokens.push(t);
          if (h.promptLength < 0) h.promptLength = h.tokens.length;
          out.set(fake.rowLogits(h.tokens, h.promptLength, steer, scales.subarray((first + i) * K)), i * V);
        });
        await Promise.resolve();
        return out;
      },
      move(from, to) {
        held[to] = { tokens: [...held[from]!.tokens], promptLength: held[from]!.promptLength };
        scales.copyWithin(to * K, from * K, (from + 1) * K);
      },
      dispose() {
        if (disposed) throw new Error('fake: double dispose');
        disposed = true;
        fake.disposed++;
        fake.live--;
      },
    };
  }
}
