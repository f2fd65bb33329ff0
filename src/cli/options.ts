/** Flag value parsers shared by the commands: each names the flag in its error. */
import { STEER_LIMITS } from '../steer/steer.js';
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

/** A decimal number as people write it (no hex, binary or octal: `0x10` is not 16 here). */
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Text for the terminal with control characters (newlines, ANSI escapes) shown as \u escapes: names and
 * messages can carry bytes from untrusted files, which must not move the cursor or recolour the screen.
 */
export function terminalSafe(s: string): string {
  return s.replace(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A flag value shown in an error: at most 80 characters, control characters escaped. */
export function shown(raw: string): string {
  const s = JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}…` : raw);
  return s.slice(1, -1);
}

/**
 * `--value name=5 --value other=-2.5` → { name: 5, other: -2.5 }; NaN/Infinity and non-decimal numbers
 * rejected. The result has no prototype, so a name such as "__proto__" is an ordinary (unknown) name.
 */
export function parseValues(pairs: string[]): Record<string, number> {
  const out: Record<string, number> = Object.create(null);
  for (const p of pairs) {
    const m = /^([^=]+)=(.*)$/s.exec(p);
    const v = m && DECIMAL.test(m[2]!.trim()) ? Number(m[2]) : NaN;
    if (!m || !Number.isFinite(v) || Math.abs(v) > STEER_LIMITS.value) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `--value "${shown(p)}" is not name=number (decimal, within ±${STEER_LIMITS.value})`,
        'e.g. --value sentiment=3',
      );
    }
    out[m[1]!.trim()] = v;
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
