/**
 * Fluency: the perplexity of each generation conditioned on its prompt, under an evaluator LM with no steer.
 * As the reference (LM-Steer experiments/evaluation/evaluate.py, `conditional_perplexity`), the text
 * prompt + generation is encoded again with the evaluator's tokenizer and the tokens after the first
 * len(encode(prompt)) are scored: log p(x_t | x_<t) for those t. (The reference takes full_loss − prompt_loss,
 * which equals this sum whenever encode(prompt + gen) starts with encode(prompt).)
 * Rows go through OrtDecoder.forward in batches sized to bound the [B, T, V] logits buffer.
 */
import type { ForwardResult } from '../runtime/decoder.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { LmSteerError } from '../util/errors.js';

/** What fluency needs from a model: an unsteered full forward pass and its tokenizer. */
export interface FluencyModel {
  decoder: { forward(rows: number[][]): Promise<ForwardResult>; readonly vocabSize: number };
  tokenizer: Tokenizer;
  /** Context length: longer rows lose prompt tokens from the left. */
  maxPositions: number;
}

export interface FluencyItem {
  prompt: string;
  generation: string;
}

export interface GenerationScore {
  /** Natural-log probabilities of the generation's tokens (empty when the generation adds no token). */
  logProbs: Float64Array;
}

export interface FluencyOptions {
  /** Upper bound on the float32 logits of one forward call (B·T·V), in values. Default 32M (128 MiB). */
  maxLogitValues?: number;
  /** Upper bound on rows per forward call. Default 64. */
  maxRows?: number;
}

interface Row {
  index: number;
  ids: number[];
  /** Tokens before this position are context; from here on they are scored. */
  first: number;
}

/** Token rows for the items: encode(prompt + gen), with the prompt part cut from the left to fit the context. */
function tokenRows(model: FluencyModel, items: readonly FluencyItem[]): Row[] {
  return items.map((it, index) => {
    const promptIds = model.tokenizer.encode(it.prompt);
    let ids = model.tokenizer.encode(it.prompt + it.generation);
    let first = Math.min(promptIds.length, ids.length);
    // A token must have something before it to be scored (GPT-2 adds no BOS: an empty prompt scores from token 1).
    if (first === 0) first = 1;
    if (ids.length > model.maxPositions) {
      const cut = ids.length - model.maxPositions;
      if (cut >= first) {
        throw new LmSteerError(
          'LIMIT',
          `generation ${index} has ${ids.length - first} tokens, more than the evaluator's context of ${model.maxPositions}`,
          'use shorter generations or an evaluator LM with a longer context',
        );
      }
      ids = ids.slice(cut);
      first -= cut;
    }
    return { index, ids, first };
  });
}

/** Log-probabilities of each item's generation tokens, in item order. */
export async function generationLogProbs(
  model: FluencyModel,
  items: readonly FluencyItem[],
  opts: FluencyOptions = {},
): Promise<GenerationScore[]> {
  const out: GenerationScore[] = items.map(() => ({ logProbs: new Float64Array(0) }));
  const rows = tokenRows(model, items).filter((r) => r.ids.length > r.first);
  // Similar lengths share a call (less padding); the order does not change any number.
  rows.sort((a, b) => a.ids.length - b.ids.length || a.index - b.index);
  const V = model.decoder.vocabSize;
  const maxValues = opts.maxLogitValues ?? 32 * 1024 * 1024;
  const maxRows = opts.maxRows ?? 64;
  let start = 0;
  while (start < rows.length) {
    // Rows are sorted by length, so the last row taken sets T.
    let end = start + 1;
    while (end < rows.length && end - start < maxRows && (end + 1 - start) * rows[end]!.ids.length * V <= maxValues)
      end++;
    const batch = rows.slice(start, end);
    const res = await model.decoder.forward(batch.map((r) => r.ids));
    batch.forEach((r, b) => (out[r.index] = { logProbs: rowLogProbs(res, b, r) }));
    start = end;
  }
  return out;
}

/** log softmax(logits[t − 1])[ids[t]] for t ≥ first, in float64. */
function rowLogProbs(res: ForwardResult, b: number, r: Row): Float64Array {
  const [, T, V] = res.logits.shape as [number, number, number];
  const data = res.logits.data as Float32Array;
  const lp = new Float64Array(r.ids.length - r.first);
  for (let t = r.first; t < r.ids.length; t++) {
    const base = (b * T + (t - 1)) * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (data[base + v]! > max) max = data[base + v]!;
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(data[base + v]! - max);
    lp[t - r.first] = data[base + r.ids[t]!]! - max - Math.log(sum);
  }
  return lp;
}

/** A loaded model as the fluency evaluator (always unsteered: forward() gets no steer). */
export function fluencyModelOf(model: {
  id: string;
  decoder: FluencyModel['decoder'];
  tokenizer: Tokenizer;
  cfg: { maxPositions: number };
  fingerprint(): string;
}): FluencyModel & { id: string; fingerprint: string } {
  return {
    decoder: model.decoder,
    tokenizer: model.tokenizer,
    maxPositions: model.cfg.maxPositions,
    id: model.id,
    fingerprint: model.fingerprint(),
  };
}
