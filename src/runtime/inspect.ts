/**
 * What a model (and a steer) does at each position of a text: the token, its log-probability given the text
 * before it, the most likely next tokens, and the last position's hidden state and logits. `lmsteer inspect`
 * prints it; the library returns it.
 */
import type { SteerSet } from '../steer/steerSet.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { LmSteerError } from '../util/errors.js';
import { tensor } from '../util/tensor.js';
import type { Decoder } from './decoder.js';
import { logSoftmax, topN } from './sampling.js';

export interface InspectedToken {
  position: number;
  id: number;
  /** The token as the tokenizer spells it. */
  token: string;
  /** log p(token | tokens before it); null at position 0. */
  logprob: number | null;
  /** The `top` most likely next tokens after this position. */
  top: { id: number; token: string; logprob: number }[];
}

export interface Inspection {
  tokens: InspectedToken[];
  /** The last position's final hidden state (input of the LM head, unsteered) [d]. */
  hidden: Float32Array;
  /** The last position's (steered) logits [V]. */
  logits: Float32Array;
}

export async function inspectIds(
  model: { decoder: Decoder; tokenizer: Tokenizer },
  ids: number[],
  opts: { steers?: SteerSet; values?: Record<string, number>; top?: number } = {},
): Promise<Inspection> {
  if (ids.length === 0)
    throw new LmSteerError('BAD_ARGUMENT', 'the text encodes to no tokens', 'give a non-empty text');
  const { steers } = opts;
  const scale = steers?.resolve(opts.values).scale;
  const steer = steers?.directions && scale && { ...steers.directions, scale: tensor([1, steers.K], scale) };
  const out = await model.decoder.forward([ids], { steer });
  const V = model.decoder.vocabSize;
  const d = model.decoder.hiddenSize;
  const tok = (id: number) => model.tokenizer.tokenString(id);
  let prev: Float64Array | undefined;
  const tokens = ids.map((id, t) => {
    const lp = logSoftmax((out.logits.data as Float32Array).subarray(t * V, (t + 1) * V));
    const row: InspectedToken = {
      position: t,
      id,
      token: tok(id),
      logprob: prev ? prev[id]! : null,
      top: topN(lp, opts.top ?? 5).map((c) => ({ id: c.id, token: tok(c.id), logprob: c.value })),
    };
    prev = lp;
    return row;
  });
  const T = ids.length;
  return {
    tokens,
    hidden: (out.hidden.data as Float32Array).slice((T - 1) * d, T * d),
    logits: (out.logits.data as Float32Array).slice((T - 1) * V, T * V),
  };
}
