/**
 * What a steer is: its config (which base model, eps, rank, named slots) and its two projector tensors
 * P1, P2 : [S, d, r]. Also the embedding fingerprint that ties a steer to its base model, and the mapping of
 * user-facing value names (`slot`, `steer`, `steer.slot`) onto per-steer, per-slot values.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { f32ToF16 } from '../formats/halfFloat.js';
import { LmSteerError, type ErrorCode } from '../util/errors.js';
import { firstNonFinite, type Tensor } from '../util/tensor.js';

/**
 * The reference code trains with one slot held at 1 (`--dummy_steer`): that slot soaks up what all training
 * texts share (their domain), so the labelled slot learns only the label's direction. lmsteer names it `base`:
 * an ordinary slot whose default is 1, settable like any other (0 on every slot is the base model exactly).
 */
export const BASE_SLOT = 'base';
/** What lmsteer ≤ 0.1 called the base slot in steer.json; read as BASE_SLOT. */
export const LEGACY_DUMMY_SLOT = '__dummy__';
export const DEFAULT_EPS = 1e-3;
export const STEER_FORMAT_VERSION = 1;

export interface SteerSlot {
  name: string;
  /** Used when the user gives no value for this slot (0 for ordinary slots, 1 for the dummy slot). */
  defaultValue: number;
}

export interface BaseModelInfo {
  /** A hub id or a local path, for messages. */
  id: string;
  /** `embeddingFingerprint(E)` of the model's output embeddings; what compatibility is checked on. */
  embeddingFingerprint: string;
  vocabSize: number;
  hiddenSize: number;
}

/** How the steer was trained (filled by src/train/); open so new fields need no format bump. */
export interface SteerTrainingInfo {
  dataset?: string;
  steps?: number;
  lr?: number;
  batchSize?: number;
  regularization?: number;
  seed?: number;
  [key: string]: unknown;
}

/** Where the steer came from: trained here, imported from a reference .pt, transferred from another model. */
export interface SteerSourceInfo {
  kind?: 'trained' | 'reference-pt' | 'transfer' | string;
  path?: string;
  [key: string]: unknown;
}

export interface SteerConfig {
  formatVersion: 1;
  /** Used as the `steer` part of `steer.slot` value names; loadSteer falls back to the folder name. */
  name?: string;
  baseModel: BaseModelInfo;
  eps: number;
  rank: number;
  slots: SteerSlot[];
  training?: SteerTrainingInfo;
  metrics?: Record<string, unknown>;
  source?: SteerSourceInfo;
}

export interface Steer {
  config: SteerConfig;
  p1: Tensor; // [S, d, r]
  p2: Tensor; // [S, d, r]
}

/**
 * Bounds on a steer's numbers, far beyond any trained steer (eps ~1e-3, values ~±10, projector entries < 1):
 * with them h' = h + eps·v·(h·P1)·P2ᵀ stays far inside float32 for any real hidden state, so an absurd file or
 * flag cannot turn the logits (or an exported adapter) into Inf/NaN.
 */
export const STEER_LIMITS = { eps: 1e3, value: 1e6, projector: 1e6, rank: 4096, slots: 1024 };

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const bounded = (max: number) => finite.refine((v) => Math.abs(v) <= max, `must be within ±${max}`);
const posInt = z.number().int().positive();
/** A name shown in terminals and used in value names: no control characters (newlines, ANSI escapes). */
const printableName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

/** The schema of steer.json; `z.ZodType<SteerConfig>` keeps it in step with the interface above. */
export const steerConfigSchema: z.ZodType<SteerConfig> = z.object({
  formatVersion: z.literal(1),
  name: printableName.optional(),
  baseModel: z.object({
    id: z.string(),
    embeddingFingerprint: z.string().min(1),
    vocabSize: posInt,
    hiddenSize: posInt,
  }),
  eps: bounded(STEER_LIMITS.eps),
  rank: posInt.max(STEER_LIMITS.rank),
  slots: z
    .array(z.object({ name: printableName, defaultValue: bounded(STEER_LIMITS.value) }))
    .min(1)
    .max(STEER_LIMITS.slots)
    .refine((s) => new Set(s.map((x) => x.name)).size === s.length, 'slot names must be unique'),
  training: z.looseObject({}).optional(),
  metrics: z.record(z.string(), z.unknown()).optional(),
  source: z.looseObject({}).optional(),
});

/** Turn zod issues into one readable line: `slots.1.name: Too small…; eps: must be a finite number`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/**
 * Check that a steer is usable: its config is well formed, P1/P2 are [S, d, r] as the config says, and no
 * value is NaN/Inf (a diverged training run would otherwise silently produce garbage text).
 * `source` names the file for messages; config errors then read as BAD_FILE rather than BAD_ARGUMENT.
 */
export function validateSteer(steer: Steer, source?: string): void {
  const where = source ?? 'steer';
  const code: ErrorCode = source ? 'BAD_FILE' : 'BAD_ARGUMENT';
  const parsed = steerConfigSchema.safeParse(steer.config);
  if (!parsed.success) {
    throw new LmSteerError(
      code,
      `${where}: invalid steer config: ${describeIssues(parsed.error)}`,
      'fix the config (steer.json) or re-create the steer',
    );
  }
  const { slots, baseModel, rank } = steer.config;
  const want = [slots.length, baseModel.hiddenSize, rank];
  for (const [label, t] of [
    ['projector1', steer.p1],
    ['projector2', steer.p2],
  ] as const) {
    if (t.dtype !== 'float32') throw new LmSteerError(code, `${where}: ${label} is ${t.dtype}, expected float32`);
    const ok = t.shape.length === 3 && t.shape.every((s, i) => s === want[i]);
    if (!ok) {
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `${where}: ${label} has shape [${t.shape}], but the config says [slots=${want[0]}, hiddenSize=${want[1]}, rank=${want[2]}]`,
        'the tensors and steer.json disagree; the steer folder was edited or mixed with another steer',
      );
    }
    if (t.data.length !== want[0] * want[1] * want[2])
      throw new Error(`${label}: data length ${t.data.length} does not match shape [${t.shape}]`);
    const bad = firstNonFinite(t.data);
    if (bad >= 0) {
      throw new LmSteerError(
        code,
        `${where}: ${label} holds ${t.data[bad]} at flat index ${bad}`,
        'the steer diverged during training; retrain with a lower learning rate',
      );
    }
    const big = t.data.findIndex((x) => Math.abs(x) > STEER_LIMITS.projector);
    if (big >= 0) {
      throw new LmSteerError(
        code,
        `${where}: ${label} holds ${t.data[big]} at flat index ${big}, beyond ±${STEER_LIMITS.projector}`,
        'no trained steer has entries this large; the file is damaged or crafted',
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Embedding fingerprint

const FINGERPRINT_SAMPLES = 4096;

/**
 * A stable id of the output-embedding matrix E [vocab, d]: sha256 over its shape and a fixed strided sample
 * of its values, each rounded to fp16 first. Why fp16: the same model is shipped as fp32 and fp16 files, and
 * a steer trained on one must load on the other; rounding fp32 values to fp16 (round-to-nearest-even, as
 * torch/numpy convert) gives exactly the values an fp16 copy holds. bf16 copies round differently and will
 * not match (use --force). Sampling keeps it cheap on 50k×4k matrices while any retrained/other model
 * still differs in practically every sampled value.
 */
export function embeddingFingerprint(E: Tensor): string {
  if (E.shape.length !== 2)
    throw new LmSteerError('SHAPE_MISMATCH', `output embeddings have shape [${E.shape}], expected [vocab, hidden]`);
  const n = E.data.length;
  const count = Math.min(FINGERPRINT_SAMPLES, n);
  const sample = new Float32Array(count);
  for (let i = 0; i < count; i++) sample[i] = E.data[Math.floor((i * n) / count)] as number;
  const halves = f32ToF16(sample);
  const hash = createHash('sha256');
  hash.update(`lmsteer-embedding-v1:${E.shape[0]}x${E.shape[1]}:`);
  hash.update(new Uint8Array(halves.buffer));
  return `emb1-${hash.digest('hex').slice(0, 32)}`;
}

// ---------------------------------------------------------------------------------------------------------
// Slot names

/** The name a steer answers to in `steer.slot` value names. */
export function steerName(steer: Steer, index: number): string {
  return steer.config.name ?? `steer${index + 1}`;
}

/**
 * The steer's main slot, which its bare name sets (`--value sentiment=3`): its only slot besides `base`;
 * undefined when it has several.
 */
export function mainSlot(steer: Steer): number | undefined {
  const others = steer.config.slots.map((s, i) => [s.name, i] as const).filter(([name]) => name !== BASE_SLOT);
  return others.length === 1 ? others[0]![1] : undefined;
}

/** A config read from an older file: the legacy dummy slot's name becomes `base` (unless a slot has that name). */
export function withCurrentSlotNames(config: SteerConfig): SteerConfig {
  const names = config.slots.map((s) => s.name);
  if (!names.includes(LEGACY_DUMMY_SLOT) || names.includes(BASE_SLOT)) return config;
  return { ...config, slots: config.slots.map((s) => (s.name === LEGACY_DUMMY_SLOT ? { ...s, name: BASE_SLOT } : s)) };
}
