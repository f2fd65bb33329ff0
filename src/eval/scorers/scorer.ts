/**
 * What every attribute scorer provides. `score` returns, per text, the probability of the scorer's attribute
 * (toxic / positive); a text has the attribute when its score is > 0.5 (metrics.ts ATTRIBUTE_THRESHOLD).
 */
export interface Scorer {
  /** Registry name: 'offensive-linear', 'vader', 'linear', 'perspective', … */
  readonly name: string;
  /** What a score > 0.5 means: 'toxicity' or 'positive-sentiment' (or a trained model's own label). */
  readonly attribute: string;
  /** Fingerprint for the report: name plus the model's hash or the package/API version. */
  readonly version: string;
  score(texts: readonly string[]): Promise<number[]>;
}
