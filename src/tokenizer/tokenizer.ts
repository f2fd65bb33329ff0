/** What the rest of lmsteer needs from a tokenizer. Implementations live beside this file. */
export interface Tokenizer {
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
