/**
 * The steers a server has loaded, and how a request's `"steer": {...}` becomes its row of `steer_scale`.
 *
 * Values: every settable slot starts at the server's default (`--value name=v`, else the steer file's own
 * default, 0 for ordinary slots); a request's `steer` field overrides only the slots it names, so
 * `{"sentiment": 0}` turns one steer off and leaves a server-wide `detox` default in force. Names are the
 * ones `resolveValues` accepts (`steer`, `slot`, `steer.slot`), so the CLI and the API agree.
 *
 * A SteerSet is immutable: loading or unloading a steer makes a new one (new packing, so a new
 * ContinuousBatch; see scheduler.ts for when the swap happens).
 */
import { packScale, packSteers, type PackedSteers } from '../steer/pack.js';
import { DUMMY_SLOT, resolveValues, steerName, userSlots, type Steer } from '../steer/steer.js';
import { loadSteer } from '../steer/steerFile.js';
import { LmSteerError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';

export interface SteerBase {
  id: string;
  fingerprint(): string;
  cfg: { hiddenSize: number };
}

export interface LoadedSteer {
  steer: Steer;
  /** The folder it came from (for GET /v1/steers). */
  path: string;
  /** This server's value of every slot of the steer (the file's defaults, overridden by --value). */
  defaults: number[];
}

/** What GET /v1/steers shows of one steer. */
export interface SteerInfo {
  name: string;
  path: string;
  eps: number;
  rank: number;
  base_model: string;
  slots: { name: string; value_name: string; default: number; file_default: number }[];
  training?: unknown;
  metrics?: unknown;
}

/** The request-facing name of a slot: `steer` for a one-slot steer, else `steer.slot` (both resolve). */
function valueName(steer: Steer, k: number, slotName: string): string {
  return userSlots(steer).length === 1 ? steerName(steer, k) : `${steerName(steer, k)}.${slotName}`;
}

export class SteerSet {
  readonly packed?: PackedSteers;
  private readonly steers: Steer[];

  constructor(readonly entries: readonly LoadedSteer[]) {
    this.steers = entries.map((e) => e.steer);
    this.packed = this.steers.length ? packSteers(this.steers) : undefined;
  }

  static empty(): SteerSet {
    return new SteerSet([]);
  }

  /** Load steer folders for `base` (fingerprint-checked) with server-wide default values. */
  static load(
    base: SteerBase,
    dirs: string[],
    values: Record<string, number> = {},
    opts: { force?: boolean } = {},
  ): SteerSet {
    const loaded = dirs.map((dir) => ({ steer: loadOne(base, dir, opts.force), path: dir }));
    const names = loaded.map((l, k) => steerName(l.steer, k));
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined)
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `two steers are both named "${dup}"`,
        'give each steer a distinct name (its folder name or steer.json "name")',
      );
    if (loaded.length === 0 && Object.keys(values).length > 0) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `--value was given but no --steer`,
        'add --steer DIR (a steer folder made by lmsteer train)',
      );
    }
    const defaults = loaded.length
      ? resolveValues(
          loaded.map((l) => l.steer),
          values,
        )
      : [];
    return new SteerSet(loaded.map((l, k) => ({ ...l, defaults: defaults[k]! })));
  }

  get size(): number {
    return this.entries.length;
  }

  /** The packed directions for ContinuousBatch (undefined: no steer, K = 1 zeros). */
  get directions(): { p1: Tensor; p2t: Tensor } | undefined {
    return this.packed && { p1: this.packed.p1, p2t: this.packed.p2t };
  }

  names(): string[] {
    return this.steers.map((s, k) => steerName(s, k));
  }

  /** Every name a request may set, for error messages. */
  knownValueNames(): string[] {
    return this.steers.flatMap((s, k) => userSlots(s).map((slot) => valueName(s, k, slot.name)));
  }

  has(name: string): boolean {
    return this.names().includes(name);
  }

  get(name: string): LoadedSteer | undefined {
    return this.entries[this.names().indexOf(name)];
  }

  /** A new set with one more steer (loaded from `dir`, fingerprint-checked, at its file defaults). */
  withSteer(base: SteerBase, dir: string, opts: { force?: boolean } = {}): { set: SteerSet; name: string } {
    const steer = loadOne(base, dir, opts.force);
    const name = steerName(steer, this.entries.length);
    if (this.has(name)) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `a steer named "${name}" is already loaded`,
        `unload it first (DELETE /v1/steers/${name}) or give the new one another name`,
      );
    }
    const defaults = steer.config.slots.map((s) => s.defaultValue);
    return { set: new SteerSet([...this.entries, { steer, path: dir, defaults }]), name };
  }

  /** A new set without the named steer. */
  without(name: string): SteerSet {
    const k = this.names().indexOf(name);
    if (k < 0)
      throw new LmSteerError(
        'NOT_FOUND',
        `no steer named "${name}" is loaded`,
        `loaded steers: ${this.names().join(', ') || '(none)'}`,
      );
    return new SteerSet(this.entries.filter((_, i) => i !== k));
  }

  /**
   * A request's steer values → its `steer_scale` row (undefined when no steer is loaded) and the values in
   * effect for every settable slot (echoed in the response). Unknown names and non-finite values throw
   * (BAD_ARGUMENT / NOT_FOUND, both shown as 400 by the server), naming the known values.
   */
  resolve(request: Record<string, number> = {}): { scale?: Float32Array; effective: Record<string, number> } {
    const names = Object.keys(request);
    if (!this.packed) {
      if (names.length > 0) {
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `unknown steer value "${names[0]}": this server has no steers loaded`,
          'load one with --steer DIR or POST /v1/steers {"path": DIR}, or leave "steer" out',
        );
      }
      return { effective: {} };
    }
    // Validates everything (unknown, ambiguous, NaN, one slot set twice) with resolveValues' messages. An unknown
    // name is the request's fault, not a missing resource: BAD_ARGUMENT (400), not NOT_FOUND (404).
    try {
      resolveValues(this.steers, request);
    } catch (e) {
      if (e instanceof LmSteerError && e.code === 'NOT_FOUND')
        throw new LmSteerError('BAD_ARGUMENT', e.message, e.hint, { cause: e });
      throw e;
    }
    const values = this.entries.map((e) => [...e.defaults]);
    for (const name of names) {
      const [k, s] = this.slotOf(name);
      values[k]![s] = request[name]!;
    }
    const scale = packScale(this.packed, [values], 1).data as Float32Array;
    const effective: Record<string, number> = {};
    this.steers.forEach((steer, k) =>
      steer.config.slots.forEach((slot, s) => {
        if (slot.name !== DUMMY_SLOT) effective[valueName(steer, k, slot.name)] = values[k]![s]!;
      }),
    );
    return { scale, effective };
  }

  /**
   * Which (steer, slot) a value name sets. resolveValues is the one place that knows the naming rules, so we
   * ask it: the entry that differs between the name set to 1 and set to 2 is the slot it names.
   */
  private slotOf(name: string): [number, number] {
    const a = resolveValues(this.steers, { [name]: 1 });
    const b = resolveValues(this.steers, { [name]: 2 });
    for (let k = 0; k < a.length; k++) for (let s = 0; s < a[k]!.length; s++) if (a[k]![s] !== b[k]![s]) return [k, s];
    throw new Error(`internal: steer value name ${name} resolved to no slot`);
  }

  info(): SteerInfo[] {
    return this.entries.map(({ steer, path, defaults }, k) => ({
      name: steerName(steer, k),
      path,
      eps: steer.config.eps,
      rank: steer.config.rank,
      base_model: steer.config.baseModel.id,
      slots: steer.config.slots.flatMap((slot, s) =>
        slot.name === DUMMY_SLOT
          ? []
          : [
              {
                name: slot.name,
                value_name: valueName(steer, k, slot.name),
                default: defaults[s]!,
                file_default: slot.defaultValue,
              },
            ],
      ),
      ...(steer.config.training ? { training: steer.config.training } : {}),
      ...(steer.config.metrics ? { metrics: steer.config.metrics } : {}),
    }));
  }
}

function loadOne(base: SteerBase, dir: string, force?: boolean): Steer {
  return loadSteer(dir, {
    expectFingerprint: base.fingerprint(),
    expectModelId: base.id,
    expectHiddenSize: base.cfg.hiddenSize,
    force,
  });
}
