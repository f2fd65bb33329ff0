/**
 * offensive-linear: the alt-profanity-check 1.8.0 classifier (TF-IDF unigrams + 5 Platt-calibrated LinearSVCs)
 * from a JSON export, scored exactly as its README and reference score.py define (= sklearn
 * `predict_proba(vectorizer.transform([text]))[0, 1]`). The model file is given by the caller; the repo never
 * ships it. Steps, each matching score.py:
 *   lowercase → tokens = maximal runs of ≥ 2 [\p{L}\p{N}_] code points → drop stop words → count in-vocabulary
 *   tokens → tf·idf → L2-normalise → per fold f = b + x·w, p = 1/(1+exp(a f + b)) → mean over folds.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { FILE_LIMITS, readRegularFile } from '../../formats/safeRead.js';
import { LmSteerError } from '../../util/errors.js';
import type { Scorer } from './scorer.js';

const ModelSchema = z.object({
  format: z.literal('offensive-linear/1'),
  vectorizer: z.object({
    lowercase: z.literal(true),
    token_pattern: z.literal('(?u)\\b\\w\\w+\\b'),
    ngram_range: z.tuple([z.literal(1), z.literal(1)]),
    binary: z.literal(false),
    norm: z.literal('l2'),
    sublinear_tf: z.literal(false),
    stop_words: z.array(z.string()),
    n_features: z.number().int().positive(),
    vocabulary: z.record(z.string(), z.number().int().nonnegative()),
    idf: z.array(z.number()),
  }),
  classifier: z.object({
    method: z.literal('sigmoid'),
    folds: z.array(z.object({ intercept: z.number(), a: z.number(), b: z.number(), coef: z.array(z.number()) })).min(1),
  }),
});
export type OffensiveLinearModel = z.infer<typeof ModelSchema>;

/** Python 3 `re` `\w\w+` in Unicode mode, on code points: JS `\w`/`\b` are ASCII-only, hence \p classes + u. */
const TOKEN_RE = /[\p{L}\p{N}_]{2,}/gu;

export class OffensiveLinearScorer implements Scorer {
  readonly name = 'offensive-linear';
  readonly attribute = 'toxicity';
  readonly version: string;
  private readonly vocab: Map<string, number>;
  private readonly stop: Set<string>;
  private readonly idf: Float64Array;
  private readonly folds: { intercept: number; a: number; b: number; coef: Float64Array }[];

  constructor(model: OffensiveLinearModel, fingerprint: string) {
    this.version = `offensive-linear/1 sha256:${fingerprint}`;
    const v = model.vectorizer;
    const n = v.n_features;
    const where = 'offensive-linear model';
    if (v.idf.length !== n)
      throw new LmSteerError('BAD_FILE', `${where}: vectorizer.idf has ${v.idf.length} values, n_features is ${n}`);
    // A Map, not obj[token]: tokens such as 'constructor' or '__proto__' occur in text.
    this.vocab = new Map(Object.entries(v.vocabulary));
    for (const [w, j] of this.vocab) {
      if (j >= n) throw new LmSteerError('BAD_FILE', `${where}: vocabulary['${w}'] = ${j} is ≥ n_features ${n}`);
    }
    this.stop = new Set(v.stop_words);
    this.idf = Float64Array.from(v.idf);
    this.folds = model.classifier.folds.map((f, k) => {
      if (f.coef.length !== n)
        throw new LmSteerError(
          'BAD_FILE',
          `${where}: classifier.folds[${k}].coef has ${f.coef.length} values, n_features is ${n}`,
        );
      return { intercept: f.intercept, a: f.a, b: f.b, coef: Float64Array.from(f.coef) };
    });
  }

  /** The regex tokens of the lowercased text, before stop-word and vocabulary filtering. */
  tokens(text: string): string[] {
    return text.toLowerCase().match(TOKEN_RE) ?? [];
  }

  /** Sparse L2-normalised tf-idf row, columns ascending (the order score.py sums in, for identical rounding). */
  features(text: string): { cols: number[]; vals: number[] } {
    const counts = new Map<number, number>();
    for (const tok of this.tokens(text)) {
      if (this.stop.has(tok)) continue;
      const j = this.vocab.get(tok);
      if (j !== undefined) counts.set(j, (counts.get(j) ?? 0) + 1);
    }
    const cols = [...counts.keys()].sort((a, b) => a - b);
    const vals = cols.map((j) => counts.get(j)! * this.idf[j]!);
    let ss = 0;
    for (const x of vals) ss += x * x;
    const norm = Math.sqrt(ss);
    if (norm !== 0) for (let i = 0; i < vals.length; i++) vals[i]! /= norm;
    return { cols, vals };
  }

  /** LinearSVC decision value of each fold. */
  decisionValues(text: string): number[] {
    const { cols, vals } = this.features(text);
    return this.folds.map((fold) => {
      let f = 0;
      for (let i = 0; i < cols.length; i++) f += vals[i]! * fold.coef[cols[i]!]!;
      return f + fold.intercept;
    });
  }

  /** P(offensive): the mean over folds of the Platt sigmoid (note the + sign; every a < 0). */
  probability(text: string): number {
    const fs = this.decisionValues(text);
    let total = 0;
    this.folds.forEach((fold, k) => (total += 1 / (1 + Math.exp(fold.a * fs[k]! + fold.b))));
    return total / this.folds.length;
  }

  async score(texts: readonly string[]): Promise<number[]> {
    return texts.map((t) => this.probability(t));
  }
}

/** Load the JSON export (e.g. ../shared/evaluators/offensive-linear/model.json) and build its scorer. */
export async function loadOffensiveLinear(path: string): Promise<OffensiveLinearScorer> {
  let bytes: Buffer;
  try {
    bytes = readRegularFile(path, FILE_LIMITS.classifier, 'offensive-linear model file');
  } catch (e) {
    if (e instanceof LmSteerError && e.code !== 'NOT_FOUND') throw e;
    throw new LmSteerError(
      'NOT_FOUND',
      `offensive-linear model file ${path} cannot be read`,
      'pass the path of model.json (the alt-profanity-check JSON export)',
      { cause: e },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new LmSteerError(
      'BAD_FILE',
      `offensive-linear model file ${path} is not valid JSON`,
      'the file may be truncated; copy it again',
      { cause: e },
    );
  }
  const parsed = ModelSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || '(root)';
    const code = field.startsWith('vectorizer.') && issue.code === 'invalid_value' ? 'UNSUPPORTED' : 'BAD_FILE';
    throw new LmSteerError(
      code,
      `offensive-linear model file ${path}: field ${field}: ${issue.message}`,
      'expected the offensive-linear/1 export (unigram TF-IDF, sigmoid-calibrated folds) described in its README',
    );
  }
  const sha = createHash('sha256').update(bytes).digest('hex');
  return new OffensiveLinearScorer(parsed.data, sha.slice(0, 16));
}
