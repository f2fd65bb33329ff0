/**
 * Uncertainty for evaluation numbers: the Wilson score interval for a rate of independent yes/no units, and a
 * seeded percentile bootstrap over prompts for everything else (a prompt's samples share the prompt, so they are
 * not independent; resampling whole prompts keeps that). Both at 95%.
 */
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';

/** A two-sided interval [lo, hi]. */
export type Interval = [number, number];

/** z of the two-sided 95% normal interval, Φ⁻¹(0.975). */
const Z95 = 1.959963984540054;

/** Wilson score interval (95%) of k successes in n independent trials; [NaN, NaN] for n = 0. */
export function wilson(k: number, n: number): Interval {
  if (n === 0) return [NaN, NaN];
  const z2 = Z95 * Z95;
  const p = k / n;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (Z95 * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** The q-quantile of sorted values (linear interpolation, numpy's default); NaN when empty. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Median of the finite values; NaN when there are none. */
export function median(xs: readonly number[]): number {
  return quantileSorted(
    xs.filter(Number.isFinite).sort((a, b) => a - b),
    0.5,
  );
}

export interface BootstrapOptions {
  /** Resamples; default 1000. */
  resamples?: number;
  seed?: number;
}

/**
 * Percentile bootstrap (95%) over units (prompts): `statistics(indices)` computes every statistic from a multiset of
 * unit indices; returns an interval per statistic name. Statistics that come out NaN in a resample (e.g. a
 * filtered mean with nothing left) are left out of that statistic's distribution; an interval needs at least
 * half the resamples finite, else [NaN, NaN]. With a single unit there is nothing to resample: [NaN, NaN].
 */
export function bootstrap<K extends string>(
  units: number,
  statistics: (indices: readonly number[]) => Record<K, number>,
  opts: BootstrapOptions = {},
): Record<K, Interval> {
  const B = opts.resamples ?? 1000;
  const rng = xoroshiro128plus(opts.seed ?? 0x5eed);
  const draws = new Map<K, number[]>();
  const names = Object.keys(statistics(Array.from({ length: units }, (_, i) => i))) as K[];
  for (const k of names) draws.set(k, []);
  if (units >= 2) {
    const idx = new Array<number>(units);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < units; i++) idx[i] = uniformInt(rng, 0, units - 1);
      const s = statistics(idx);
      for (const k of names) if (Number.isFinite(s[k])) draws.get(k)!.push(s[k]);
    }
  }
  const out = {} as Record<K, Interval>;
  for (const k of names) {
    const d = draws.get(k)!.sort((a, b) => a - b);
    out[k] = d.length < B / 2 ? [NaN, NaN] : [quantileSorted(d, 0.025), quantileSorted(d, 0.975)];
  }
  return out;
}
