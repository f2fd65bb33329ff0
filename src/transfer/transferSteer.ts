/**
 * Move a steer from model A ("from") to model B ("to") through a linear map between their output-embedding
 * spaces, fit on the shared vocabulary: H : [dB, dA] with E_B[t]·H ≈ E_A[t] (fit.ts).
 *
 * 'reference' (default) is the reference's rule (Glaciohound/LM-Steer experiments/steer_transfer.py):
 *   H ← H with each row scaled to unit norm (`B_backward / B_backward.norm(dim=1)[:, None]`),
 *   P1' = H·P1, P2' = H·P2 per slot, so W' = P1'P2'ᵀ = H·W·Hᵀ.
 * Exact relation (no row normalisation), for any H: if E_A = E_B·H, the steer's logit change on B at hidden
 * state h_B, eps·s·(h_B·P1')(P2'ᵀ·E_Bᵀ), equals A's at h_A = h_B·H. The unsteered logits h·Eᵀ also agree
 * under that hidden-state map only when H·Hᵀ = I (H orthogonal, where row normalisation is a no-op too), so
 * the full steered logits match exactly for an orthogonal map and the steer term alone otherwise.
 *
 * 'dual' instead transforms P1 like a hidden state: P1' = (Hᵀ)⁺·P1, P2' = H·P2. If B is A reparametrised,
 * E_B = E_A·M and h_B = h_A·M⁻ᵀ (same unsteered logits), then H = M⁻¹ and B's steered logits equal A's
 * exactly for every invertible M — the reference rule is exact only for orthogonal M. Row normalisation would
 * break that, so it is off by default in this mode.
 */
import { LmSteerError } from '../util/errors.js';
import { cholesky, choleskySolve, fromTensor, gram, matmul, transpose, type Mat } from '../util/linalg.js';
import type { Tensor } from '../util/tensor.js';
import { fitEmbeddingMap, type FitOptions } from './fit.js';
import { matchVocab, type VocabSide } from './vocabMatch.js';

export type HiddenMap = 'reference' | 'dual';

export interface ApplyOptions {
  /** Scale each row of H to unit norm first, as the reference does (default: true for 'reference', false for 'dual'). */
  normalizeRows?: boolean;
  hiddenMap?: HiddenMap;
}

export interface SteerTensors {
  /** [S, d, r] */
  p1: Tensor;
  /** [S, d, r] */
  p2: Tensor;
}

/** Apply a fitted map H : [dTo, dFrom] to every slot of a steer's projectors. */
export function applyEmbeddingMap(steer: SteerTensors, map: Tensor, options: ApplyOptions = {}): SteerTensors {
  const hiddenMap = options.hiddenMap ?? 'reference';
  const normalizeRows = options.normalizeRows ?? hiddenMap === 'reference';
  const { p1, p2 } = steer;
  if (p1.shape.length !== 3 || p1.shape.join() !== p2.shape.join()) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `steer projectors have shapes [${p1.shape}] and [${p2.shape}], expected equal [S, d, r]`,
    );
  }
  const [S, d, r] = p1.shape as [number, number, number];
  if (map.shape.length !== 2 || map.shape[1] !== d) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `the embedding map has shape [${map.shape}] but the steer's hidden size is ${d}`,
      'fit the map from the model the steer was trained for',
    );
  }
  const h = fromTensor(map);
  const dTo = h.rows;
  if (normalizeRows) {
    for (let i = 0; i < dTo; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += h.data[i * d + j]! ** 2;
      const norm = Math.sqrt(s);
      if (norm > 0) for (let j = 0; j < d; j++) h.data[i * d + j]! /= norm;
    }
  }
  const h1 = hiddenMap === 'dual' ? pinvTransposed(h) : h;
  const slot = (p: Tensor, s: number): Mat => ({
    rows: d,
    cols: r,
    data: Float64Array.from(p.data.subarray(s * d * r, (s + 1) * d * r)),
  });
  const out1 = new Float32Array(S * dTo * r);
  const out2 = new Float32Array(S * dTo * r);
  for (let s = 0; s < S; s++) {
    out1.set(matmul(h1, slot(p1, s)).data, s * dTo * r);
    out2.set(matmul(h, slot(p2, s)).data, s * dTo * r);
  }
  return {
    p1: { dtype: 'float32', shape: [S, dTo, r], data: out1 },
    p2: { dtype: 'float32', shape: [S, dTo, r], data: out2 },
  };
}

/** (Hᵀ)⁺ for H : [m, n] of full rank: H·(HᵀH)⁻¹ when m ≥ n, (HHᵀ)⁻¹·H when m < n. */
function pinvTransposed(h: Mat): Mat {
  try {
    if (h.rows >= h.cols) return transpose(choleskySolve(cholesky(gram(h)), transpose(h)));
    return choleskySolve(cholesky(gram(transpose(h))), h);
  } catch (err) {
    throw new LmSteerError(
      'BAD_DATA',
      'the embedding map is rank deficient, so the dual transfer is undefined',
      "use hiddenMap 'reference', or fit on more shared tokens",
      { cause: err },
    );
  }
}

export interface TransferSide {
  /** Output embeddings (LM head) [vocab, d]. */
  embeddings: Tensor;
  tokenizer: VocabSide;
}

export interface TransferResult extends SteerTensors {
  /** The fitted H : [dTo, dFrom] (before any row normalisation). */
  map: Tensor;
  sharedTokens: number;
  heldOutError: number;
  trainError: number;
}

/** Match vocabularies, fit H, and move the steer. The steer's eps and slots carry over unchanged. */
export function transferSteer(
  steer: SteerTensors,
  from: TransferSide,
  to: TransferSide,
  options: FitOptions & ApplyOptions = {},
): TransferResult {
  if (steer.p1.shape[1] !== from.embeddings.shape[1]) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `the steer has hidden size ${steer.p1.shape[1]} but the source model's embeddings have ${from.embeddings.shape[1]}`,
      'transfer from the model the steer was trained for',
    );
  }
  const match = matchVocab(from.tokenizer, to.tokenizer, from.embeddings.shape[0], to.embeddings.shape[0]);
  const fit = fitEmbeddingMap(from.embeddings, to.embeddings, match, options);
  const moved = applyEmbeddingMap(steer, fit.map, options);
  return {
    ...moved,
    map: fit.map,
    sharedTokens: match.from.length,
    heldOutError: fit.heldOutError,
    trainError: fit.trainError,
  };
}
