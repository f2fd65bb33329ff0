/**
 * One generation row — a prompt becoming one sample — and the one way its next token is chosen: EOS masked
 * before min tokens, sampled from the row's own random stream, then the stop rules (EOS, max tokens, stop
 * strings) and the streamed text. generate() and the server's scheduler both hand rows to the batch engine
 * (engine.ts), which calls chooseNext with each row's logits, so both finish rows identically.
 */
import { LmSteerError } from '../util/errors.js';
import type { Rng } from './rng.js';
import {
  applyPenalties,
  hasPenalties,
  sampleToken,
  tokenLogprob,
  type SamplingParams,
  type TokenLogprob,
} from './sampling.js';
import { eosBlocked, maskEos, tokenFinish, type FinishReason, type StopConfig } from './stopping.js';
import type { TextStream } from './textStream.js';

/** What the owner of a row hears about it (generate's hooks, a server request's stream). */
export interface RowEvents {
  /**
   * After every new token; the deltas of a row concatenate to its final text. `logprob` is there when the row
   * asked for it (`Row.logprobs`).
   */
  token?(delta: string, id: number, logprob?: TokenLogprob): void;
  /** When the row is done (after its last `token`). */
  finish?(): void;
  /** Its token could not be chosen (e.g. NaN logits); the row has left the batch. */
  fail?(error: LmSteerError): void;
}

export interface Row {
  prompt: number[];
  /** The row's steer_scale row (length K of the engine's steer; undefined = unsteered). */
  scale?: Float32Array;
  sampling: SamplingParams;
  stop: StopConfig;
  rng: Rng;
  stream: TextStream;
  /** New tokens so far (the final EOS included). */
  tokens: number[];
  finish?: FinishReason;
  /** Where the row is in messages, e.g. "request 0 sample 3". */
  label: string;
  events: RowEvents;
  /**
   * Report each chosen token's log-probability with this many most likely alternatives (0: the token's only);
   * undefined: none. Computed from the raw logits the row was given — the (steered) model's distribution before
   * EOS masking, penalties, temperature and top-k/top-p, as vLLM reports them by default.
   */
  logprobs?: number;
  /** Token counts for the penalties (made on the first choice when `sampling` has any). */
  counts?: { seen: Set<number>; generated: Map<number, number> };
}

/** Sample the row's next token from `logits` [V], append it and report it. Throws what sampling throws, labelled. */
export function chooseNext(r: Row, logits: Float32Array): void {
  let row = eosBlocked(r.stop, r.tokens.length) ? maskEos(logits, r.stop.eosIds) : logits;
  if (hasPenalties(r.sampling)) {
    r.counts ??= { seen: new Set(r.prompt), generated: new Map() };
    row = applyPenalties(row, r.sampling, r.counts.seen, r.counts.generated);
  }
  let id: number;
  try {
    id = sampleToken(row, r.sampling, r.rng);
  } catch (e) {
    if (e instanceof LmSteerError) {
      throw new LmSteerError(e.code, `${r.label}, new token ${r.tokens.length + 1}: ${e.message}`, e.hint, {
        cause: e,
      });
    }
    throw e;
  }
  if (r.counts) {
    r.counts.seen.add(id);
    r.counts.generated.set(id, (r.counts.generated.get(id) ?? 0) + 1);
  }
  const lp = r.logprobs !== undefined ? tokenLogprob(logits, id, r.logprobs) : undefined;
  const delta = advance(r, id);
  r.events.token?.(delta, id, lp);
  if (r.finish) r.events.finish?.();
}

/** Append `id`; returns the newly decided text and sets `r.finish` when the row is done. */
function advance(r: Row, id: number): string {
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
  return delta;
}
