/**
 * One sampled token's effect on a row — stop rules (EOS, max tokens, stop strings) and the streamed text —
 * shared by generate() and the server's scheduler so both finish rows identically.
 */
import { tokenFinish, type FinishReason, type StopConfig } from './stopping.js';
import type { TextStream } from './textStream.js';

export interface RowProgress {
  tokens: number[];
  stop: StopConfig;
  stream: TextStream;
  finish?: FinishReason;
}

/** Append `id` to the row; returns the newly decided text and, when the row is done, why. */
export function advanceRow(r: RowProgress, id: number): { delta: string; finish?: FinishReason } {
  r.tokens.push(id);
  let finish = tokenFinish(r.stop, id, r.tokens.length);
  let delta = '';
  if (finish !== 'eos') {
    const u = r.stream.push(id);
    delta = u.delta;
    if (u.stopped) finish = 'stop';
  }
  if (finish && finish !== 'stop') {
    const u = r.stream.finish();
    delta += u.delta;
    if (u.stopped) finish = 'stop';
  }
  r.finish = finish;
  return { delta, finish };
}
