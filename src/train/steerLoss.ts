/**
 * The held-out diagnostic of a steer: the mean next-token cross-entropy of the steered model on labelled
 * texts, each text's value on one slot taken from its label (other slots at --value or their defaults), next
 * to the same loss with the labels flipped and with the steer off:
 *   style signal = ce_flipped − ce   (how much the slot's direction explains the labels)
 *   domain gain  = ce_off − ce       (how much the steer as a whole moves the model toward the texts)
 * A steer whose domain gain dwarfs its style signal learned the dataset's domain, not the style (issue #16:
 * with the dummy slot on stories260K + SST-2, 1.14 nats/token of domain against 0.004–0.027 of style).
 *
 * Texts run in consecutive batches of `batchSize` (file order), right-padded to the batch's longest with the
 * pad id, through the masked forward (src/train/maskedForward.ts). Both of the reference's conventions come out
 * of the same pass, each a token-level mean pooled over all batches:
 *   exclude: over real targets, Σ_b (n_b − 1) positions;
 *   include: over all B·(T−1) shifted positions of every batch, pad targets (= pad id) included, as
 *            transformers' loss with labels = input_ids and pad = EOS (the reference's training loss).
 */
import { packScale, packSteers } from '../steer/pack.js';
import { BASE_SLOT, mainSlot, type Steer } from '../steer/steer.js';
import { SteerSet } from '../steer/steerSet.js';
import { LmSteerError } from '../util/errors.js';
import { expectShape, tensor, type Tensor } from '../util/tensor.js';
import type { HiddenEntry } from './hiddenCache.js';
import { LossSession } from './lossGraph.js';
import { buildLossBatch } from './trainLoop.js';
import { encodeForTraining } from './extract.js';
import { MaskedForward } from './maskedForward.js';
import type { LoadedModel } from '../runtime/loadModel.js';

export interface LabelledIds {
  /** Token ids (special tokens included, truncated as training does); at least one. */
  ids: number[];
  /** The steer value of the chosen slot for this text. */
  label: number;
}

/** One convention's numbers (nats per target token). */
export interface ConventionLoss {
  ce: number;
  ceFlipped: number;
  ceOff: number;
  nTargets: number;
}

export interface SteerLossResult {
  /** Real targets only. */
  exclude: ConventionLoss;
  /** All B·(T−1) positions, pads included. */
  include: ConventionLoss;
  texts: number;
  /** The slot the labels went to, and the values of every slot (label slot shown as NaN). */
  slot: string;
  values: Record<string, number>;
  batchSize: number;
}

export interface SteerLossOptions {
  /** The slot that gets each text's label: its name or `steer.slot`; default: the steer's only settable slot. */
  slot?: string;
  /** Values of the other slots (value names as --value takes them); the rest keep their defaults. */
  values?: Record<string, number>;
  /** Texts per padded batch; default 32 (the reference's training batch). */
  batchSize?: number;
  /** The pad token (the reference pads with EOS). */
  padId: number;
  intraOpNumThreads?: number;
  /** The LM head's bias [V], where the model has one (GPT-J). */
  headBias?: Tensor;
  /** The model's final logit soft-capping (Gemma 2): the loss caps its logits as the model does. */
  logitSoftcap?: number;
}

/** Hidden states [B, T, d] of right-padded rows whose first keyLengths[b] tokens are real. */
export type MaskedHidden = (rows: number[][], keyLengths: number[]) => Promise<Tensor>;

/** Index of the labelled slot: a value name as SteerSet reads them (default: the main slot), never `base`. */
export function labelSlot(steer: Steer, slot?: string): number {
  const set = SteerSet.of([steer]);
  const others = steer.config.slots.map((x) => x.name).filter((n) => n !== BASE_SLOT);
  if (slot === undefined) {
    const main = mainSlot(steer);
    if (main !== undefined) return main;
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `the steer has ${others.length} slots besides base; say which one the labels set`,
      `--slot ${others.join(' or --slot ') || 'NAME'}`,
    );
  }
  let s: number;
  try {
    s = set.slotOf(slot)[1];
  } catch (e) {
    if (!(e instanceof LmSteerError)) throw e;
    throw new LmSteerError(
      'NOT_FOUND',
      `the steer has no slot "${slot}"`,
      `its slots: ${others.join(', ') || '(none)'}`,
    );
  }
  if (steer.config.slots[s]!.name === BASE_SLOT) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `labels cannot set the base slot (it holds what all texts share)`,
      `--slot ${others.join(' or --slot ') || 'NAME'}`,
    );
  }
  return s;
}

export async function steerLoss(
  steer: Steer,
  E: Tensor,
  examples: readonly LabelledIds[],
  hidden: MaskedHidden,
  opts: SteerLossOptions,
): Promise<SteerLossResult> {
  const [, d] = E.shape as [number, number];
  expectShape('steer p1', steer.p1, [-1, d, -1]);
  if (examples.length === 0) throw new LmSteerError('BAD_DATA', 'no labelled texts to compute the loss on');
  const s = labelSlot(steer, opts.slot);
  const slotName = steer.config.slots[s]!.name;
  const set = SteerSet.of([steer]);
  const base = set.values(opts.values ?? {})[0]!;
  for (const key of Object.keys(opts.values ?? {})) {
    if (set.slotOf(key)[1] === s)
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `"${slotName}" gets each text's label; it cannot also have a fixed --value (${key})`,
        'drop that --value, or choose another --slot',
      );
  }
  const batchSize = opts.batchSize ?? 32;
  if (!(Number.isInteger(batchSize) && batchSize > 0))
    throw new LmSteerError('BAD_ARGUMENT', `batch size ${batchSize} is not a positive integer`);
  examples.forEach((e, i) => {
    if (e.ids.length === 0)
      throw new LmSteerError('BAD_DATA', `text ${i + 1} has no tokens`, 'drop empty texts from the data');
    if (!Number.isFinite(e.label)) throw new LmSteerError('BAD_DATA', `text ${i + 1} has label ${e.label}`);
  });

  const packed = packSteers([steer]);
  const K = packed.columns.length;
  const zeroP = { p1: tensor([d, K]), p2t: tensor([K, d]) };
  const valuesOf = (label: number) => [base.map((v, i) => (i === s ? label : v))];
  const session = await LossSession.create(E, {
    intraOpNumThreads: opts.intraOpNumThreads,
    headBias: opts.headBias,
    softcap: opts.logitSoftcap,
  });
  const sums = { ex: [0, 0, 0], inc: [0, 0, 0], nEx: 0, nInc: 0 };
  try {
    for (let start = 0; start < examples.length; start += batchSize) {
      const batch = examples.slice(start, start + batchSize);
      const T = Math.max(...batch.map((e) => e.ids.length));
      const rows = batch.map((e) => [...e.ids, ...new Array<number>(T - e.ids.length).fill(opts.padId)]);
      const h = await hidden(
        rows,
        batch.map((e) => e.ids.length),
      );
      expectShape('masked hidden states', h, [batch.length, T, d]);
      const entries: HiddenEntry[] = batch.map((e, b) => ({
        ids: e.ids,
        hidden: tensor([T, d], h.data.subarray(b * T * d, (b + 1) * T * d)),
      }));
      // Which rows of the include-convention batch (row b: t = 0..T−2) predict a real token.
      const real: boolean[] = batch.flatMap((e) => Array.from({ length: T - 1 }, (_, t) => t + 1 < e.ids.length));
      const settings = [
        { values: batch.map((e) => valuesOf(e.label)), p: packed },
        { values: batch.map((e) => valuesOf(-e.label)), p: packed },
        { values: batch.map(() => [base.map(() => 0)]), p: zeroP },
      ];
      for (const [k, setting] of settings.entries()) {
        const lb = buildLossBatch(entries, packScale(packed, setting.values), {
          includePadding: true,
          padId: opts.padId,
        });
        const ce = await session.rowLosses(lb, setting.p.p1, setting.p.p2t);
        ce.forEach((x, m) => {
          sums.inc[k]! += x;
          if (real[m]) sums.ex[k]! += x;
        });
      }
      sums.nInc += real.length;
      sums.nEx += real.filter(Boolean).length;
    }
  } finally {
    await session.close();
  }
  const conv = (v: number[], n: number): ConventionLoss => ({
    ce: v[0]! / n,
    ceFlipped: v[1]! / n,
    ceOff: v[2]! / n,
    nTargets: n,
  });
  const values: Record<string, number> = {};
  steer.config.slots.forEach((slot, i) => (values[slot.name] = i === s ? NaN : base[i]!));
  return {
    exclude: conv(sums.ex, sums.nEx),
    include: conv(sums.inc, sums.nInc),
    texts: examples.length,
    slot: slotName,
    values,
    batchSize,
  };
}

/** Style signal and domain gain of one convention (nats per target token). */
export function signals(c: ConventionLoss): { style: number; domain: number } {
  return { style: c.ceFlipped - c.ce, domain: c.ceOff - c.ce };
}

/**
 * A warning when an always-on slot (the dummy slot, or any slot fixed at a non-zero value) carries the
 * steer's effect on the texts and the labelled slot barely separates the labels: the steer mostly learned
 * the domain. Undefined when the style signal is at least a tenth of the domain gain.
 */
export function domainWarning(r: SteerLossResult, c: ConventionLoss): string | undefined {
  const { style, domain } = signals(c);
  const onSlots = Object.entries(r.values).filter(([name, v]) => name !== r.slot && v !== 0);
  if (onSlots.length === 0 || !(domain > 0.05) || style >= 0.1 * domain) return undefined;
  const names = onSlots.map(([n]) => (n === BASE_SLOT ? 'the base slot' : `"${n}"`)).join(', ');
  return (
    `warning: the steer mostly learned the domain, not the style: with ${names} always on it lowers the loss by ` +
    `${domain.toFixed(3)} nats/token (steer off vs on), while flipping the labels of "${r.slot}" costs only ` +
    `${style.toFixed(3)} nats/token. Its samples will read like the training texts more than like their labels. ` +
    `Retrain with --no-dummy (a ± slot cannot absorb a shift shared by both labels), or check that ` +
    `"${r.slot}" moves the attribute with lmsteer eval --sweep.`
  );
}

// ---------------------------------------------------------------------------------------------------------
// Texts → the diagnostic, on a loaded model

export interface HeldOutOptions extends Omit<SteerLossOptions, 'padId'> {
  /** Tokens kept per text, as in training (truncation from the right); default 256. */
  maxLength?: number;
  threads?: number;
  /** A masked forward already open on this model (training's), reused instead of opening another. */
  masked?: MaskedForward;
}

/**
 * steerLoss on labelled texts, tokenized as training tokenizes them (special tokens, truncated to maxLength),
 * padded with EOS as the reference pads. Texts that encode to no tokens are left out (counted in `skipped`).
 */
export async function heldOutLoss(
  model: Pick<LoadedModel, 'cfg' | 'weights' | 'decoder' | 'tokenizer' | 'outputEmbeddings' | 'outputBias'>,
  steer: Steer,
  examples: readonly { text: string; label: number }[],
  opts: HeldOutOptions = {},
): Promise<SteerLossResult & { skipped: number }> {
  const padId = model.tokenizer.eosIds[0];
  if (padId === undefined)
    throw new LmSteerError(
      'UNSUPPORTED',
      'the tokenizer has no end-of-text token to pad with',
      'the reference pads with EOS; this model has none',
    );
  const maxLength = Math.min(opts.maxLength ?? 256, model.cfg.maxPositions);
  const ids = examples.map((e) => ({ ids: encodeForTraining(model.tokenizer, e.text, maxLength), label: e.label }));
  const kept = ids.filter((e) => e.ids.length > 0);
  const masked = opts.masked ?? (await MaskedForward.open(model));
  try {
    const r = await steerLoss(steer, model.outputEmbeddings(), kept, (rows, n) => masked.hidden(rows, n), {
      ...opts,
      logitSoftcap: model.cfg.finalLogitSoftcap,
      padId,
      headBias: model.outputBias?.(),
      intraOpNumThreads: opts.intraOpNumThreads ?? opts.threads,
    });
    return { ...r, skipped: ids.length - kept.length };
  } finally {
    if (!opts.masked) await masked.close();
  }
}

/** The diagnostic as lines for a terminal: a heading, then one line per convention asked for. */
export function describeSteerLoss(r: SteerLossResult, conventions: readonly ('include' | 'exclude')[]): string[] {
  const lines: string[] = [];
  const row = (label: string, c: ConventionLoss) => {
    const { style, domain } = signals(c);
    lines.push(
      `  ${label} (${c.nTargets} targets): ce ${c.ce.toFixed(4)} | labels flipped ${c.ceFlipped.toFixed(4)} (style signal ${sign(style)}) | steer off ${c.ceOff.toFixed(4)} (domain gain ${sign(domain)})`,
    );
  };
  const fixed = Object.entries(r.values)
    .filter(([n]) => n !== r.slot)
    .map(([n, v]) => `${n}=${v}`);
  lines.push(
    `held-out loss on ${r.texts} texts, "${r.slot}" = each text's label${fixed.length ? `, ${fixed.join(', ')}` : ''}, batches of ${r.batchSize} (nats/token):`,
  );
  for (const c of conventions) row(c === 'include' ? 'pads included' : 'real tokens', r[c]);
  return lines;
}

function sign(x: number): string {
  return `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;
}
