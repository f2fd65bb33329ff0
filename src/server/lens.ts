/**
 * The lens endpoints over src/lens/explain.ts:
 *   GET  /v1/steers/{name}/dims?slot=&top=20&dims=5&all_tokens=false   → explainSteerDims (cached per steer)
 *   POST /v1/explain {"steer": name, "text": "...", "slot"?, "grid"?}  → explainText
 * The explain call runs two-plus-grid full forward passes over the text on the model's session, beside the
 * decode loop (ORT sessions take concurrent runs; the batch's KV buffers are not involved).
 */
import { z } from 'zod';
import { explainSteerDims, explainText, type DimsModel, type TextModel } from '../lens/explain.js';
import { ApiError, parseBody } from './openai.js';
import type { SteerSet } from '../steer/steerSet.js';

export interface Lens {
  /** The words each direction of steer `name` moves. */
  dims(steers: SteerSet, name: string, params: URLSearchParams): Promise<unknown>;
  /** Per-token evidence of a text under a loaded steer. */
  explain(steers: SteerSet, body: unknown): Promise<unknown>;
  /** Drop anything cached for a steer that was (un)loaded. */
  forget(name: string): void;
}

const ExplainSchema = z.looseObject({
  steer: z.string().min(1),
  text: z.string().min(1),
  slot: z.string().min(1).nullish(),
  grid: z.array(z.number().refine(Number.isFinite, 'must be a finite number')).min(1).max(41).nullish(),
});

function intParam(params: URLSearchParams, name: string, def: number, max: number): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return def;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1 || v > max)
    throw new ApiError(
      400,
      'BAD_ARGUMENT',
      `query parameter ${name}=${raw} must be an integer from 1 to ${max}`,
      undefined,
      name,
    );
  return v;
}

export function createLens(model: DimsModel & TextModel, limits: { maxTextTokens: number }): Lens {
  const cache = new Map<string, unknown>();
  const steerOf = (steers: SteerSet, name: string) => {
    const s = steers.get(name);
    if (!s)
      throw new ApiError(
        404,
        'NOT_FOUND',
        `no steer named "${name}" is loaded`,
        `loaded steers: ${steers.names().join(', ') || '(none)'}`,
      );
    return s.steer;
  };
  return {
    async dims(steers, name, params) {
      const steer = steerOf(steers, name);
      const opts = {
        slot: params.get('slot') || undefined,
        top: intParam(params, 'top', 20, 200),
        dims: intParam(params, 'dims', 5, 64),
        allTokens: params.get('all_tokens') === 'true' || params.get('all_tokens') === '1',
      };
      const key = JSON.stringify([name, opts]);
      let r = cache.get(key);
      if (!r) cache.set(key, (r = explainSteerDims(model, steer, opts)));
      return r;
    },
    async explain(steers, raw) {
      const body = parseBody(ExplainSchema, raw);
      const steer = steerOf(steers, body.steer);
      const n = model.tokenizer.encode(body.text).length;
      if (n > limits.maxTextTokens) {
        throw new ApiError(
          400,
          'BAD_ARGUMENT',
          `the text has ${n} tokens; this server explains at most ${limits.maxTextTokens}`,
          'explain a shorter text',
          'text',
        );
      }
      return explainText(model, steer, body.text, { slot: body.slot ?? undefined, grid: body.grid ?? undefined });
    },
    forget(name) {
      for (const k of cache.keys()) if (JSON.parse(k)[0] === name) cache.delete(k);
    },
  };
}
