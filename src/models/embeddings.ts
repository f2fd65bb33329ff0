/**
 * The two ends of a decoder graph that read the vocabulary matrices: the token embedding lookup and the LM head's
 * Eᵀ, in the precision of the build (used by gptNeo/, gptj/, opt/ graph.ts).
 */
import type { GraphBuilder } from '../graph/builder.js';
import type { GraphBuildOptions } from '../graph/buildOptions.js';
import { embeddingLookup } from '../graph/linear.js';
import { storeRows, transposeRows } from '../graph/rowSource.js';
import type { WeightStore } from '../formats/weights.js';
import { embedFromTransposed } from './common.js';

const f32Bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * `head`: the LM head's Eᵀ [d, V] as float32 (what steeredHead multiplies by; the steer's logits stay exact).
 * `tokens`: rows of the token table for `ids` → [B, T, d]. A tied fp32 model looks its tokens up in that same
 * Eᵀ, so the graph holds one copy of the vocabulary matrix; otherwise embeddingLookup (q8/q4: its own
 * block-quantized table).
 */
export function vocabularyEnds(
  g: GraphBuilder,
  w: WeightStore,
  ids: string,
  names: { tokens: string; head: string },
  build: GraphBuildOptions,
): { tokens: string; head: string } {
  const [V, d] = w.shape(names.head);
  const head = g.lazyInitializer(`${names.head}_t`, 'float32', [d, V], () =>
    f32Bytes(transposeRows(storeRows(w, names.head))),
  );
  const shared = names.tokens === names.head && build.dtype === 'fp32';
  const [Vt, dt] = w.shape(names.tokens);
  const tokens = shared
    ? embedFromTransposed(g, head, ids)
    : embeddingLookup(g, ids, names.tokens, [Vt, dt], () => storeRows(w, names.tokens), build);
  return { tokens, head };
}
