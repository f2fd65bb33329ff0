/**
 * The steers in use with one model, and how named steer values become the graph's `steer_scale` row — the one
 * path from `--value name=v` (CLI), a request's `"steer": {...}` (server) or an API call to the graph:
 *
 *   SteerSet.load(model, dirs, defaults)   folders read and checked against the model once; slots packed once
 *   set.resolve({ sentiment: 3 })          names checked, defaults applied → { scale (one steer_scale row), effective }
 *   set.directions                         the packed P1/P2ᵀ every row shares (src/steer/pack.ts)
 *
 * Value names: `steer.slot` always; `slot` when exactly one steer has that slot; `steer` alone for its main slot
 * (its only slot besides `base`, see steer.ts). Every slot is settable — `base` too, whose default is 1 — and
 * every slot at 0 (or no steer at all) is the base model bit for bit.
 *
 * A SteerSet is immutable: loading or unloading a steer makes a new one (a new packing; the server swaps it in
 * when its batch has drained, see src/server/scheduler.ts).
 */
import { LmSteerError } from '../util/errors.js';
import type { SteerDirections } from '../runtime/decoder.js';
import { packScale, packSteers, type PackedSteers } from './pack.js';
import { BASE_SLOT, mainSlot, steerName, type Steer } from './steer.js';
import { loadSteer } from './steerFile.js';

/** What a steer is checked against when loaded: the model it will run on. */
export interface SteerBase {
  id: string;
  fingerprint(): string;
  cfg: { hiddenSize: number };
}

/**
 * The largest |value| a steer slot takes unless the caller sets another bound. Trained steers are used within
 * ±10 (training labels are ±1; the paper sweeps ±5), but an untrained or imported steer with tiny projectors
 * can need 1e4 to show an effect; beyond that, values only produce garbage (or Inf) logits.
 */
export const DEFAULT_MAX_STEER_VALUE = 10_000;

export interface LoadedSteer {
  steer: Steer;
  /** The name it answers to (steer.json's name, else its folder's). */
  name: string;
  /** The folder it came from, when it came from one. */
  path?: string;
  /** This set's value of every slot (the file's defaults, overridden by the defaults given to load). */
  defaults: number[];
}

/** What a listing shows of one steer (GET /v1/steers, `lmsteer steer info`). */
export interface SteerInfo {
  name: string;
  path?: string;
  eps: number;
  rank: number;
  base_model: string;
  slots: { name: string; value_name: string; default: number; file_default: number; note?: string }[];
  training?: unknown;
  metrics?: unknown;
}

export const BASE_SLOT_NOTE =
  'the always-on slot of the reference recipe: trained at 1 to absorb what all training texts share (their domain); ' +
  'it stays at 1 unless set. Set it to 0 as well for the unsteered base model.';

export interface SteerSetOptions {
  /** Bound on |value| of every slot (default DEFAULT_MAX_STEER_VALUE). */
  maxValue?: number;
}

export class SteerSet {
  readonly packed?: PackedSteers;
  readonly maxValue: number;
  private readonly steers: Steer[];
  /** value name → the (steer, slot) pairs it may mean; more than one = ambiguous. */
  private readonly index = new Map<string, [number, number][]>();
  /** Fully qualified `steer.slot` names → their pair (these win over ambiguity). */
  private readonly exact = new Map<string, [number, number]>();

  constructor(
    readonly entries: readonly LoadedSteer[],
    opts: SteerSetOptions = {},
  ) {
    this.maxValue = opts.maxValue ?? DEFAULT_MAX_STEER_VALUE;
    const dup = entries.map((e) => e.name).find((n, i, all) => all.indexOf(n) !== i);
    if (dup !== undefined) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `two steers are both named "${dup}"`,
        'give each steer a distinct name (its folder name or steer.json "name")',
      );
    }
    this.steers = entries.map((e) => e.steer);
    this.packed = this.steers.length ? packSteers(this.steers) : undefined;
    const add = (name: string, pair: [number, number]) => {
      const list = this.index.get(name) ?? [];
      if (!list.some(([k, s]) => k === pair[0] && s === pair[1])) list.push(pair);
      this.index.set(name, list);
    };
    entries.forEach(({ steer, name }, k) => {
      steer.config.slots.forEach((slot, s) => {
        this.exact.set(`${name}.${slot.name}`, [k, s]);
        add(slot.name, [k, s]);
      });
      // The bare steer name means its main slot; a steer with several slots besides base is ambiguous by name.
      const main = mainSlot(steer);
      if (main !== undefined) add(name, [k, main]);
      else steer.config.slots.forEach((slot, s) => slot.name !== BASE_SLOT && add(name, [k, s]));
    });
  }

  static empty(opts: SteerSetOptions = {}): SteerSet {
    return new SteerSet([], opts);
  }

  /** Steers already in memory, at their file defaults; `names` overrides their names. */
  static of(steers: readonly Steer[], names?: readonly string[], opts: SteerSetOptions = {}): SteerSet {
    return new SteerSet(
      steers.map((steer, k) => ({
        steer,
        name: names?.[k] ?? steerName(steer, k),
        defaults: steer.config.slots.map((s) => s.defaultValue),
      })),
      opts,
    );
  }

  /**
   * Load steer folders for `base` (refused when trained for another model, unless `force`), with default
   * values (`--value`) that every resolve starts from.
   */
  static load(
    base: SteerBase,
    dirs: readonly string[],
    values: Record<string, number> = {},
    opts: SteerSetOptions & { force?: boolean } = {},
  ): SteerSet {
    if (dirs.length === 0 && Object.keys(values).length > 0) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `--value was given but no --steer`,
        'add --steer DIR (a steer folder made by lmsteer train)',
      );
    }
    const steers = dirs.map((dir) => loadSteerFor(base, dir, opts.force));
    const plain = new SteerSet(
      steers.map((steer, k) => ({
        steer,
        name: steerName(steer, k),
        path: dirs[k],
        defaults: steer.config.slots.map((s) => s.defaultValue),
      })),
      opts,
    );
    const defaults = plain.values(values);
    return new SteerSet(
      plain.entries.map((e, k) => ({ ...e, defaults: defaults[k]! })),
      opts,
    );
  }

  get size(): number {
    return this.entries.length;
  }

  /** The packed directions every row shares (undefined: no steer). */
  get directions(): SteerDirections | undefined {
    return this.packed && { p1: this.packed.p1, p2t: this.packed.p2t };
  }

  /** Steer columns K (0 without steers). */
  get K(): number {
    return this.packed?.columns.length ?? 0;
  }

  names(): string[] {
    return this.entries.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.names().includes(name);
  }

  get(name: string): LoadedSteer | undefined {
    return this.entries.find((e) => e.name === name);
  }

  /** The name a slot is shown under: the bare steer name for its main slot, else `steer.slot`. */
  valueName(k: number, s: number): string {
    const e = this.entries[k]!;
    return mainSlot(e.steer) === s ? e.name : `${e.name}.${e.steer.config.slots[s]!.name}`;
  }

  /** Every slot's full `steer.slot` name, for messages and listings. */
  knownValueNames(): string[] {
    return this.entries.flatMap((e) => e.steer.config.slots.map((slot) => `${e.name}.${slot.name}`));
  }

  /** Which (steer, slot) a value name sets; unknown and ambiguous names throw BAD_ARGUMENT naming the known ones. */
  slotOf(name: string): [number, number] {
    const exact = this.exact.get(name);
    if (exact) return exact;
    const hits = this.index.get(name) ?? [];
    if (hits.length === 1) return hits[0]!;
    if (hits.length === 0) {
      const known = this.knownValueNames();
      throw new LmSteerError(
        'BAD_ARGUMENT',
        this.size === 0 ? `unknown steer value "${name}": no steer is loaded` : `unknown steer value "${name}"`,
        this.size === 0 ? 'load a steer (--steer DIR) or leave the value out' : `known values: ${known.join(', ')}`,
      );
    }
    const options = hits.map(([k, s]) => `${this.entries[k]!.name}.${this.steers[k]!.config.slots[s]!.name}`);
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `steer value "${name}" is ambiguous: it could be ${options.join(', ')}`,
      'use the full steer.slot name',
    );
  }

  /**
   * Every slot's value (values[k][s]): this set's defaults, overridden by `request`. The one place values are
   * checked: names (unknown, ambiguous, one slot set twice) and numbers (finite, |v| ≤ maxValue).
   */
  values(request: Record<string, number> | ReadonlyMap<string, number> = {}): number[][] {
    const out = this.entries.map((e) => [...e.defaults]);
    const entries = request instanceof Map ? [...request.entries()] : Object.entries(request as Record<string, number>);
    const seen = new Map<string, string>();
    for (const [name, value] of entries) {
      const [k, s] = this.slotOf(name);
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `steer value "${name}" is ${String(value)}, not a finite number`,
          'give a number such as 5 or -2.5',
        );
      }
      if (Math.abs(value) > this.maxValue) {
        throw new LmSteerError(
          'LIMIT',
          `steer value "${name}" is ${value}, beyond ±${this.maxValue}`,
          `give a value within ±${this.maxValue} (the paper's sweeps stay within ±10)`,
        );
      }
      const key = `${k}.${s}`;
      const prev = seen.get(key);
      if (prev !== undefined) {
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `steer values "${prev}" and "${name}" both set ${this.entries[k]!.name}.${this.steers[k]!.config.slots[s]!.name}`,
          'give each slot one value',
        );
      }
      seen.set(key, name);
      out[k]![s] = value;
    }
    return out;
  }

  /** One `steer_scale` row (eps folded in) for slot values (undefined without steers). */
  scaleOf(values: number[][]): Float32Array | undefined {
    return this.packed && (packScale(this.packed, [values], 1).data as Float32Array);
  }

  /** A request's values → its `steer_scale` row and the value of every slot in effect (echoed to the user). */
  resolve(request: Record<string, number> = {}): { scale?: Float32Array; effective: Record<string, number> } {
    const values = this.values(request);
    const effective: Record<string, number> = {};
    values.forEach((row, k) => row.forEach((v, s) => (effective[this.valueName(k, s)] = v)));
    const scale = this.scaleOf(values);
    return scale ? { scale, effective } : { effective };
  }

  /** Every slot at 0: the base model. */
  offValues(): Record<string, number> {
    return Object.fromEntries(this.knownValueNames().map((n) => [n, 0]));
  }

  /** A new set with one more steer (loaded from `dir` for `base`, at its file defaults). */
  withSteer(base: SteerBase, dir: string, opts: { force?: boolean } = {}): { set: SteerSet; name: string } {
    const steer = loadSteerFor(base, dir, opts.force);
    const name = steerName(steer, this.entries.length);
    if (this.has(name)) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `a steer named "${name}" is already loaded`,
        `unload it first (DELETE /v1/steers/${name}) or give the new one another name`,
      );
    }
    const entry = { steer, name, path: dir, defaults: steer.config.slots.map((s) => s.defaultValue) };
    return { set: new SteerSet([...this.entries, entry], { maxValue: this.maxValue }), name };
  }

  /** A new set without the named steer. */
  without(name: string): SteerSet {
    if (!this.has(name)) {
      throw new LmSteerError(
        'NOT_FOUND',
        `no steer named "${name}" is loaded`,
        `loaded steers: ${this.names().join(', ') || '(none)'}`,
      );
    }
    return new SteerSet(
      this.entries.filter((e) => e.name !== name),
      { maxValue: this.maxValue },
    );
  }

  info(): SteerInfo[] {
    return this.entries.map(({ steer, name, path, defaults }, k) => ({
      name,
      ...(path !== undefined ? { path } : {}),
      eps: steer.config.eps,
      rank: steer.config.rank,
      base_model: steer.config.baseModel.id,
      slots: steer.config.slots.map((slot, s) => ({
        name: slot.name,
        value_name: this.valueName(k, s),
        default: defaults[s]!,
        file_default: slot.defaultValue,
        ...(slot.name === BASE_SLOT ? { note: BASE_SLOT_NOTE } : {}),
      })),
      ...(steer.config.training ? { training: steer.config.training } : {}),
      ...(steer.config.metrics ? { metrics: steer.config.metrics } : {}),
    }));
  }
}

/** Load one steer folder checked against the model it will run on (refused if trained for another, unless `force`). */
export function loadSteerFor(base: SteerBase, dir: string, force?: boolean): Steer {
  return loadSteer(dir, {
    expectFingerprint: base.fingerprint(),
    expectModelId: base.id,
    expectHiddenSize: base.cfg.hiddenSize,
    force,
  });
}
