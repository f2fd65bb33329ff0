/**
 * Incremental detokenization of one row for streaming. Decoding token by token is wrong in two ways: a
 * character split over byte tokens (<0xE2><0x80><0x94>) decodes to U+FFFD until its last byte arrives, and
 * sentencepiece/byte-level decoders change a token's text depending on its left neighbour (leading spaces).
 * So, as text-generation-inference does, we decode a small window [prefix, end) that starts at the last
 * emitted token boundary, and emit only the text beyond the window's already-emitted part, once it no longer
 * ends in U+FFFD. The window starts with a few prompt tokens so the first new token gets its left context
 * (" Hello", not "Hello", after "Say").
 *
 * Stop strings: text that could be the start of a stop string is held back until decided; when one matches,
 * the text is cut before it and the stream is done.
 */
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { findStopString, stopHoldback } from './stopping.js';

/** How many prompt tokens give the first new token its left context (TGI uses 5 too). */
const CONTEXT_TOKENS = 5;
const REPLACEMENT = '\uFFFD';

export interface TextStreamOptions {
  /** The prompt's ids; only its last few are used, as decoding context. */
  context?: readonly number[];
  /** Stop strings (non-empty). */
  stop?: readonly string[];
}

export interface StreamUpdate {
  /** Text now safe to show; may be ''. */
  delta: string;
  /** A stop string matched: the text is final and cut before it. */
  stopped: boolean;
}

export class TextStream {
  private readonly ids: number[];
  private prefix = 0; // window start
  private read: number; // ids before this are decoded into `decoded`
  private prefixText: string; // decode(ids[prefix, read)) as the window decoder sees it
  private decoded = ''; // completed text of the new tokens
  private emittedLen = 0; // how much of `decoded` has been handed out
  private searched = 0; // how much of `decoded` was searched for stop strings
  private done = false;
  private readonly stops: readonly string[];

  constructor(
    private readonly tokenizer: Tokenizer,
    opts: TextStreamOptions = {},
  ) {
    this.ids = (opts.context ?? []).slice(-CONTEXT_TOKENS);
    this.read = this.ids.length;
    // A prompt that ends inside a character: its trailing U+FFFD is not part of the prompt's text, so the
    // completed character is emitted with the continuation instead of being sliced in half.
    this.prefixText = this.decodeWindow(this.ids).replace(/\uFFFD+$/, '');
    this.stops = opts.stop ?? [];
  }

  /** All text handed out so far (the concatenation of every delta). */
  get text(): string {
    return this.decoded.slice(0, this.emittedLen);
  }

  get finished(): boolean {
    return this.done;
  }

  /** Add the next generated token. */
  push(id: number): StreamUpdate {
    if (this.done) throw new Error('internal: TextStream.push after the stream finished');
    this.ids.push(id);
    const text = this.decodeWindow(this.ids.slice(this.prefix));
    if (text.length > this.prefixText.length && !text.endsWith(REPLACEMENT)) this.advance(text);
    return this.release(false);
  }

  /** The row ended (EOS, length, cancel): release everything held, incomplete characters included. */
  finish(): StreamUpdate {
    if (this.done) return { delta: '', stopped: false };
    const text = this.decodeWindow(this.ids.slice(this.prefix));
    if (text.length > this.prefixText.length) this.advance(text);
    return this.release(true);
  }

  private decodeWindow(ids: number[]): string {
    return ids.length ? this.tokenizer.decode(ids, { skipSpecialTokens: true }) : '';
  }

  private advance(windowText: string): void {
    this.decoded += windowText.slice(this.prefixText.length);
    this.prefix = this.read;
    this.read = this.ids.length;
    this.prefixText = this.decodeWindow(this.ids.slice(this.prefix));
  }

  private release(final: boolean): StreamUpdate {
    const match = findStopString(this.decoded, this.stops, this.searched);
    this.searched = this.decoded.length;
    // Held-back text is never emitted before a match is ruled out, so a match starts at or after emittedLen.
    if (match) this.decoded = this.decoded.slice(0, match.index);
    const upTo = match || final ? this.decoded.length : this.decoded.length - stopHoldback(this.decoded, this.stops);
    const delta = upTo > this.emittedLen ? this.decoded.slice(this.emittedLen, upTo) : '';
    this.emittedLen = Math.max(this.emittedLen, upTo);
    this.done = final || match !== undefined;
    return { delta, stopped: match !== undefined };
  }
}
