/**
 * The server's tokenizing thread (promptEncoder.ts; started through tokenizeWorker.mjs): loads the model's tokenizer from its origin and encodes
 * the prompts it is sent, so a long prompt never blocks the decode loop on the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer } from '../tokenizer/load.js';
import type { LocalTokenizerSource } from '../tokenizer/tokenizer.js';

interface Request {
  id: number;
  text: string;
  addSpecialTokens: boolean;
}

const tokenizer = loadTokenizer(workerData as LocalTokenizerSource);
parentPort!.on('message', ({ id, text, addSpecialTokens }: Request) => {
  try {
    parentPort!.postMessage({ id, ids: tokenizer.encode(text, { addSpecialTokens }) });
  } catch (e) {
    parentPort!.postMessage({ id, error: (e as Error).message });
  }
});
