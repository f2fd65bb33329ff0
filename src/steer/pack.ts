/**
 * Steers → the decoder graph's three steer inputs (docs/ARCHITECTURE.md, "The steer in the graph").
 * All slots of all steers are laid side by side along one axis of size K = Σ_k S_k·r_k, so the graph computes
 *   h' = h + ((h · steer_p1) ⊙ steer_scale) · steer_p2t
 * with steer_p1[:, c] = P1[k][s][:, j], steer_p2t[c, :] = P2[k][s][:, j], steer_scale[b, c] = eps_k·v[b,k,s].
 * p1/p2t depend only on the loaded steers (build once); scale is rebuilt whenever values change.
 */
import type { SteerInputs } from '../runtime/decoder.js';
import { LmSteerError } from '../util/errors.js';
import { tensor, type Tensor } from '../util/tensor.js';
import { checkRowValues, type RowValues } from './math.js';
import type { Steer } from './steer.js';

export interface PackedSteers {
  p1: Tensor; // [d, K]
  p2t: Tensor; // [K, d]
  /** Column c of p1 (row c of p2t) belongs to steer `steer`, slot `slot`. */
  columns: { steer: number; slot: number }[];
  /** eps of each steer, folded into the scale. */
  eps: number[];
  /** Slots per steer, to check the values given to packScale. */
  slotCounts: number[];
}

export function packSteers(steers: readonly Steer[]): PackedSteers {
  if (steers.length === 0) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'packSteers needs at least one steer',
      'to run the base model, pass no steer (the decoders then feed a zero steer, docs/ARCHITECTURE.md)',
    );
  }
  const d = steers[0]!.p1.shape[1]!;
  steers.forEach((s, k) => {
    if (s.p1.shape[1] !== d || s.p2.shape[1] !== d) {
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `steer ${s.config.name ?? k + 1} has hidden size ${s.p1.shape[1]}, but steer ${steers[0]!.config.name ?? 1} has ${d}`,
        'steers used together must be for the same base model',
      );
    }
  });
  const K = steers.reduce((acc, s) => acc + s.config.slots.length * s.config.rank, 0);
  const p1 = new Float32Array(d * K);
  const p2t = new Float32Array(K * d);
  const columns: PackedSteers['columns'] = [];
  let c = 0;
  steers.forEach((steer, k) => {
    const r = steer.config.rank;
    for (let s = 0; s < steer.config.slots.length; s++) {
      const base = s * d * r;
      for (let j = 0; j < r; j++, c++) {
        for (let i = 0; i < d; i++) {
          p1[i * K + c] = steer.p1.data[base + i * r + j]!;
          p2t[c * d + i] = steer.p2.data[base + i * r + j]!;
        }
        columns.push({ steer: k, slot: s });
      }
    }
  });
  return {
    p1: tensor([d, K], p1),
    p2t: tensor([K, d], p2t),
    columns,
    eps: steers.map((s) => s.config.eps),
    slotCounts: steers.map((s) => s.config.slots.length),
  };
}

/** steer_scale [batch, K]: eps_k·v[b,k,s] for every column. `rowValues` has one row per batch row (or one, broadcast). */
export function packScale(packed: PackedSteers, rowValues: RowValues, batch = rowValues.length): Tensor {
  checkRowValues(packed.slotCounts, rowValues, batch);
  const K = packed.columns.length;
  const scale = new Float32Array(batch * K);
  for (let b = 0; b < batch; b++) {
    const values = rowValues.length === 1 ? rowValues[0]! : rowValues[b]!;
    packed.columns.forEach(({ steer, slot }, c) => {
      scale[b * K + c] = packed.eps[steer]! * values[steer]![slot]!;
    });
  }
  return tensor([batch, K], scale);
}

/** The three graph inputs for these values. */
export function steerInputs(packed: PackedSteers, rowValues: RowValues, batch = rowValues.length): SteerInputs {
  return { p1: packed.p1, p2t: packed.p2t, scale: packScale(packed, rowValues, batch) };
}

/**
 * The inverse of packSteers for one steer of `slots` slots all packed into [d, K] / [K, d] (training learns
 * the packed form): P1, P2 [S, d, r] with r = K / S.
 */
export function unpackSteer(p1: Tensor, p2t: Tensor, slots: number): { p1: Tensor; p2: Tensor } {
  const [d, K] = p1.shape as [number, number];
  if (K % slots !== 0 || p2t.shape[0] !== K || p2t.shape[1] !== d) {
    throw new Error(`internal: cannot unpack [${p1.shape}] / [${p2t.shape}] into ${slots} slots`);
  }
  const r = K / slots;
  const a = new Float32Array(slots * d * r);
  const b = new Float32Array(slots * d * r);
  for (let s = 0; s < slots; s++) {
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < r; j++) {
        const c = s * r + j; // column c of packSteers' layout: slot s, rank index j
        a[(s * d + i) * r + j] = p1.data[i * K + c]!;
        b[(s * d + i) * r + j] = p2t.data[c * d + i]!;
      }
    }
  }
  return { p1: tensor([slots, d, r], a), p2: tensor([slots, d, r], b) };
}
