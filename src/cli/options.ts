/** Flag value parsers shared by the commands: each names the flag in its error. */
import { LmSteerError } from '../util/errors.js';

export function intOption(flag: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    const v = Number(raw);
    if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(v) || v < min || v > max) {
      throw new LmSteerError('BAD_ARGUMENT', `${flag} must be an integer from ${min} to ${max}, got "${raw}"`);
    }
    return v;
  };
}

export function floatOption(flag: string, min: number, max: number) {
  return (raw: string): number => {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v) || v < min || v > max) {
      throw new LmSteerError('BAD_ARGUMENT', `${flag} must be a number from ${min} to ${max}, got "${raw}"`);
    }
    return v;
  };
}

/** Repeatable flag collector. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `--value name=5 --value other=-2.5` → { name: 5, other: -2.5 }; NaN/Infinity rejected. */
export function parseValues(pairs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of pairs) {
    const m = /^([^=]+)=(.*)$/.exec(p);
    const v = m ? Number(m[2]) : NaN;
    if (!m || m[2].trim() === '' || !Number.isFinite(v)) {
      throw new LmSteerError('BAD_ARGUMENT', `--value "${p}" is not name=number (finite)`, 'e.g. --value sentiment=3');
    }
    out[m[1].trim()] = v;
  }
  return out;
}

/** `--ids 1,2,3` → [1, 2, 3]. */
export function parseIds(raw: string): number[] {
  const parts = raw.split(',').map((s) => s.trim());
  if (parts.some((s) => !/^\d+$/.test(s)))
    throw new LmSteerError('BAD_ARGUMENT', `--ids must be comma-separated token ids, got "${raw}"`);
  return parts.map(Number);
}
