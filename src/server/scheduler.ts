/**
 * The server's decoding loop: a queue of requests over the one batch engine (src/runtime/engine.ts), which
 * requests join and leave between decode steps.
 *
 * Each choice of a request is one row (src/runtime/row.ts). A row samples exactly as `generate()` does — its own
 * random stream rngStream(seed, 0, choice) (the stream a request with a `seed` gets when run alone), EOS masking
 * before min tokens, stop strings through TextStream — and its logits depend on its own tokens and steer values
 * only, so a request returns the same text whether it shares the batch with fifteen others or runs alone.
 *
 * One loop iteration: drop rows whose request ended (client gone, timeout, failure) → admit queued rows into
 * free slots (one prefill for all of them, shared prompts once; FIFO, so nobody starves) → one decode step for
 * every active row. Rows are only added or removed between steps: leaving moves KV rows in place, which must
 * never overlap a running session.
 *
 * Loading or unloading a steer changes the packed directions, so it needs a new engine. We drain:
 * admission pauses, the active rows finish under the steers they started with (their output stays what it
 * would have been), then the new batch takes over and admission resumes. Requests in the queue resolve
 * their steer values against the new set when they are admitted (a deleted steer then fails them with 400).
 * Draining rather than migrating rows keeps every request's output independent of admin calls; the cost is
 * a pause bounded by the longest active request (max tokens, and the timeout).
 */
import type { Decoder } from '../runtime/decoder.js';
import { BatchEngine } from '../runtime/engine.js';
import { rngStream } from '../runtime/rng.js';
import type { Row } from '../runtime/row.js';
import { tokenLogprob, type SamplingParams, type TokenLogprob } from '../runtime/sampling.js';
import type { FinishReason, StopConfig } from '../runtime/stopping.js';
import { TextStream } from '../runtime/textStream.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { LmSteerError } from '../util/errors.js';
import type { SteerSet } from '../steer/steerSet.js';

/** One generation request as the scheduler sees it (already validated by the HTTP layer). */
export interface JobSpec {
  /** Token ids of each prompt; every prompt gets `n` choices (choice index = prompt·n + sample). */
  prompts: number[][];
  n: number;
  sampling: SamplingParams;
  maxTokens: number;
  minTokens: number;
  stop: string[];
  seed: number;
  /** The request's `steer` field (resolved against the steer set in force when its rows join). */
  steer: Record<string, number>;
  /** Report each new token's log-probability with this many alternatives (row.ts `logprobs`); undefined: none. */
  logprobs?: number;
  /** Ends the job (client gone); its rows leave the batch before the next step. */
  signal?: AbortSignal;
  /** Milliseconds from submission until the job fails with a timeout (queue wait included). */
  timeoutMs?: number;
}

export interface JobListener {
  /** The job's rows are about to be prefilled (the first of them); `steer` are the values in effect. */
  onStart?(info: { steer: Record<string, number> }): void;
  /** New text of one choice (may be ''), right after its token was chosen; `logprob` when the spec asks. */
  onToken?(choice: number, delta: string, tokenId: number, logprob?: TokenLogprob): void;
  onFinish?(choice: number, result: ChoiceResult): void;
}

export interface ChoiceResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  /** One per token of tokenIds, when the spec asked for logprobs. */
  logprobs?: TokenLogprob[];
}

export interface JobResult {
  choices: ChoiceResult[];
  promptTokens: number;
  completionTokens: number;
  steer: Record<string, number>;
}

export interface SchedulerStats {
  queued: number;
  active: number;
  tokensGenerated: number;
}

export interface SchedulerHooks {
  onTokens?(count: number): void;
  onStep?(batchSize: number): void;
}

class Job {
  readonly rows: JobRow[] = [];
  readonly results: (ChoiceResult | undefined)[];
  steer: Record<string, number> = {};
  scale?: Float32Array;
  started = false;
  failed?: Error;
  private timer?: NodeJS.Timeout;
  private unfinished: number;
  private readonly onAbort = () => this.fail(cancelledError(this.spec.signal?.reason));

  constructor(
    readonly spec: JobSpec,
    readonly listener: JobListener,
    readonly resolve: (r: JobResult) => void,
    readonly reject: (e: Error) => void,
    private readonly wake: () => void,
  ) {
    this.results = new Array(spec.prompts.length * spec.n);
    this.unfinished = this.results.length;
    spec.signal?.addEventListener('abort', this.onAbort, { once: true });
    if (spec.timeoutMs !== undefined) {
      this.timer = setTimeout(
        () =>
          this.fail(
            new RequestTimeout(
              `the request did not finish within this server's timeout of ${spec.timeoutMs} ms`,
              'ask for fewer tokens, retry when the server is less busy, or raise --timeout-ms',
            ),
          ),
        spec.timeoutMs,
      );
      this.timer.unref?.();
    }
  }

  get done(): boolean {
    return this.failed !== undefined || this.unfinished === 0;
  }

  finishChoice(choice: number, result: ChoiceResult): void {
    this.results[choice] = result;
    this.unfinished--;
    this.listener.onFinish?.(choice, result);
    if (this.unfinished === 0) {
      this.cleanup();
      const choices = this.results as ChoiceResult[];
      this.resolve({
        choices,
        promptTokens: this.spec.prompts.reduce((a, p) => a + p.length, 0),
        completionTokens: choices.reduce((a, c) => a + c.tokenIds.length, 0),
        steer: this.steer,
      });
    }
  }

  /** End the job with an error; its rows are dropped by the loop before its next step. */
  fail(e: Error): void {
    if (this.done) return;
    this.failed = e;
    this.cleanup();
    this.reject(e);
    this.wake();
  }

  private cleanup(): void {
    if (this.timer) clearTimeout(this.timer);
    this.spec.signal?.removeEventListener('abort', this.onAbort);
  }
}

/** A request's choice as a row of the engine. */
interface JobRow extends Row {
  job: Job;
  choice: number;
}

/** A request ran past --timeout-ms (queue wait included); the server answers 504. */
export class RequestTimeout extends LmSteerError {
  constructor(message: string, hint?: string) {
    super('LIMIT', message, hint);
  }
}

function cancelledError(reason: unknown): LmSteerError {
  return new LmSteerError(
    'CANCELLED',
    `the request was cancelled${reason instanceof Error ? `: ${reason.message}` : ''}`,
    'the client went away',
    { cause: reason },
  );
}

export interface SchedulerOptions {
  maxRows: number;
  /** Context per row (prompt + new tokens). */
  capacity: number;
  /** Requests waiting for their first row to join; more are refused (429). */
  maxQueue: number;
}

export class Scheduler {
  private engine: BatchEngine;
  private steerSet: SteerSet;
  private readonly queue: JobRow[] = []; // rows waiting for a slot, FIFO
  private pendingSwap?: { set: SteerSet; done: () => void };
  private swapChain: Promise<void> = Promise.resolve();
  private wakeup?: () => void;
  private stopped = false;
  private readonly loopDone: Promise<void>;
  tokensGenerated = 0;

  constructor(
    private readonly decoder: Decoder,
    private readonly tokenizer: Tokenizer,
    steers: SteerSet,
    readonly opts: SchedulerOptions,
    private readonly hooks: SchedulerHooks = {},
  ) {
    this.steerSet = steers;
    this.engine = this.newEngine(steers);
    this.loopDone = this.loop();
  }

  get steers(): SteerSet {
    return this.steerSet;
  }

  /** Requests whose rows have not all joined the batch yet. */
  get queuedJobs(): number {
    return new Set(this.queue.filter((r) => !r.job.done).map((r) => r.job)).size;
  }

  get activeRows(): number {
    return this.engine.size;
  }

  /**
   * Queue a job; resolves with every choice when done. Refuses (LIMIT) when the queue is full. Validation of
   * lengths and steer names happens here, before anything is queued.
   */
  submit(spec: JobSpec, listener: JobListener = {}): Promise<JobResult> {
    if (this.stopped)
      return Promise.reject(
        new LmSteerError('CANCELLED', 'the server is shutting down', 'retry against another server'),
      );
    const rowsNeeded = spec.prompts.length * spec.n;
    if (rowsNeeded > this.opts.maxRows * 8) {
      return Promise.reject(
        new LmSteerError(
          'BAD_ARGUMENT',
          `the request asks for ${rowsNeeded} generations (prompts × n); this server runs at most ${this.opts.maxRows * 8} per request`,
          'split it into several requests',
        ),
      );
    }
    if (this.queuedJobs >= this.opts.maxQueue) {
      return Promise.reject(
        new LmSteerError(
          'LIMIT',
          `the server is busy: ${this.queuedJobs} requests are already waiting (--max-queue ${this.opts.maxQueue})`,
          'retry after a short wait',
        ),
      );
    }
    for (const [i, p] of spec.prompts.entries()) {
      if (p.length + spec.maxTokens > this.opts.capacity) {
        return Promise.reject(
          new LmSteerError(
            'BAD_ARGUMENT',
            `prompt ${i} has ${p.length} tokens; with max_tokens ${spec.maxTokens} that exceeds this server's context of ${this.opts.capacity} tokens`,
            `ask for at most ${Math.max(0, this.opts.capacity - p.length)} tokens, or shorten the prompt`,
          ),
        );
      }
    }
    try {
      this.steerSet.resolve(spec.steer); // a fast 400 for unknown names; resolved again on admission
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<JobResult>((resolve, reject) => {
      const job = new Job(spec, listener, resolve, reject, () => this.kick());
      if (spec.signal?.aborted) return job.fail(cancelledError(spec.signal.reason));
      const stop: StopConfig = {
        eosIds: this.tokenizer.eosIds,
        stopAtEos: true,
        minNewTokens: spec.minTokens,
        maxNewTokens: spec.maxTokens,
      };
      spec.prompts.forEach((prompt, p) => {
        for (let j = 0; j < spec.n; j++) {
          const choice = p * spec.n + j;
          const logprobs: TokenLogprob[] | undefined = spec.logprobs !== undefined ? [] : undefined;
          const row: JobRow = {
            job,
            choice,
            prompt,
            sampling: spec.sampling,
            stop,
            rng: rngStream(spec.seed, 0, j),
            logprobs: spec.logprobs,
            stream: new TextStream(this.tokenizer, { context: prompt, stop: spec.stop }),
            tokens: [],
            label: `choice ${choice}`,
            events: {
              token: (delta, id, lp) => {
                this.tokensGenerated++;
                this.hooks.onTokens?.(1);
                if (lp) logprobs?.push(lp);
                if (!job.done) job.listener.onToken?.(choice, delta, id, lp);
              },
              finish: () => {
                if (!job.done)
                  job.finishChoice(choice, {
                    text: row.stream.text,
                    tokenIds: row.tokens,
                    finishReason: row.finish!,
                    ...(logprobs ? { logprobs } : {}),
                  });
              },
              fail: (e) => job.fail(e),
            },
          };
          job.rows.push(row);
        }
      });
      this.queue.push(...job.rows);
      this.kick();
    });
  }

  /**
   * Swap in a new steer set once the active rows have drained (see the file comment). Resolves when the new
   * set is in force. Swaps are applied one at a time, in call order.
   */
  replaceSteers(make: (current: SteerSet) => SteerSet): Promise<SteerSet> {
    const run = this.swapChain.then(
      () =>
        new Promise<SteerSet>((resolve, reject) => {
          let set: SteerSet;
          try {
            set = make(this.steerSet);
          } catch (e) {
            return reject(e);
          }
          this.pendingSwap = { set, done: () => resolve(set) };
          this.kick();
        }),
    );
    this.swapChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * The log-probability of every prompt token after the tokens before it (null for the first), with `top`
   * alternatives, under the steer values `steer` resolved against the set in force: completions' `echo` with
   * `logprobs`. One full forward pass beside the decode loop (ORT sessions take concurrent runs; the batch's KV
   * buffers are not involved), as the lens endpoints do.
   */
  async promptLogprobs(prompt: number[], steer: Record<string, number>, top: number): Promise<(TokenLogprob | null)[]> {
    const set = this.steerSet;
    const { scale } = set.resolve(steer);
    const dirs = set.directions;
    const { logits } = await this.decoder.forward([prompt], {
      steer:
        dirs && scale ? { ...dirs, scale: { dtype: 'float32', shape: [1, scale.length], data: scale } } : undefined,
    });
    const V = this.decoder.vocabSize;
    return prompt.map((id, t) =>
      t === 0 ? null : tokenLogprob(logits.data.subarray((t - 1) * V, t * V) as Float32Array, id, top),
    );
  }

  /** Fail everything queued or running and end the loop. */
  async close(): Promise<void> {
    this.stopped = true;
    const err = new LmSteerError('CANCELLED', 'the server is shutting down', 'retry against another server');
    for (const r of [...this.queue, ...(this.engine.rows() as JobRow[])]) r.job.fail(err);
    this.kick();
    await this.loopDone;
  }

  private newEngine(set: SteerSet): BatchEngine {
    return new BatchEngine(this.decoder, {
      maxRows: this.opts.maxRows,
      maxLength: this.opts.capacity,
      steer: set.directions,
    });
  }

  private kick(): void {
    const w = this.wakeup;
    this.wakeup = undefined;
    w?.();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        this.reap();
        if (this.pendingSwap && this.engine.size === 0) this.applySwap();
        if (!this.pendingSwap) await this.admit();
        this.reap();
        if (this.engine.size === 0) {
          // Idle: sleep until submit(), a failing job, a swap or close() kicks (the executor sets wakeup synchronously).
          if (this.queue.length === 0 && !this.pendingSwap && !this.stopped)
            await new Promise<void>((r) => (this.wakeup = r));
          continue;
        }
        this.hooks.onStep?.(this.engine.size);
        await this.engine.step();
      } catch (e) {
        this.recover(e as Error);
      }
    }
  }

  /** Drop rows whose job ended (failed, cancelled) from the queue and the batch; finished rows left by themselves. */
  private reap(): void {
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.job.done) this.queue.splice(i, 1);
    for (const r of this.engine.rows() as JobRow[]) if (r.job.done) this.engine.leave(r);
  }

  private applySwap(): void {
    const swap = this.pendingSwap!;
    this.pendingSwap = undefined;
    this.engine.dispose();
    this.engine = this.newEngine(swap.set);
    this.steerSet = swap.set;
    swap.done();
  }

  /** Move queued rows into free slots (FIFO) and prefill them together. */
  private async admit(): Promise<void> {
    const joining: JobRow[] = [];
    while (this.queue.length > 0 && this.engine.free > joining.length) {
      const row = this.queue[0]!;
      const job = row.job;
      if (!job.started) {
        try {
          const { scale, effective } = this.steerSet.resolve(job.spec.steer);
          job.scale = scale;
          job.steer = effective;
          job.started = true;
          job.listener.onStart?.({ steer: effective });
        } catch (e) {
          job.fail(e as Error);
          this.reap();
          continue;
        }
      }
      this.queue.shift();
      row.scale = job.scale;
      if (!job.done) joining.push(row);
    }
    if (joining.length === 0) return;
    try {
      await this.engine.join(joining);
    } catch (e) {
      // join() changes the batch only after its prefill succeeded, so the running rows are unaffected.
      const err =
        e instanceof LmSteerError
          ? e
          : new LmSteerError(
              'BAD_DATA',
              `prefill failed: ${(e as Error).message}`,
              'this is likely a bug; retry the request',
              {
                cause: e,
              },
            );
      for (const r of joining) r.job.fail(err);
    }
  }

  /** The session failed mid-step: the batch's cache is in an unknown state, so fail its rows and start afresh. */
  private recover(e: Error): void {
    const err =
      e instanceof LmSteerError
        ? e
        : new LmSteerError(
            'BAD_DATA',
            `generation failed: ${e.message}`,
            'this is likely a bug; the server recovered, retry the request',
            {
              cause: e,
            },
          );
    for (const r of this.engine.rows() as JobRow[]) r.job.fail(err);
    this.engine.dispose();
    this.engine = this.newEngine(this.steerSet);
  }

  stats(): SchedulerStats {
    return { queued: this.queuedJobs, active: this.engine.size, tokensGenerated: this.tokensGenerated };
  }
}
