/**
 * Prompt text → token ids for the server, without stalling the decode loop. Tokenizing is synchronous and, for
 * some tokenizers, slow (stories260K's: ~0.1 ms a token), so one 900 KB prompt blocked every stream and
 * /health for 22 s. Two measures:
 *  - a bound before tokenizing (tokenizer/textBound.ts): a prompt longer than the characters `context` tokens
 *    can stand for can never fit, and is refused at once;
 *  - prompts longer than `inlineChars` are tokenized on a worker thread holding a copy of the tokenizer
 *    (loaded from its origin); short ones inline, where a thread round trip would cost more than it saves.
 */
import { Worker } from 'node:worker_threads';
import { charsForTokens } from '../tokenizer/textBound.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { ApiError } from './openai.js';

export interface PromptEncoderOptions {
  /** Prompts up to this many characters are tokenized on the main thread (default 2000). */
  inlineChars?: number;
}

export class PromptEncoder {
  private worker?: Worker;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (ids: number[]) => void; reject: (e: Error) => void }>();
  private readonly inlineChars: number;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly context: number,
    opts: PromptEncoderOptions = {},
  ) {
    this.inlineChars = opts.inlineChars ?? 2000;
  }

  /** The most characters a prompt of `context` tokens can have (tokenizer/textBound.ts). */
  charLimit(): number {
    return charsForTokens(this.tokenizer, this.context);
  }

  /** Token ids of `text`; 400 (LIMIT) without tokenizing when it cannot fit the context. */
  async encode(text: string, addSpecialTokens: boolean, where: string): Promise<number[]> {
    if (text.length > this.charLimit()) {
      throw new ApiError(
        400,
        'LIMIT',
        `"${where}" has ${text.length} characters, more than this server's context of ${this.context} tokens can hold`,
        'shorten the prompt',
        where,
      );
    }
    if (text.length <= this.inlineChars || !this.tokenizer.origin) {
      return this.tokenizer.encode(text, { addSpecialTokens });
    }
    return this.onWorker(text, addSpecialTokens);
  }

  private onWorker(text: string, addSpecialTokens: boolean): Promise<number[]> {
    if (!this.worker) this.worker = this.startWorker();
    const id = this.nextId++;
    this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker!.postMessage({ id, text, addSpecialTokens });
    });
  }

  private startWorker(): Worker {
    const w = new Worker(new URL('./tokenizeWorker.mjs', import.meta.url), { workerData: this.tokenizer.origin });
    w.on('message', (m: { id: number; ids?: number[]; error?: string }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      if (m.error !== undefined) p?.reject(new Error(`tokenizing thread: ${m.error}`));
      else p?.resolve(m.ids!);
    });
    const fail = (e: Error) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      this.worker = undefined; // the next long prompt starts a fresh one
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the tokenizing thread exited (code ${code})`)));
    w.unref();
    return w;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
