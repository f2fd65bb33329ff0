/**
 * Hidden-state extraction for steer training: the frozen LM turns each text into its final hidden states
 * (the LM head's input) and token ids — the `ExtractFn` that HiddenCache and trainSteer are given.
 *
 * Texts are encoded with the tokenizer's special tokens (BOS for Llama, nothing for GPT-2, as the reference's
 * HF tokenizer call does) and truncated from the right to maxLength tokens (the reference's
 * `truncation=True, max_length`). Rows of similar length run together so little of a batch is padding, and a
 * batch is capped by a budget on its padded tokens so memory stays bounded for long texts and wide models.
 *
 * With pad rows asked for (`padTo`, the reference's loss over pad positions), rows are padded with the pad id
 * and run through the masked forward (src/train/maskedForward.ts), so every position past the text is the pad
 * token's state under the attention mask, exactly as transformers computes it in the reference's batches.
 */
import { createHash } from 'node:crypto';
import type { LoadedModel } from '../runtime/loadModel.js';
import { FP32_BUILD } from '../graph/buildOptions.js';
import { weightsKey } from '../runtime/session.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { charsForTokens } from '../tokenizer/textBound.js';
import { LmSteerError } from '../util/errors.js';
import { tensor } from '../util/tensor.js';
import type { ExtractFn } from './hiddenCache.js';
import type { MaskedForward } from './maskedForward.js';

export interface ExtractorOptions {
  /** Tokens kept per text (from the left). */
  maxLength: number;
  /** Padded tokens (rows × longest row) per decoder call; default 4096. */
  tokenBudget?: number;
  /** Rows per decoder call at most; default 256 (short texts such as SST phrases batch wide). */
  maxRows?: number;
  /** Called after each decoder call with the real tokens it processed. */
  onBatch?: (texts: number, tokens: number) => void;
  /** Pad rows (`padTo`): the pad token id and the masked forward that computes them. */
  pad?: { id: number; forward: MaskedForward };
}

/**
 * Probe strings whose encodings reveal a tokenizer's behaviour: special tokens added or not, whitespace
 * handling, byte fallback, special-token matching inside text.
 */
const PROBES = [
  'Once upon a time',
  ' two  spaces\tand a tab\n',
  'Zoë ate crème brûlée 🍰 — yum!',
  "I can't, it's 12:30.",
  'a<s>b</s><|endoftext|>c',
  '',
];

/** sha256 over the vocabulary size, the special ids and the probe encodings (special tokens on and off). */
export function tokenizerFingerprint(tok: Tokenizer): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: tok.vocabSize, bos: tok.bosId ?? null, eos: tok.eosIds, pad: tok.padId ?? null }));
  for (const p of PROBES) h.update(JSON.stringify([tok.encode(p), tok.encode(p, { addSpecialTokens: false })]));
  return `tok1-${h.digest('hex').slice(0, 32)}`;
}

/**
 * What the cached hidden states of a text depend on: every weight, the graph builder and the weight precision
 * the decoder runs (weightsKey, the key of the built-graph cache: q8 / q4 give other hidden states), and how the
 * text is tokenized. A change to any gives a new cache folder.
 */
export function extractionFingerprint(model: Pick<LoadedModel, 'cfg' | 'weights' | 'tokenizer' | 'build'>): string {
  const h = createHash('sha256');
  // The head's precision is left out: hidden states are its input.
  const key = weightsKey(model.cfg, model.weights, { dtype: (model.build ?? FP32_BUILD).dtype });
  h.update(`lmsteer-hidden-v1\u0000${key}\u0000${tokenizerFingerprint(model.tokenizer)}`);
  return `hid1-${h.digest('hex').slice(0, 32)}`;
}

/**
 * Token ids of `text` as training sees them: special tokens added, at most `maxLength` tokens. The text is cut
 * first to the characters that can matter for them (textBound.ts): a huge text costs no more than a long one.
 */
export function encodeForTraining(tok: Tokenizer, text: string, maxLength: number): number[] {
  const room = charsForTokens(tok, maxLength);
  return tok.encode(text.length > room ? text.slice(0, room) : text).slice(0, maxLength);
}

/** Group row indices (sorted by length) into batches under the padded-token budget. */
export function lengthBatches(lengths: readonly number[], tokenBudget: number, maxRows: number): number[][] {
  const order = lengths.map((_, i) => i).filter((i) => lengths[i]! > 0);
  order.sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const batches: number[][] = [];
  let cur: number[] = [];
  for (const i of order) {
    // Sorted ascending, so the row being added is the batch's longest.
    if (cur.length > 0 && (cur.length >= maxRows || (cur.length + 1) * lengths[i]! > tokenBudget)) {
      batches.push(cur);
      cur = [];
    }
    cur.push(i);
  }
  if (cur.length > 0) batches.push(cur);
  return batches;
}

/** The ExtractFn over a loaded model. */
export function makeExtractor(
  model: Pick<LoadedModel, 'tokenizer' | 'decoder' | 'cfg'>,
  opts: ExtractorOptions,
): ExtractFn {
  const maxLen = Math.min(opts.maxLength, model.cfg.maxPositions);
  if (!(Number.isInteger(maxLen) && maxLen > 0))
    throw new LmSteerError('BAD_ARGUMENT', `max length ${opts.maxLength} is not a positive integer`);
  const budget = opts.tokenBudget ?? 4096;
  const maxRows = opts.maxRows ?? 256;
  const d = model.cfg.hiddenSize;
  return async (texts, padTo) => {
    const ids = texts.map((t) => encodeForTraining(model.tokenizer, t, maxLen));
    if (padTo && !opts.pad) throw new Error('internal: pad rows asked of an extractor without a pad token');
    // Rows per text: its tokens, or as many as asked for with pad rows.
    const rowsOf = ids.map((r, i) => (padTo ? Math.min(maxLen, Math.max(r.length, padTo[i] ?? 0)) : r.length));
    if (padTo) {
      const empty = ids.findIndex((r) => r.length === 0);
      if (empty >= 0)
        throw new LmSteerError(
          'BAD_DATA',
          `text ${JSON.stringify(texts[empty]!.slice(0, 40))} encodes to no tokens, but pad positions need a real token to attend to`,
          'drop empty texts from the dataset',
        );
    }
    // A text that encodes to no tokens (possible without BOS) has no hidden states and adds nothing to the loss.
    const out = ids.map((row) => ({ hidden: tensor([0, d], new Float32Array(0)), ids: row }));
    for (const batch of lengthBatches(rowsOf, budget, maxRows)) {
      let H: Float32Array;
      let T: number;
      if (padTo) {
        T = Math.max(...batch.map((i) => rowsOf[i]!));
        const rows = batch.map((i) => [...ids[i]!, ...new Array<number>(T - ids[i]!.length).fill(opts.pad!.id)]);
        const h = await opts.pad!.forward.hidden(
          rows,
          batch.map((i) => ids[i]!.length),
        );
        H = h.data;
      } else {
        const res = await model.decoder.forward(
          batch.map((i) => ids[i]!),
          { hiddenOnly: true },
        );
        T = res.hidden.shape[1]!;
        H = res.hidden.data as Float32Array;
      }
      batch.forEach((i, b) => {
        const n = rowsOf[i]!;
        out[i]!.hidden = tensor([n, d], H.slice(b * T * d, (b * T + n) * d));
      });
      opts.onBatch?.(
        batch.length,
        batch.reduce((a, i) => a + ids[i]!.length, 0),
      );
    }
    return out;
  };
}
