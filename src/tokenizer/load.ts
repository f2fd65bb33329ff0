/** One entry point for "the tokenizer of this local model", whatever its format. */
import { HfTokenizer } from './hfTokenizer.js';
import { loadLlama2cTokenizer } from './llama2cTokenizer.js';
import type { LocalTokenizerSource, Tokenizer } from './tokenizer.js';

export type { LocalTokenizerSource } from './tokenizer.js';

/** Synchronous (all files are local); callers may still `await` it. The tokenizer remembers `local` as its origin. */
export function loadTokenizer(local: LocalTokenizerSource): Tokenizer {
  const tok =
    local.kind === 'hf'
      ? HfTokenizer.fromDir(local.dir)
      : loadLlama2cTokenizer(local.tokenizerPath, { vocabSize: local.vocabSize });
  tok.origin = local;
  return tok;
}
