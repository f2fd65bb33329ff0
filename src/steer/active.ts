/**
 * Steers in use by a running model: the path of a steer value from `--value name=v` (or a request's
 * `"steer": {...}`) to the graph's `steer_scale` row. Steer folders are loaded and checked against the base
 * model once; their slots are packed into the graph's P1/P2ᵀ once; each row then needs only its scale row.
 */
import type { Tensor } from '../util/tensor.js';
import { packScale, packSteers, type PackedSteers } from './pack.js';
import { resolveValues, type Steer } from './steer.js';
import { loadSteer } from './steerFile.js';

export interface ActiveSteers {
  steers: Steer[];
  packed: PackedSteers;
}

/** Load steer folders for a base model (refused when trained for another one, unless `force`). */
export function loadActiveSteers(
  dirs: string[],
  base: { fingerprint(): string; id: string; cfg: { hiddenSize: number } },
  opts: { force?: boolean } = {},
): ActiveSteers | undefined {
  if (dirs.length === 0) return undefined;
  const steers = dirs.map((dir) =>
    loadSteer(dir, {
      expectFingerprint: base.fingerprint(),
      expectModelId: base.id,
      expectHiddenSize: base.cfg.hiddenSize,
      force: opts.force,
    }),
  );
  return { steers, packed: packSteers(steers) };
}

/** One row of `steer_scale` (eps folded in) for named values; unknown names and NaN are errors. */
export function steerScaleRow(active: ActiveSteers, values: Record<string, number>): Float32Array {
  const perSteer = resolveValues(active.steers, values);
  return packScale(active.packed, [perSteer], 1).data as Float32Array;
}

/** The shared steer directions for GenerateOptions.steer. */
export function steerDirections(active: ActiveSteers | undefined): { p1: Tensor; p2t: Tensor } | undefined {
  return active && { p1: active.packed.p1, p2t: active.packed.p2t };
}
