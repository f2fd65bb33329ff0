/**
 * The lens as library calls on loaded objects (the CLI and the HTTP server both use them): what a steer slot
 * does to the vocabulary (explainSteerDims: SVD of W = P1·P2ᵀ, tokens ranked along each direction), and which
 * parts of a text it explains (explainText: per-token evidence from two steered passes, best spans, and the
 * steer value that fits the text best). Results are plain JSON-able data.
 */
import type { LoadedModel } from '../runtime/loadModel.js';
import { mainSlot, type Steer } from '../steer/steer.js';
import { SteerSet } from '../steer/steerSet.js';
import { LmSteerError } from '../util/errors.js';
import { tensor, type Tensor } from '../util/tensor.js';
import { explainDims, type SteerDim } from './dims.js';
import { textEvidence, valueDistribution, valueGrid } from './evidence.js';
import type { SpanOptions } from './spans.js';
import { slotMatrix, steerSvd } from './svd.js';

export type DimsModel = Pick<LoadedModel, 'id' | 'tokenizer' | 'outputEmbeddings'>;
export type TextModel = Pick<LoadedModel, 'id' | 'tokenizer' | 'decoder' | 'cfg'>;

/**
 * The slot of `steer` called `name` (a slot name, or `steer.slot`, as SteerSet reads value names); with no
 * name, its main slot. The messages speak of slots to explain rather than of values.
 */
export function resolveSlot(steer: Steer, name: string | undefined): number {
  const set = SteerSet.of([steer]);
  const label = set.names()[0]!;
  const slots = steer.config.slots.map((s) => s.name);
  if (name === undefined) {
    const main = mainSlot(steer);
    if (main !== undefined) return main;
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${label} has ${slots.length} slots; say which one to explain`,
      `pass --slot NAME, one of: ${slots.join(', ')}`,
    );
  }
  try {
    return set.slotOf(name)[1];
  } catch (e) {
    if (!(e instanceof LmSteerError)) throw e;
    throw new LmSteerError('NOT_FOUND', `${label} has no slot "${name}"`, `its slots: ${slots.join(', ')}`);
  }
}

function checkWidth(steer: Steer, d: number, modelId: string): void {
  const ds = steer.config.baseModel.hiddenSize;
  if (ds !== d) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `steer ${steer.config.name ?? '(unnamed)'} has hidden size ${ds} but ${modelId} has ${d}`,
      'use the base model the steer was trained for, or move the steer with `lmsteer transfer`',
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Word dimensions

export interface ExplainDimsOptions {
  /** Slot name; default the steer's main slot (its only slot besides base). */
  slot?: string;
  /** Tokens per pole (default 20). */
  top?: number;
  /** Singular directions to explain (default 5). */
  dims?: number;
  /** Rank every non-special token, not only word-like ones (default false). */
  allTokens?: boolean;
}

export interface SteerDimsReport {
  model: string;
  steer: string;
  slot: string;
  rank: number;
  hiddenSize: number;
  wordLike: boolean;
  /** σ of the directions below (fewer than asked when W's rank is lower). */
  singularValues: number[];
  dims: SteerDim[];
}

export function explainSteerDims(model: DimsModel, steer: Steer, opts: ExplainDimsOptions = {}): SteerDimsReport {
  const { top = 20, dims = 5, allTokens = false } = opts;
  for (const [flag, v] of [
    ['top', top],
    ['dims', dims],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new LmSteerError('BAD_ARGUMENT', `${flag} must be a positive integer, got ${v}`, `e.g. --${flag} 5`);
  }
  const slot = resolveSlot(steer, opts.slot);
  const E = model.outputEmbeddings();
  checkWidth(steer, E.shape[1]!, model.id);
  const svd = steerSvd(slotMatrix(steer.p1, slot), slotMatrix(steer.p2, slot), dims);
  const { strings, isSpecial } = tokenTable(model, E);
  const explained = explainDims(svd, E, strings, { top, wordLike: !allTokens, isSpecial });
  return {
    model: model.id,
    steer: steer.config.name ?? 'steer',
    slot: steer.config.slots[slot]!.name,
    rank: steer.config.rank,
    hiddenSize: E.shape[1]!,
    wordLike: !allTokens,
    singularValues: svd.values,
    dims: explained,
  };
}

/** A string per embedding row; rows past the tokenizer's vocabulary (padding) count as special. */
function tokenTable(model: DimsModel, E: Tensor): { strings: string[]; isSpecial: (id: number) => boolean } {
  const V = E.shape[0]!;
  const tv = model.tokenizer.vocabSize;
  const strings = Array.from({ length: V }, (_, id) => (id < tv ? model.tokenizer.tokenString(id) : ''));
  return { strings, isSpecial: (id) => id >= tv || model.tokenizer.isSpecial(id) };
}

// ---------------------------------------------------------------------------------------------------------
// Evidence in a text

export interface ExplainTextOptions {
  slot?: string;
  /** Steer values to fit the text against (default: −3 … 3 in 13 steps, as the reference app). */
  grid?: number[];
  spans?: Partial<SpanOptions>;
  /** Largest logits buffer of one forward call, in floats (default 2²⁴ = 64 MB); grid rows are batched up to it. */
  maxBatchFloats?: number;
}

export interface TextExplanation {
  model: string;
  steer: string;
  slot: string;
  /** The text's tokens (a leading BOS the model adds is context, not shown). evidence: null when unpredicted. */
  tokens: { id: number; text: string; evidence: number | null }[];
  /** Half-open token ranges into `tokens`, the ≤ 4 disjoint spans of ≤ 10 tokens with the most evidence. */
  spans: [number, number][];
  total: number;
  /**
   * Mean token loss of the text with the slot at each grid value, and softmax((mean − loss)·10) over them.
   * `edge`: the best value is the grid's lowest or highest, so the text may fit a value beyond the grid better.
   */
  grid: { values: number[]; meanLosses: number[]; distribution: number[]; best: number; edge: 'low' | 'high' | null };
}

export async function explainText(
  model: TextModel,
  steer: Steer,
  text: string,
  opts: ExplainTextOptions = {},
): Promise<TextExplanation> {
  const slot = resolveSlot(steer, opts.slot);
  checkWidth(steer, model.cfg.hiddenSize, model.id);
  const grid = opts.grid ?? valueGrid();
  if (grid.length === 0 || grid.some((x) => !Number.isFinite(x))) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `the value grid [${grid.join(', ')}] must be non-empty and finite`,
      'e.g. --grid -3:3:13',
    );
  }
  const ids = model.tokenizer.encode(text);
  let prefix = 0; // leading special tokens (BOS): context for the first text token, not part of the text
  while (prefix < ids.length && model.tokenizer.isSpecial(ids[prefix]!)) prefix++;
  const textTokens = ids.length - prefix;
  if (textTokens < 2) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `the text ${JSON.stringify(text.length > 40 ? text.slice(0, 40) + '…' : text)} has ${textTokens} token${textTokens === 1 ? '' : 's'}; evidence needs at least 2`,
      'give a longer text (a phrase or a sentence)',
    );
  }
  // Scored positions: every token after the anchor (the last leading special, else the first text token).
  const anchor = Math.max(0, prefix - 1);
  const values = [1, -1, ...grid];
  const logProbs = await scoreRows(model, steer, slot, ids, values, anchor, opts.maxBatchFloats ?? 1 << 24);

  const texts = ids.slice(anchor).map((id) => model.tokenizer.tokenString(id));
  const ev = textEvidence(texts, logProbs[0]!, logProbs[1]!, opts.spans);
  // With a BOS anchor, drop it: every text token then has evidence; spans shift by one.
  const shift = prefix > 0 ? 1 : 0;
  const tokens = ev.tokens
    .slice(shift)
    .map((t, i) => ({ id: ids[anchor + shift + i]!, text: t.text, evidence: t.evidence }));
  const meanLosses = logProbs.slice(2).map((lp) => -lp.reduce((a, b) => a + b, 0) / lp.length);
  const fit = valueDistribution(grid, meanLosses);
  return {
    model: model.id,
    steer: steer.config.name ?? 'steer',
    slot: steer.config.slots[slot]!.name,
    tokens,
    spans: ev.spans.map(([a, b]) => [a - shift, b - shift]),
    total: ev.total,
    grid: { values: grid, meanLosses, distribution: fit.distribution, best: fit.best, edge: gridEdge(grid, fit.best) },
  };
}

/**
 * log p(ids[t] | ids[<t]) for t = anchor+1 … T−1 with the slot at each of `values` (other slots at their
 * defaults: 0, the base slot 1), one row per value, batched into as few forward calls as the buffer allows.
 */
async function scoreRows(
  model: TextModel,
  steer: Steer,
  slot: number,
  ids: number[],
  values: number[],
  anchor: number,
  maxFloats: number,
): Promise<number[][]> {
  const set = SteerSet.of([steer]);
  const { p1, p2t } = set.directions!;
  const K = set.K;
  const V = model.cfg.vocabSize;
  const T = ids.length;
  const perCall = Math.max(1, Math.floor(maxFloats / (T * V)));
  const out: number[][] = [];
  for (let start = 0; start < values.length; start += perCall) {
    const chunk = values.slice(start, start + perCall);
    const scale = tensor([chunk.length, K]);
    chunk.forEach((v, b) => {
      const values = set.values();
      values[0]![slot] = v;
      scale.data.set(set.scaleOf(values)!, b * K);
    });
    const res = await model.decoder.forward(
      chunk.map(() => ids),
      { steer: { p1, p2t, scale } },
    );
    const logits = res.logits.data as Float32Array;
    const Vl = res.logits.shape[2]!;
    for (let b = 0; b < chunk.length; b++) {
      const lp: number[] = [];
      for (let t = anchor + 1; t < T; t++) {
        const row = logits.subarray((b * T + t - 1) * Vl, (b * T + t) * Vl);
        let max = -Infinity;
        for (let i = 0; i < Vl; i++) if (row[i]! > max) max = row[i]!;
        let sum = 0;
        for (let i = 0; i < Vl; i++) sum += Math.exp(row[i]! - max);
        lp.push(row[ids[t]!]! - max - Math.log(sum));
      }
      out.push(lp);
    }
  }
  return out;
}

/** 'low' / 'high' when `best` is the smallest / largest of a grid of ≥ 2 distinct values, else null. */
export function gridEdge(grid: readonly number[], best: number): 'low' | 'high' | null {
  const lo = Math.min(...grid);
  const hi = Math.max(...grid);
  if (lo === hi) return null;
  return best === lo ? 'low' : best === hi ? 'high' : null;
}
