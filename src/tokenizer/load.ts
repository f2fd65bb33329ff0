/** One entry point for "the tokenizer of this local model", whatever its format. */
import { HfTokenizer } from './hfTokenizer.js';
import { loadLlama2cTokenizer } from './llama2cTokenizer.js';
import type { Tokenizer } from './tokenizer.js';

export type LocalTokenizerSource =
  /** A Hugging Face folder with tokenizer.json (+ tokenizer_config.json, generation_config.json, config.json). */
  | { kind: 'hf'; dir: string }
  /** A llama2.c tokenizer.bin; `vocabSize` (the model's) is checked against its token count when given. */
  | { kind: 'llama2c'; tokenizerPath: string; vocabSize?: number };

/** Synchronous (all files are local); callers may still `await` it. */
export function loadTokenizer(local: LocalTokenizerSource): Tokenizer {
  return local.kind === 'hf'
    ? HfTokenizer.fromDir(local.dir)
    : loadLlama2cTokenizer(local.tokenizerPath, { vocabSize: local.vocabSize });
}
