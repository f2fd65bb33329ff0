/** Small seeded random steers and matrices for the steer tests. */
import { mulberry32 as rng } from '../helpers/random.js';
import { tensor, type Tensor } from '../../src/util/tensor.js';
import type { Steer, SteerSlot } from '../../src/steer/steer.js';

export { mulberry32 as rng } from '../helpers/random.js';

export function randomTensor(shape: number[], rand: () => number, scale = 1): Tensor {
  const t = tensor(shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] = (rand() * 2 - 1) * scale;
  return t;
}

export function randomSteer(opts: {
  d: number;
  rank: number;
  slots: (string | SteerSlot)[];
  eps?: number;
  name?: string;
  seed?: number;
  vocab?: number;
}): Steer {
  const rand = rng(opts.seed ?? 1);
  const slots = opts.slots.map((s) => (typeof s === 'string' ? { name: s, defaultValue: 0 } : s));
  const shape = [slots.length, opts.d, opts.rank];
  return {
    config: {
      formatVersion: 1,
      ...(opts.name ? { name: opts.name } : {}),
      baseModel: {
        id: 'test/tiny',
        embeddingFingerprint: 'emb1-test',
        vocabSize: opts.vocab ?? 11,
        hiddenSize: opts.d,
      },
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
    if (!(Math.abs(a - e) <= tol * (1 + Math.abs(e))))
      throw new Error(`${what}[${i}]: ${a} vs expected ${e} (tol ${tol})`);
  }
}
