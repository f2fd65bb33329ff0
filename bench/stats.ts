/** Timing summaries and memory readings shared by the benchmark's worker and runner. */
import { readFileSync } from 'node:fs';

export interface Summary {
  unit: string;
  median: number;
  min: number;
  max: number;
  n: number;
  samples: number[];
}

export function summarize(samples: number[], unit: string): Summary {
  if (samples.length === 0) throw new Error('internal: no samples to summarize');
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { unit, median, min: s[0], max: s[s.length - 1], n: s.length, samples };
}

/** A single value reported as a one-sample summary (ratios, counts). */
export function single(value: number, unit: string): Summary {
  return summarize([value], unit);
}

export const now = (): number => performance.now();

/** This process's peak resident set (MiB): VmHWM on Linux, else resourceUsage().maxRSS. */
export function peakRssMiB(): number {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

export function rssMiB(): number {
  return process.memoryUsage().rss / (1024 * 1024);
}
