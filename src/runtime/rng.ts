/**
 * Seeded, reproducible random streams for sampling. Every sample (row) gets its own stream derived from
 * (seed, key…), so what a row draws never depends on which other rows share its batch: the server batches
 * unrelated requests and must return the same text as each request run alone.
 */
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { check } from '../util/errors.js';

export interface Rng {
  /** A uniform float in [0, 1) with 53 random bits. */
  uniform(): number;
}

/** murmur3's 32-bit finalizer: every input bit flips each output bit with probability ~1/2. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/** Low and high 32-bit words of a safe integer (negative values in two's complement over 53 bits). */
function words(n: number): [number, number] {
  const lo = n | 0; // ToInt32 keeps the low 32 bits of the two's-complement value
  const hi = Math.floor(n / 4294967296) | 0;
  return [lo, hi];
}

/** Hash the key words with a different salt per state word, so distinct keys give unrelated states. */
function deriveState(parts: readonly number[]): number[] {
  const input = parts.flatMap(words);
  const state: number[] = [];
  for (let s = 0; s < 4; s++) {
    let h = fmix32(0x9e3779b9 * (s + 1) + input.length);
    for (const w of input) h = fmix32(Math.imul(h ^ w, 0x01000193) + 0x7f4a7c15);
    state.push(h);
  }
  // xoroshiro's all-zero state is a fixed point; the chance is 2^-128 but costs nothing to rule out.
  if (!state.some((v) => v !== 0)) state[0] = 1;
  return state;
}

/**
 * The stream keyed by (seed, ...key). `generate` uses key (requestIndex, sampleIndex): sample j of request i
 * draws from rngStream(seed, i, j). seed is any safe integer, key parts are non-negative safe integers.
 */
export function rngStream(seed: number, ...key: number[]): Rng {
  check(Number.isSafeInteger(seed), `seed must be a safe integer, got ${seed}`, 'pass an integer seed such as 0 or 42');
  for (const k of key) {
    if (!Number.isSafeInteger(k) || k < 0) throw new Error(`internal: rng key part ${k} is not a non-negative integer`);
  }
  const gen = xoroshiro128plusFromState(deriveState([seed, ...key]));
  return { uniform: () => uniformFloat64(gen) };
}
