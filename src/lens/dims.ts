/**
 * Which words a steer moves: for each top singular direction of W = P1k·P2kᵀ, the tokens scoring highest and
 * lowest under E·v_i. The right singular vector v_i is the side the reference uses: its app and
 * experiments/pca_analysis.py call `S, V, D = torch.linalg.svd(matrix)` (so D = Vᵀ) and rank
 * `embeddings.matmul(D[_i])` (Glaciohound/LM-Steer app.py, word_embedding_space_analysis). It is also the
 * right side mathematically: the steer adds Σ σ_i (h·u_i)·v_i to h, so logits move by σ_i (h·u_i)·(E·v_i).
 */
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import type { SteerSvd } from './svd.js';

export interface ScoredToken {
  token: string;
  id: number;
  /** (E·v_i)[id]: the logit change per unit of σ_i·(h·u_i). */
  score: number;
}

export interface SteerDim {
  /** 0-based rank of the direction. */
  index: number;
  singularValue: number;
  /**
   * cos(u_i, v_i) ∈ [−1, 1], sign-free (u, v flip together): > 0 means the direction amplifies itself
   * (a hidden state leaning toward the positive tokens is pushed further that way), < 0 that it reverses.
   */
  alignment: number;
  /** Highest E·v_i first. Which pole is "positive" is a sign convention (svd_flip), not a verdict. */
  positive: ScoredToken[];
  /** Lowest E·v_i first. */
  negative: ScoredToken[];
}

export interface ExplainOptions {
  /** Tokens per pole. */
  top: number;
  /** Keep only word-like tokens (see isWordLike). */
  wordLike: boolean;
  /** Tokens to leave out (specials); index = token id. */
  isSpecial?: (id: number) => boolean;
}

/**
 * A whole word of ≥ 2 letters, optionally with one leading space marker (' ', GPT-2's 'Ġ', SentencePiece's '▁').
 * Mirrors the reference's filter (app.py filter_words: leading space, `isalpha()`, more than one letter) without
 * its NLTK English dictionary, so it works for any language: \p{L} is any Unicode letter.
 */
export function isWordLike(token: string): boolean {
  return /^[ Ġ▁]?\p{L}{2,}$/u.test(token);
}

export function explainDims(svd: SteerSvd, e: Tensor, tokenStrings: string[], opts: ExplainOptions): SteerDim[] {
  if (e.shape.length !== 2) {
    throw new LmSteerError('SHAPE_MISMATCH', `output embeddings have shape [${e.shape}], expected [vocab, d]`);
  }
  const [vocab, d] = e.shape as [number, number];
  const dSteer = svd.v[0]?.length ?? d;
  if (dSteer !== d) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `the steer has hidden size ${dSteer} but the model's output embeddings have ${d}`,
      'use the base model the steer was trained for, or transfer the steer first',
    );
  }
  if (tokenStrings.length < vocab) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `${tokenStrings.length} token strings for an embedding matrix of ${vocab} rows`,
      'pass tokenizer.tokenString(id) for every id below the embedding row count',
    );
  }
  if (!Number.isInteger(opts.top) || opts.top < 1) {
    throw new LmSteerError('BAD_ARGUMENT', `top must be a positive integer, got ${opts.top}`, 'e.g. --top 20');
  }
  const keep = (id: number) => !opts.isSpecial?.(id) && (!opts.wordLike || isWordLike(tokenStrings[id]!));
  const candidates: number[] = [];
  for (let id = 0; id < vocab; id++) if (keep(id)) candidates.push(id);

  return svd.v.map((v, i) => {
    const scores = new Float64Array(vocab);
    for (const id of candidates) {
      let s = 0;
      const row = id * d;
      for (let j = 0; j < d; j++) s += e.data[row + j]! * v[j]!;
      scores[id] = s;
    }
    // Ties broken by id so the output is stable across runs.
    const sorted = [...candidates].sort((a, b) => scores[b]! - scores[a]! || a - b);
    const pick = (ids: number[]) => ids.map((id) => ({ token: tokenStrings[id]!, id, score: scores[id]! }));
    const n = Math.min(opts.top, Math.floor(sorted.length / 2));
    const u = svd.u[i]!;
    let uv = 0;
    let uu = 0;
    let vv = 0;
    for (let j = 0; j < d; j++) {
      uv += u[j]! * v[j]!;
      uu += u[j]! * u[j]!;
      vv += v[j]! * v[j]!;
    }
    return {
      index: i,
      singularValue: svd.values[i]!,
      alignment: uv / Math.sqrt(uu * vv),
      positive: pick(sorted.slice(0, n)),
      negative: pick(sorted.slice(sorted.length - n).reverse()),
    };
  });
}

/** A token as a reader should see it in a list: space markers and surrounding blanks dropped; otherwise quoted. */
export function tokenLabel(token: string): string {
  const t = token.replace(/^[Ġ▁]/, ' ').trim();
  return t !== '' && t === token.trim() && !/[\p{C}]/u.test(t) ? t : JSON.stringify(token);
}
