/**
 * The raw decode loop the benches time, over any Decoder's KV slots (what the batch engine does, without
 * sampling or text): prefill `rows`, then `windows` timed windows of `steps` greedy steps (argmax in JS).
 */
import type { Decoder, SteerInputs } from '../src/runtime/decoder.js';
import type { Tensor } from '../src/util/tensor.js';
import { now } from './stats.js';

export interface DecodeRun {
  prefillMs: number;
  windowMs: number[];
  tokens: number[][];
}

export function argmaxRows(logits: Tensor): number[] {
  const [B, V] = logits.shape as [number, number];
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    const row = logits.data.subarray(b * V, (b + 1) * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
    out.push(best);
  }
  return out;
}

export async function decodeRun(
  dec: Decoder,
  rows: number[][],
  steps: number,
  windows: number,
  steer?: SteerInputs,
): Promise<DecodeRun> {
  const B = rows.length;
  const V = dec.vocabSize;
  const t0 = now();
  const slots = dec.openSlots({ rows: B, steer });
  if (steer)
    for (let b = 0; b < B; b++)
      slots.setScale(b, (steer.scale.data as Float32Array).subarray(b * slots.K, (b + 1) * slots.K));
  slots.reserve(Math.max(...rows.map((r) => r.length)) + steps * windows + 4); // one allocation, as generate() sizes it
  const first = await slots.prefill(
    rows,
    rows.map((_, b) => [b]),
    true,
  );
  const prefillMs = now() - t0;
  const flat = new Float32Array(B * V);
  first.forEach((l, b) => flat.set(l, b * V));
  let next = argmaxRows({ dtype: 'float32', shape: [B, V], data: flat });
  const lengths = rows.map((r) => r.length);
  const tokens: number[][] = next.map((t) => [t]);
  const windowMs: number[] = [];
  for (let w = 0; w < windows; w++) {
    const t = now();
    for (let s = 0; s < steps; s++) {
      const o = await slots.extend(0, next, lengths);
      lengths.forEach((_, b) => lengths[b]!++);
      next = argmaxRows({ dtype: 'float32', shape: [B, V], data: o });
      next.forEach((tok, b) => tokens[b]!.push(tok));
    }
    windowMs.push(now() - t);
  }
  slots.dispose();
  return { prefillMs, windowMs, tokens };
}
