/**
 * The one batch engine: rows join and leave a running batch between decode steps, over any Decoder's KV slots.
 * generate() (and so eval) submits its rows and drains; the server's scheduler is a queue and a steer swap on
 * top of it.
 *
 * Active rows are kept compacted in slots 0..n-1, so a step runs on zero-copy views of the first n slots; a
 * leaving row is replaced by the last active row (one row's cache copied). Each row carries its own
 * `steer_scale` row, so rows with different steer values decode together — the steer sits after the KV cache
 * (at the head), so it never invalidates it.
 *
 * Joining rows that share a prompt (n samples of one prompt: the paper's evaluation asks for 25) are prefilled
 * once: each distinct prompt but its last token runs once and its keys/values go to every slot that shares it;
 * the last tokens then go through one step of the joining rows, which applies each row's own steer values.
 *
 * Reproducibility: a row's logits depend on its own tokens and steer values only, and it samples from its
 * own random stream, so its text is the same whatever else is in the batch.
 */
import { LmSteerError } from '../util/errors.js';
import type { Decoder, KvSlots, SteerDirections } from './decoder.js';
import { chooseNext, type Row } from './row.js';

export interface EngineOptions {
  /** Rows decoded together at most. */
  maxRows: number;
  /** Tokens per row at most (prompt + new); default and upper bound: the model's positions. */
  maxLength?: number;
  /** The packed steer directions shared by all rows (src/steer/pack.ts); rows bring their own scales. */
  steer?: SteerDirections;
}

/** New tokens a joining row gets cache room for up front (more grows the cache as it goes). */
const RESERVE_AHEAD = 256;

interface Active {
  row: Row;
  /** Tokens in this row's cache. */
  length: number;
}

export class BatchEngine {
  private readonly slots: KvSlots;
  private readonly active: Active[] = []; // active[i] is in slot i
  readonly maxLength: number;
  private disposed = false;

  constructor(
    readonly decoder: Decoder,
    readonly opts: EngineOptions,
  ) {
    this.maxLength = Math.min(opts.maxLength ?? decoder.maxPositions, decoder.maxPositions);
    this.slots = decoder.openSlots({ rows: opts.maxRows, steer: opts.steer });
  }

  /** Steer columns: the length of a row's scale. */
  get K(): number {
    return this.slots.K;
  }

  get size(): number {
    return this.active.length;
  }

  get free(): number {
    return this.opts.maxRows - this.active.length;
  }

  /** The rows in the batch now. */
  rows(): Row[] {
    return this.active.map((a) => a.row);
  }

  /**
   * Prefill `rows` into free slots and choose each one's first token. A row whose token cannot be chosen
   * fails (events.fail) and leaves; an error of the decoder itself (the session failed) throws, and the rows
   * already in the batch are unaffected.
   */
  async join(rows: Row[]): Promise<void> {
    this.checkLive();
    if (rows.length === 0) return;
    if (rows.length > this.free)
      throw new Error(`internal: ${rows.length} rows join a batch with ${this.free} free slots`);
    for (const r of rows) {
      if (r.scale && r.scale.length !== this.K) {
        throw new Error(`internal: a row's steer scale has ${r.scale.length} values for K = ${this.K}`);
      }
    }
    // Room for the joining rows' run now (up to RESERVE_AHEAD new tokens), so the cache seldom grows — reallocates
    // and copies every slot's keys/values — in the middle of decoding; bounded, as a request's max_tokens may be
    // far more than it will use.
    const ahead = (r: Row) => r.prompt.length + Math.min(r.stop.maxNewTokens, RESERVE_AHEAD);
    this.slots.reserve(Math.min(this.maxLength, Math.max(...rows.map(ahead))));
    const first = this.active.length;
    const slotOf = rows.map((_, i) => first + i);
    rows.forEach((r, i) => this.slots.setScale(slotOf[i]!, r.scale));
    const groups = new Map<string, number[]>(); // prompt → the joining rows that share it
    rows.forEach((r, i) => {
      const key = r.prompt.join(',');
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    let logits: Float32Array[];
    if (groups.size === rows.length) {
      logits = await this.slots.prefill(
        rows.map((r) => r.prompt),
        slotOf.map((s) => [s]),
        true,
      );
    } else {
      const shared = [...groups.values()].filter((g) => rows[g[0]!]!.prompt.length > 1);
      if (shared.length > 0) {
        await this.slots.prefill(
          shared.map((g) => rows[g[0]!]!.prompt.slice(0, -1)),
          shared.map((g) => g.map((i) => slotOf[i]!)),
          false,
        );
      }
      const flat = await this.slots.extend(
        first,
        rows.map((r) => r.prompt[r.prompt.length - 1]!),
        rows.map((r) => r.prompt.length - 1),
      );
      const V = this.decoder.vocabSize;
      logits = rows.map((_, i) => flat.subarray(i * V, (i + 1) * V));
    }
    // Only now, with the decoder's work done, do the rows become part of the batch.
    for (const r of rows) this.active.push({ row: r, length: r.prompt.length });
    this.choose(rows.map((r, i) => [r, logits[i]!]));
  }

  /** One token for every row in the batch; rows that finish (or fail) leave it. */
  async step(): Promise<void> {
    this.checkLive();
    const n = this.active.length;
    if (n === 0) return;
    for (const a of this.active) {
      if (a.length + 1 > this.maxLength) {
        throw new LmSteerError(
          'LIMIT',
          `${a.row.label} reached ${this.maxLength} tokens, the most a row may hold here`,
          'ask for fewer new tokens or a shorter prompt',
        );
      }
    }
    const lengths = this.active.map((a) => a.length);
    const logits = await this.slots.extend(
      0,
      this.active.map((a) => a.row.tokens[a.row.tokens.length - 1]!),
      lengths,
    );
    const V = this.decoder.vocabSize;
    const chosen = this.active.map((a, i): [Row, Float32Array] => {
      a.length += 1;
      return [a.row, logits.subarray(i * V, (i + 1) * V)];
    });
    this.choose(chosen);
  }

  /** Take a row out of the batch (finished rows leave by themselves; this is for rows cancelled from outside). */
  leave(row: Row): void {
    const i = this.active.findIndex((a) => a.row === row);
    if (i < 0) return;
    const last = this.active.length - 1;
    if (i !== last) {
      this.slots.move(last, i, this.active[last]!.length);
      this.active[i] = this.active[last]!;
    }
    this.active.pop();
    if (this.active.length === 0) this.slots.shrink();
  }

  dispose(): void {
    this.disposed = true;
    this.active.length = 0;
    this.slots.dispose();
  }

  private checkLive(): void {
    if (this.disposed) throw new Error('internal: the batch engine was disposed');
  }

  /** Sample each row's next token; then the rows that finished or failed leave. */
  private choose(pairs: [Row, Float32Array][]): void {
    const leaving: Row[] = [];
    for (const [row, logits] of pairs) {
      try {
        chooseNext(row, logits);
      } catch (e) {
        if (!(e instanceof LmSteerError)) throw e;
        leaving.push(row);
        row.events.fail?.(e);
        continue;
      }
      if (row.finish) leaving.push(row);
    }
    for (const r of leaving) this.leave(r);
  }
}
