/**
 * The LM-Steer equation in plain loops, the reference the ONNX graph and the packing are tested against:
 *   h' = h + Σ_k eps_k Σ_s v[b,k,s] (h·P1[k][s]) · P2[k][s]ᵀ,   logits = h'·Eᵀ
 * (paper eq. 2; reference lm_steer/models/steers.py, Projected_Adaptor.forward, adaptor_class "multiply").
 * Accumulates in float64 so it is the more exact side of any comparison.
 */
import { LmSteerError } from '../util/errors.js';
import { tensor, type Tensor } from '../util/tensor.js';
import type { Steer } from './steer.js';

/**
 * Values per batch row, per steer, per slot: `rowValues[b][k][s]`. One row is broadcast to every row.
 */
export type RowValues = readonly (readonly (readonly number[])[])[];

/** The steered hidden states h' [n, d] of h [n, d]. */
export function steeredHidden(h: Tensor, steers: readonly Steer[], rowValues: RowValues): Tensor {
  const [n, d] = dims2('hidden state', h);
  checkRowValues(
    steers.map((s) => s.config.slots.length),
    rowValues,
    n,
  );
  const out = new Float32Array(h.data);
  const row = new Float64Array(d);
  for (let b = 0; b < n; b++) {
    const values = rowValues.length === 1 ? rowValues[0]! : rowValues[b]!;
    row.fill(0);
    const hb = h.data.subarray(b * d, (b + 1) * d);
    steers.forEach((steer, k) => {
      const r = steer.config.rank;
      const eps = steer.config.eps;
      if (steer.p1.shape[1] !== d) {
        throw new LmSteerError(
          'SHAPE_MISMATCH',
          `steer ${k + 1} has hidden size ${steer.p1.shape[1]} but the hidden state has ${d}`,
        );
      }
      steer.config.slots.forEach((_, s) => {
        const v = values[k]![s]!;
        if (v === 0) return;
        const base = s * d * r;
        for (let j = 0; j < r; j++) {
          let proj = 0; // (h·P1[s])_j
          for (let i = 0; i < d; i++) proj += hb[i]! * steer.p1.data[base + i * r + j]!;
          const c = eps * v * proj;
          for (let i = 0; i < d; i++) row[i]! += c * steer.p2.data[base + i * r + j]!;
        }
      });
    });
    for (let i = 0; i < d; i++) out[b * d + i] = hb[i]! + row[i]!;
  }
  return tensor([n, d], out);
}

/** Steered logits [n, vocab] = h'·Eᵀ for h [n, d] and output embeddings E [vocab, d]. */
export function steeredLogits(h: Tensor, E: Tensor, steers: readonly Steer[], rowValues: RowValues): Tensor {
  return matmulTransposed(steeredHidden(h, steers, rowValues), E);
}

/** a [n, d] · bᵀ for b [m, d] → [n, m], accumulated in float64. */
export function matmulTransposed(a: Tensor, b: Tensor): Tensor {
  const [n, d] = dims2('left matrix', a);
  const [m, d2] = dims2('right matrix', b);
  if (d !== d2)
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `cannot multiply [${a.shape}] by [${b.shape}]ᵀ: inner sizes ${d} and ${d2} differ`,
    );
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let acc = 0;
      for (let t = 0; t < d; t++) acc += a.data[i * d + t]! * b.data[j * d + t]!;
      out[i * m + j] = acc;
    }
  }
  return tensor([n, m], out);
}

function dims2(what: string, t: Tensor): [number, number] {
  if (t.shape.length !== 2)
    throw new LmSteerError('SHAPE_MISMATCH', `${what} has shape [${t.shape}], expected 2 dimensions`);
  return [t.shape[0]!, t.shape[1]!];
}

/** Throw BAD_ARGUMENT unless rowValues has 1 or n rows, one entry per steer and `slotCounts[k]` finite values for steer k. */
export function checkRowValues(slotCounts: readonly number[], rowValues: RowValues, n: number): void {
  if (rowValues.length !== 1 && rowValues.length !== n) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `steer values are given for ${rowValues.length} rows but the batch has ${n}`,
      'give one set of values, or one per row',
    );
  }
  rowValues.forEach((row, b) => {
    if (row.length !== slotCounts.length) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `row ${b} has values for ${row.length} steers, but ${slotCounts.length} steers are loaded`,
      );
    }
    row.forEach((vals, k) => {
      const S = slotCounts[k]!;
      if (vals.length !== S)
        throw new LmSteerError('BAD_ARGUMENT', `row ${b}, steer ${k + 1}: ${vals.length} values for ${S} slots`);
      vals.forEach((v, s) => {
        if (!Number.isFinite(v))
          throw new LmSteerError('BAD_ARGUMENT', `row ${b}, steer ${k + 1}, slot ${s}: value ${v} is not finite`);
      });
    });
  });
}
