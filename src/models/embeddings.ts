/**
 * The two ends of a decoder graph that read the vocabulary matrices: the token embedding lookup and the LM head,
 * in the precision of the build. Every architecture's graph.ts takes both from vocabularyEnds, so a new dtype or
 * head layout is written once.
 */
import type { GraphBuilder } from '../graph/builder.js';
import { nbitsSettings, type GraphBuildOptions } from '../graph/buildOptions.js';
import { embeddingLookup, lmHead, type LmHead } from '../graph/linear.js';
import { storeRows } from '../graph/rowSource.js';
import type { WeightStore } from '../formats/weights.js';
import { embedFromTransposed } from './common.js';

/**
 * `names.tokens` / `names.head`: HF's [V, d] tables (the same name when the head is tied to the input embeddings).
 * `head`: the LmHead steeredHead multiplies by — float32 Eᵀ [d, V] unless the build asks for a quantized head
 * (`build.head`), so the steer's logits stay exact by default.
 * `tokens`: rows of the token table for `ids` [B, T] → [B, T, d]:
 *   tied, fp32 body, fp32 head   columns of the head's Eᵀ (embedFromTransposed): one float32 E for both ends
 *   otherwise                    embeddingLookup in the body's dtype (q8 when the body is fp32 but the tied head
 *                                8-bit, so no float32 E is kept for the lookup alone)
 * Why a tied 8-bit head does not lend its own blocks to the lookup: ORT prepacks the head and, when another node
 * reads the same initializer, keeps its file pages resident too (measured at Qwen2.5-0.5B's shape: +129 MiB of
 * RSS, for 130 MiB less on disk). When the block does not divide d, embeddingLookup falls back to float32.
 */
/** The head's initializers are `lm_head.weight_t` (fp32) or `lm_head.weight.q` / `.scales` (8- / 4-bit) in every graph,
 * whatever the checkpoint calls the table: a tied head never collides with the lookup table's own names. */
export const HEAD_INIT = 'lm_head.weight';

export function vocabularyEnds(
  g: GraphBuilder,
  w: WeightStore,
  ids: string,
  names: { tokens: string; head: string },
  build: GraphBuildOptions,
): { tokens: string; head: LmHead } {
  const head = lmHead(g, HEAD_INIT, w.shape(names.head) as [number, number], () => storeRows(w, names.head), build);
  const [V, d] = w.shape(names.tokens) as [number, number];
  const tied = names.tokens === names.head;
  const q = nbitsSettings(build);
  if (tied && head.kind === 'fp32' && (!q || d % q.blockSize !== 0))
    return { tokens: embedFromTransposed(g, head.eT, ids), head };
  const lookupBuild: GraphBuildOptions = tied && !q ? { ...build, dtype: 'q8' } : build;
  const tokens = embeddingLookup(g, ids, names.tokens, [V, d], () => storeRows(w, names.tokens), lookupBuild);
  return { tokens, head };
}
