/**
 * The tokens two models share, matched by the text each decodes to (Tokenizer.tokenString). The reference
 * matches raw vocabulary keys (experiments/steer_transfer.py: `_v in from_vocab_set`), which only works within
 * one tokenizer family ('Ġthe' vs '▁the'); decoded text matches across families too.
 */
import { LmSteerError } from '../util/errors.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

export type VocabSide = Pick<Tokenizer, 'tokenString' | 'isSpecial'> & { vocabSize: number };

export interface VocabMatch {
  /** from[i] and to[i] are the ids of the i-th shared token in each vocabulary; ordered by `to` id. */
  from: Int32Array;
  to: Int32Array;
  /** Strings that more than one id of a side decodes to (e.g. byte tokens that decode to '�'): ambiguous, left out. */
  duplicates: number;
}

/** Decoded string → id for the usable tokens of one side; strings seen twice are ambiguous and dropped. */
function index(side: VocabSide, rows: number): { map: Map<string, number>; dup: Set<string> } {
  const map = new Map<string, number>();
  const dup = new Set<string>();
  for (let id = 0; id < Math.min(side.vocabSize, rows); id++) {
    if (side.isSpecial(id)) continue;
    const s = side.tokenString(id);
    if (s === '' || s.includes('\uFFFD')) continue; // partial UTF-8 bytes: no text of their own
    if (map.has(s)) dup.add(s);
    else map.set(s, id);
  }
  for (const s of dup) map.delete(s);
  return { map, dup };
}

/**
 * Shared tokens of two vocabularies. `fromRows`/`toRows` cap the ids at the embedding row counts (a model's
 * embedding matrix may be padded beyond, or cut short of, its tokenizer's vocabulary).
 */
export function matchVocab(
  from: VocabSide,
  to: VocabSide,
  fromRows = from.vocabSize,
  toRows = to.vocabSize,
): VocabMatch {
  const f = index(from, fromRows);
  const t = index(to, toRows);
  const pairs: [number, number][] = [];
  for (const [s, toId] of t.map) {
    const fromId = f.map.get(s);
    if (fromId !== undefined) pairs.push([fromId, toId]);
  }
  if (pairs.length === 0) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `the two tokenizers share no tokens (0 of ${f.map.size} and ${t.map.size} non-special token strings match)`,
      'a steer can only be transferred between models whose vocabularies overlap; check that the right tokenizers were loaded',
    );
  }
  pairs.sort((a, b) => a[1] - b[1]);
  return {
    from: Int32Array.from(pairs, (p) => p[0]),
    to: Int32Array.from(pairs, (p) => p[1]),
    duplicates: new Set([...f.dup, ...t.dup]).size,
  };
}
