/**
 * Adam as torch.optim.Adam computes it (defaults β1 0.9, β2 0.999, eps 1e-8, no weight decay, no amsgrad),
 * the optimizer the reference trains with (Glaciohound/LM-Steer experiments/training/train.py):
 *   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + eps)
 * The state (step count and the m, v moments, float32 like torch keeps them for float32 parameters) is plain
 * data so checkpoint.ts can write it and a resumed run continues bit for bit.
 */
import { LmSteerError } from '../util/errors.js';

export interface AdamConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export const ADAM_DEFAULTS: Omit<AdamConfig, 'lr'> = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

export interface AdamState {
  step: number;
  /** First and second moments, one array per parameter, in parameter order. */
  m: Float32Array[];
  v: Float32Array[];
}

export function adamInit(sizes: readonly number[]): AdamState {
  return { step: 0, m: sizes.map((n) => new Float32Array(n)), v: sizes.map((n) => new Float32Array(n)) };
}

/** One update of every parameter in place; `grads[i]` is the gradient of `params[i]`. */
export function adamStep(cfg: AdamConfig, state: AdamState, params: Float32Array[], grads: Float32Array[]): void {
  if (params.length !== state.m.length || grads.length !== params.length) {
    throw new Error(
      `internal: adam has ${state.m.length} moments, got ${params.length} params and ${grads.length} grads`,
    );
  }
  // Check before touching anything, so a diverged step leaves parameters and moments as they were.
  grads.forEach((g, k) => {
    for (let i = 0; i < g.length; i++) {
      if (!Number.isFinite(g[i]!)) {
        throw new LmSteerError(
          'BAD_DATA',
          `gradient is ${g[i]} at step ${state.step + 1} (parameter ${k}, index ${i})`,
          'training diverged; lower the learning rate or check the data',
        );
      }
    }
  });
  state.step += 1;
  const { lr, beta1, beta2, eps } = cfg;
  const bc1 = 1 - beta1 ** state.step;
  const bc2Sqrt = Math.sqrt(1 - beta2 ** state.step);
  const stepSize = lr / bc1;
  for (let k = 0; k < params.length; k++) {
    const p = params[k]!;
    const g = grads[k]!;
    const m = state.m[k]!;
    const v = state.v[k]!;
    if (p.length !== g.length || p.length !== m.length) throw new Error(`internal: adam parameter ${k} sizes differ`);
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]!;
      m[i] = beta1 * m[i]! + (1 - beta1) * gi;
      v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
      p[i] = p[i]! - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / bc2Sqrt + eps);
    }
  }
}
