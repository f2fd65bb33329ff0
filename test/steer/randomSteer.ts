/** Small seeded random steers and matrices for the steer tests. */
import { tensor, type Tensor } from '../../src/util/tensor.js';
import type { Steer, SteerSlot } from '../../src/steer/steer.js';

/** mulberry32: a tiny seeded PRNG, so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomTensor(shape: number[], rand: () => number, scale = 1): Tensor {
  const t = tensor(shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] = (rand() * 2 - 1) * scale;
  return t;
}

export function randomSteer(opts: { d: number; rank: number; slots: (string | SteerSlot)[]; eps?: number; name?: string; seed?: number; vocab?: number }): Steer {
  const rand = rng(opts.seed ?? 1);
  const slots = opts.slots.map((s) => (typeof s === 'string' ? { name: s, defaultValue: 0 } : s));
  const shape = [slots.length, opts.d, opts.rank];
  return {
    config: {
      formatVersion: 1,
      ...(opts.name ? { name: opts.name } : {}),
      baseModel: { id: 'test/tiny', embeddingFingerprint: 'emb1-test', vocabSize: opts.vocab ?? 11, hiddenSize: opts.d },
      eps: opts.eps ?? 1e-3,
      rank: opts.rank,
      slots,
    },
    p1: randomTensor(shape, rand, 0.5),
    p2: randomTensor(shape, rand, 0.5),
  };
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = 'value'): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= tol * (1 + Math.abs(e)))) throw new Error(`${what}[${i}]: ${a} vs expected ${e} (tol ${tol})`);
  }
}
