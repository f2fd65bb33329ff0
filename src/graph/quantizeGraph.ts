/**
 * A rewrite of a built graph: every MatMul whose B is a float32 [K, N] initializer read by nothing else becomes
 * MatMulNBits over Bᵀ [N, K] quantized (what ORT's own MatMulNBitsQuantizer does to exported models). It lets a
 * graph written with float32 weights run quantized with no change to its builder; the bench's scale preview
 * uses it. (Graphs that build their weights with src/graph/linear.ts get the same ops without holding float32
 * weights first.)
 */
import { MS_DOMAIN, type GraphBuilder } from './builder.js';
import { nbitsInitializers, type NBitsOpOptions } from './nbitsOps.js';
import { transposedRows } from './rowSource.js';

/** Returns the names of the weights it quantized. `keep`: initializers left in float32 (e.g. the LM head). */
export function quantizeMatMuls(g: GraphBuilder, q: NBitsOpOptions, keep: ReadonlySet<string> = new Set()): string[] {
  const nodes = g.nodeViews();
  const uses = new Map<string, number>();
  for (const n of nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  const done: string[] = [];
  nodes.forEach((n, index) => {
    if (n.opType !== 'MatMul' || n.domain !== '') return;
    const name = n.inputs[1];
    const info = g.initializerInfo(name);
    if (keep.has(name) || !info?.bytes || info.dtype !== 'float32' || info.dims.length !== 2 || uses.get(name) !== 1)
      return;
    const [K, N] = info.dims;
    const bytes = info.bytes;
    const w = {
      dtype: 'float32' as const,
      shape: [K, N],
      data: new Float32Array(bytes.buffer, bytes.byteOffset, K * N),
    };
    const init = nbitsInitializers(g, `${name}.nbits`, [N, K], () => transposedRows(w), q);
    const inputs = [n.inputs[0], init.b, init.scales, ...(init.zeroPoints ? [init.zeroPoints] : [])];
    g.replaceNode(
      index,
      'MatMulNBits',
      inputs,
      { K, N, bits: q.bits, block_size: q.blockSize, accuracy_level: q.accuracyLevel },
      { domain: MS_DOMAIN },
    );
    g.removeInitializer(name);
    done.push(name);
  });
  return done;
}
