/**
 * How much text can matter for `n` tokens. No token stands for more characters than the longest token string,
 * so the first n tokens of any text come from its first n × longest characters; doubled for normalizers that
 * shrink text (accent stripping, NFKC). Used to cut (training) or refuse (server) texts before tokenizing:
 * tokenizing is linear at best and ~0.1 ms a token for some tokenizers, so a 200 MB text must never reach it.
 */
import type { Tokenizer } from './tokenizer.js';

const longest = new WeakMap<Tokenizer, number>();

/** The most characters that can matter for `tokens` tokens of `tok`. */
export function charsForTokens(tok: Tokenizer, tokens: number): number {
  let m = longest.get(tok);
  if (m === undefined) {
    m = 1;
    for (let id = 0; id < tok.vocabSize; id++) m = Math.max(m, tok.tokenString(id).length);
    longest.set(tok, m);
  }
  return 2 * m * tokens;
}
