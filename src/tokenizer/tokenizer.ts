/** Where a local tokenizer comes from (load.ts), so another thread can load the same one. */
export type LocalTokenizerSource =
  /** A Hugging Face folder with tokenizer.json (+ tokenizer_config.json, generation_config.json, config.json). */
  | { kind: 'hf'; dir: string }
  /** A llama2.c tokenizer.bin; `vocabSize` (the model's) is checked against its token count when given. */
  | { kind: 'llama2c'; tokenizerPath: string; vocabSize?: number };

/** What the rest of lmsteer needs from a tokenizer. Implementations live beside this file. */
export interface Tokenizer {
  /** How to load this tokenizer again (the server tokenizes long prompts with a copy on another thread). */
  readonly origin?: LocalTokenizerSource;
  readonly vocabSize: number;
  readonly bosId?: number;
  /** Ids that end generation (EOS and any extra ones from generation_config.json). */
  readonly eosIds: number[];
  readonly padId?: number;
  /** Token ids of `text`; `addSpecialTokens` (default true) adds what the model's post-processor adds (e.g. BOS). */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The text of one token alone, as it appears inside decoded text (used by the lens and transfer). */
  tokenString(id: number): string;
  /** Whether `id` is a special token (BOS, EOS, pad, …). */
  isSpecial(id: number): boolean;
}
