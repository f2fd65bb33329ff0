/**
 * When a row stops: EOS (only after minNewTokens; before that EOS logits are masked to -Infinity, as Hugging
 * Face's min_new_tokens does), a stop string in the decoded continuation (cut, with everything after it), or
 * maxNewTokens. Pure functions; `generate` keeps the per-row counters and `TextStream` the decoded text.
 */

/** 'eos': the model chose an EOS id; 'stop': a stop string matched; 'length': maxNewTokens reached. */
export type FinishReason = 'stop' | 'length' | 'eos';

export interface StopConfig {
  /** Ids that end a row (the tokenizer's eosIds). */
  eosIds: readonly number[];
  /** Whether EOS ends a row at all (false: EOS is an ordinary token, never masked). */
  stopAtEos: boolean;
  minNewTokens: number;
  maxNewTokens: number;
}

/** Whether EOS must be masked for the token about to be chosen, given how many new tokens the row has. */
export function eosBlocked(cfg: StopConfig, generated: number): boolean {
  return cfg.stopAtEos && cfg.eosIds.length > 0 && generated < cfg.minNewTokens;
}

/** A copy of `row` with the EOS logits set to -Infinity (the decoder's buffer is left untouched). */
export function maskEos(row: Float32Array, eosIds: readonly number[]): Float32Array {
  const out = row.slice();
  for (const id of eosIds) if (id >= 0 && id < out.length) out[id] = -Infinity;
  return out;
}

/** The finish reason after a row's `generated`-th new token `id`, ignoring stop strings; undefined = go on. */
export function tokenFinish(cfg: StopConfig, id: number, generated: number): FinishReason | undefined {
  if (cfg.stopAtEos && cfg.eosIds.includes(id)) return 'eos';
  if (generated >= cfg.maxNewTokens) return 'length';
  return undefined;
}

/**
 * The earliest stop string in `text` that ends at or after `from` (so a caller that already searched
 * text[0, from) passes its length and only new matches are looked for). Equal starts: the longer one.
 */
export function findStopString(
  text: string,
  stops: readonly string[],
  from = 0,
): { index: number; stop: string } | undefined {
  let best: { index: number; stop: string } | undefined;
  for (const stop of stops) {
    const index = text.indexOf(stop, Math.max(0, from - stop.length + 1));
    if (index < 0) continue;
    if (!best || index < best.index || (index === best.index && stop.length > best.stop.length)) best = { index, stop };
  }
  return best;
}

/**
 * How many characters at the end of `text` must be held back from streaming because they could be the start
 * of a stop string (the longest suffix that is a proper prefix of some stop string).
 */
export function stopHoldback(text: string, stops: readonly string[]): number {
  let hold = 0;
  for (const stop of stops) {
    for (let len = Math.min(stop.length - 1, text.length); len > hold; len--) {
      if (text.endsWith(stop.slice(0, len))) {
        hold = len;
        break;
      }
    }
  }
  return hold;
}
