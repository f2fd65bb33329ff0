/**
 * Drive a Decoder's KV slots the way the batch engine does, for tests of the decoders themselves: prefill
 * `rows` into slots 0..B-1, then one `extend` per step appending `next(step)` to every row. Returns each
 * call's next-token logits, flat [B·V] per call (the prefill's first).
 */
import type { Decoder, SteerDirections } from '../../src/runtime/decoder.js';

export async function decodeSteps(
  dec: Decoder,
  rows: number[][],
  steps: number,
  next: (step: number) => number[],
  opts: { steer?: SteerDirections; scales?: Float32Array[] } = {},
): Promise<Float32Array[]> {
  const slots = dec.openSlots({ rows: rows.length, steer: opts.steer });
  try {
    opts.scales?.forEach((s, b) => slots.setScale(b, s));
    const V = dec.vocabSize;
    const first = await slots.prefill(
      rows,
      rows.map((_, b) => [b]),
      true,
    );
    const flat = new Float32Array(rows.length * V);
    first.forEach((l, b) => flat.set(l, b * V));
    const out = [flat];
    const lengths = rows.map((r) => r.length);
    for (let s = 0; s < steps; s++) {
      out.push((await slots.extend(0, next(s), lengths)).slice());
      lengths.forEach((_, b) => lengths[b]!++);
    }
    return out;
  } finally {
    slots.dispose();
  }
}
