/**
 * linear: a TF-IDF (word 1–2 grams, sublinear tf, L2 norm) logistic-regression classifier that lmsteer trains
 * itself, so an attribute can be scored with no external model: train → save JSON → load → Scorer.
 * The features follow sklearn's TfidfVectorizer(ngram_range=(1,2), sublinear_tf=True, smooth_idf=True,
 * norm='l2'); the weights minimise mean log-loss + (l2/2)‖w‖² (bias not penalised) with L-BFGS, which is
 * deterministic, so the seed only picks the held-out split. Plain TS: the problem is small and sparse, and no
 * well-kept npm package does sparse logistic regression.
 */
import { createHash } from 'node:crypto';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { z } from 'zod';
import { writeJsonAtomic } from '../../formats/atomicWrite.js';
import { FILE_LIMITS, readTextFile } from '../../formats/safeRead.js';
import { LmSteerError } from '../../util/errors.js';
import type { Scorer } from './scorer.js';

export const LINEAR_TOKENIZER = 'words-contractions/1';

/**
 * Lowercased words, with English contractions split the Penn-Treebank way ("don't" → "do n't", "it's" →
 * "it 's") so that raw text scores like the PTB-tokenised data (SST) the classifier is usually trained on.
 * Unlike sklearn's default pattern, one-letter words are kept ("a", "i") and "n't" survives: negation matters.
 */
export function linearTokens(text: string): string[] {
  const s = text
    .toLowerCase()
    .replace(/[\u2018\u2019\u02bc]/g, "'")
    .replace(/(\p{L})(n't)(?![\p{L}\p{N}_])/gu, '$1 $2');
  return s.match(/n't|'\p{L}+|[\p{L}\p{N}_]+/gu) ?? [];
}

/** Unigrams and bigrams (joined by a space) of a token list. */
function ngrams(tokens: string[]): string[] {
  const out = [...tokens];
  for (let i = 0; i + 1 < tokens.length; i++) out.push(tokens[i] + ' ' + tokens[i + 1]);
  return out;
}

const ModelSchema = z.object({
  format: z.literal('lmsteer-linear/1'),
  attribute: z.string(),
  tokenizer: z.literal(LINEAR_TOKENIZER),
  ngramRange: z.tuple([z.literal(1), z.literal(2)]),
  sublinearTf: z.literal(true),
  norm: z.literal('l2'),
  vocabulary: z.array(z.string()),
  idf: z.array(z.number()),
  weights: z.array(z.number()),
  bias: z.number(),
  training: z.object({
    seed: z.number(),
    examples: z.number(),
    trainExamples: z.number(),
    heldOutExamples: z.number(),
    trainAccuracy: z.number(),
    heldOutAccuracy: z.number().nullable(),
    l2: z.number(),
    minDf: z.number(),
    iterations: z.number(),
    converged: z.boolean(),
    finalLoss: z.number(),
  }),
});
export type LinearClassifierModel = z.infer<typeof ModelSchema>;

export interface LabeledText {
  text: string;
  /** 1 = the attribute (positive / toxic), 0 = not. */
  label: 0 | 1;
}

export interface TrainLinearOptions {
  /** What label 1 means; becomes the scorer's attribute. Default 'positive-sentiment'. */
  attribute?: string;
  /** Seeds the held-out split. Default 0. */
  seed?: number;
  /** Share of examples held out to measure accuracy. Default 0.1. */
  heldOutFraction?: number;
  /** L2 penalty on the weights (objective: mean log-loss + l2/2 ‖w‖²). Default 1/(2·n_train), i.e. sklearn's C = 2. */
  l2?: number;
  /** Keep n-grams seen in at least this many training texts. Default 2. */
  minDf?: number;
  /** Keep at most this many n-grams (highest document frequency first). Default unlimited. */
  maxFeatures?: number;
  /** L-BFGS iteration cap. Default 300. */
  maxIterations?: number;
}

/** Sparse rows (CSR) of L2-normalised tf-idf features. */
interface Csr {
  rows: number;
  indptr: Int32Array;
  indices: Int32Array;
  values: Float64Array;
}

/** Vectorizer state shared by training and scoring. */
class Vectorizer {
  readonly index: Map<string, number>;
  constructor(
    readonly vocabulary: string[],
    readonly idf: Float64Array,
  ) {
    this.index = new Map(vocabulary.map((t, j) => [t, j]));
  }

  row(text: string): { cols: number[]; vals: number[] } {
    const counts = new Map<number, number>();
    for (const g of ngrams(linearTokens(text))) {
      const j = this.index.get(g);
      if (j !== undefined) counts.set(j, (counts.get(j) ?? 0) + 1);
    }
    const cols = [...counts.keys()].sort((a, b) => a - b);
    const vals = cols.map((j) => (1 + Math.log(counts.get(j)!)) * this.idf[j]!); // sublinear tf
    let ss = 0;
    for (const v of vals) ss += v * v;
    const norm = Math.sqrt(ss);
    if (norm > 0) for (let i = 0; i < vals.length; i++) vals[i]! /= norm;
    return { cols, vals };
  }

  matrix(texts: readonly string[]): Csr {
    const indptr = new Int32Array(texts.length + 1);
    const idx: number[] = [];
    const val: number[] = [];
    texts.forEach((t, i) => {
      const { cols, vals } = this.row(t);
      for (let k = 0; k < cols.length; k++) {
        idx.push(cols[k]!);
        val.push(vals[k]!);
      }
      indptr[i + 1] = idx.length;
    });
    return { rows: texts.length, indptr, indices: Int32Array.from(idx), values: Float64Array.from(val) };
  }
}

/** Fit the vocabulary and smooth idf (sklearn: ln((1+n)/(1+df)) + 1) on the training texts. */
function fitVectorizer(texts: readonly string[], minDf: number, maxFeatures: number): Vectorizer {
  const df = new Map<string, number>();
  for (const t of texts) for (const g of new Set(ngrams(linearTokens(t)))) df.set(g, (df.get(g) ?? 0) + 1);
  let terms = [...df.entries()].filter(([, d]) => d >= minDf);
  // Deterministic order: by df (desc) to apply maxFeatures, then alphabetical for the stored columns.
  terms.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  terms = terms.slice(0, maxFeatures).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const n = texts.length;
  return new Vectorizer(
    terms.map(([t]) => t),
    Float64Array.from(terms, ([, d]) => Math.log((1 + n) / (1 + d)) + 1),
  );
}

/** log(1 + exp(x)) without overflow. */
function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}
function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

function logits(X: Csr, w: Float64Array, b: number): Float64Array {
  const z = new Float64Array(X.rows);
  for (let i = 0; i < X.rows; i++) {
    let s = b;
    for (let k = X.indptr[i]!; k < X.indptr[i + 1]!; k++) s += X.values[k]! * w[X.indices[k]!]!;
    z[i] = s;
  }
  return z;
}

/**
 * Objective and gradient for parameters theta = [w..., b]; y in {0,1}.
 * f = (1/n) Σ softplus(−s_i z_i) + (l2/2)‖w‖², s_i = ±1.
 */
function lossAndGrad(X: Csr, y: Uint8Array, l2: number, theta: Float64Array, grad: Float64Array): number {
  const d = theta.length - 1;
  const w = theta.subarray(0, d);
  const z = logits(X, w, theta[d]!);
  grad.fill(0);
  let loss = 0;
  const n = X.rows;
  for (let i = 0; i < n; i++) {
    const s = y[i] ? 1 : -1;
    loss += softplus(-s * z[i]!);
    const r = (-s * sigmoid(-s * z[i]!)) / n; // d loss_i / d z_i, divided by n
    for (let k = X.indptr[i]!; k < X.indptr[i + 1]!; k++) grad[X.indices[k]!]! += r * X.values[k]!;
    grad[d]! += r;
  }
  loss /= n;
  let ww = 0;
  for (let j = 0; j < d; j++) {
    ww += w[j]! * w[j]!;
    grad[j]! += l2 * w[j]!;
  }
  return loss + 0.5 * l2 * ww;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Minimal L-BFGS (Nocedal & Wright, Alg. 7.4/7.5) with Armijo backtracking; smooth convex objective. */
function lbfgs(
  f: (x: Float64Array, g: Float64Array) => number,
  x: Float64Array,
  maxIter: number,
  memory = 10,
  gtol = 1e-6,
): { x: Float64Array; loss: number; iterations: number; converged: boolean } {
  const n = x.length;
  let g = new Float64Array(n);
  let fx = f(x, g);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const dir = new Float64Array(n);
  const alpha = new Array<number>(memory);
  for (let it = 0; it < maxIter; it++) {
    let gmax = 0;
    for (let i = 0; i < n; i++) gmax = Math.max(gmax, Math.abs(g[i]!));
    if (gmax < gtol) return { x, loss: fx, iterations: it, converged: true };
    // Two-loop recursion: dir = −H g.
    for (let i = 0; i < n; i++) dir[i] = -g[i]!;
    for (let k = S.length - 1; k >= 0; k--) {
      alpha[k] = rho[k]! * dot(S[k]!, dir);
      const a = alpha[k]!;
      const yk = Y[k]!;
      for (let i = 0; i < n; i++) dir[i]! -= a * yk[i]!;
    }
    const gamma = S.length
      ? dot(S[S.length - 1]!, Y[Y.length - 1]!) / dot(Y[Y.length - 1]!, Y[Y.length - 1]!)
      : 1 / Math.max(gmax, 1e-12);
    for (let i = 0; i < n; i++) dir[i]! *= gamma;
    for (let k = 0; k < S.length; k++) {
      const b = rho[k]! * dot(Y[k]!, dir);
      const a = alpha[k]! - b;
      const sk = S[k]!;
      for (let i = 0; i < n; i++) dir[i]! += a * sk[i]!;
    }
    let slope = dot(g, dir);
    if (!(slope < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = Y.length = rho.length = 0;
      for (let i = 0; i < n; i++) dir[i] = -g[i]!;
      slope = dot(g, dir);
    }
    let step = 1;
    const xNew = new Float64Array(n);
    const gNew = new Float64Array(n);
    let fNew = Infinity;
    for (let tries = 0; tries < 40; tries++) {
      for (let i = 0; i < n; i++) xNew[i] = x[i]! + step * dir[i]!;
      fNew = f(xNew, gNew);
      if (fNew <= fx + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    if (!(fNew < fx)) return { x, loss: fx, iterations: it, converged: true }; // no further decrease possible
    const s = new Float64Array(n);
    const yv = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = xNew[i]! - x[i]!;
      yv[i] = gNew[i]! - g[i]!;
    }
    const sy = dot(s, yv);
    if (sy > 1e-12) {
      S.push(s);
      Y.push(yv);
      rho.push(1 / sy);
      if (S.length > memory) {
        S.shift();
        Y.shift();
        rho.shift();
      }
    }
    const rel = (fx - fNew) / Math.max(Math.abs(fx), Math.abs(fNew), 1);
    x = xNew;
    g = gNew;
    fx = fNew;
    if (rel < 1e-10) return { x, loss: fx, iterations: it + 1, converged: true };
  }
  return { x, loss: fx, iterations: maxIter, converged: false };
}

function accuracy(X: Csr, y: Uint8Array, w: Float64Array, b: number): number {
  const z = logits(X, w, b);
  let ok = 0;
  for (let i = 0; i < X.rows; i++) if ((z[i]! > 0 ? 1 : 0) === y[i]) ok++;
  return X.rows ? ok / X.rows : NaN;
}

/** Train on `examples`; a seeded share is held out and its accuracy recorded in `model.training`. */
export function trainLinearClassifier(
  examples: readonly LabeledText[],
  opts: TrainLinearOptions = {},
): LinearClassifierModel {
  const seed = opts.seed ?? 0;
  const heldOutFraction = opts.heldOutFraction ?? 0.1;
  const minDf = opts.minDf ?? 2;
  const maxIterations = opts.maxIterations ?? 300;
  if (!(heldOutFraction >= 0 && heldOutFraction < 1))
    throw new LmSteerError('BAD_ARGUMENT', `heldOutFraction is ${heldOutFraction}; expected a number in [0, 1)`);
  if (opts.l2 !== undefined && !(opts.l2 >= 0))
    throw new LmSteerError('BAD_ARGUMENT', `l2 is ${opts.l2}; expected a number ≥ 0`);
  examples.forEach((e, i) => {
    if (typeof e.text !== 'string' || (e.label !== 0 && e.label !== 1)) {
      throw new LmSteerError(
        'BAD_DATA',
        `training example ${i} has text ${JSON.stringify(e.text)?.slice(0, 60)} and label ${JSON.stringify(e.label)}; expected a string and 0 or 1`,
        'map the dataset labels to 0 (without the attribute) and 1 (with it)',
      );
    }
  });

  // Seeded Fisher–Yates shuffle, then the first share is held out.
  const order = examples.map((_, i) => i);
  const rng = xoroshiro128plus(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = uniformInt(rng, 0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const nHeld = Math.floor(examples.length * heldOutFraction);
  const held = order.slice(0, nHeld).map((i) => examples[i]!);
  const train = order.slice(nHeld).map((i) => examples[i]!);
  const positives = train.filter((e) => e.label === 1).length;
  if (positives === 0 || positives === train.length) {
    throw new LmSteerError(
      'BAD_DATA',
      `the training split has ${positives} of ${train.length} examples labelled 1; both labels are needed`,
      'pass examples of both classes (and enough of them for the held-out split)',
    );
  }

  // Scaled like sklearn's C: a fixed C keeps the data/penalty balance whatever the dataset size.
  const l2 = opts.l2 ?? 1 / (2 * train.length);
  const vec = fitVectorizer(
    train.map((e) => e.text),
    minDf,
    opts.maxFeatures ?? Infinity,
  );
  const X = vec.matrix(train.map((e) => e.text));
  const y = Uint8Array.from(train, (e) => e.label);
  const d = vec.vocabulary.length;
  const res = lbfgs((theta, g) => lossAndGrad(X, y, l2, theta, g), new Float64Array(d + 1), maxIterations);
  const w = res.x.subarray(0, d);
  const b = res.x[d]!;
  const Xh = vec.matrix(held.map((e) => e.text));
  const yh = Uint8Array.from(held, (e) => e.label);
  return {
    format: 'lmsteer-linear/1',
    attribute: opts.attribute ?? 'positive-sentiment',
    tokenizer: LINEAR_TOKENIZER,
    ngramRange: [1, 2],
    sublinearTf: true,
    norm: 'l2',
    vocabulary: vec.vocabulary,
    idf: Array.from(vec.idf),
    weights: Array.from(w),
    bias: b,
    training: {
      seed,
      examples: examples.length,
      trainExamples: train.length,
      heldOutExamples: held.length,
      trainAccuracy: accuracy(X, y, w, b),
      heldOutAccuracy: held.length ? accuracy(Xh, yh, w, b) : null,
      l2,
      minDf,
      iterations: res.iterations,
      converged: res.converged,
      finalLoss: res.loss,
    },
  };
}

export class LinearClassifierScorer implements Scorer {
  readonly name = 'linear';
  readonly attribute: string;
  readonly version: string;
  private readonly vec: Vectorizer;
  private readonly w: Float64Array;
  private readonly b: number;

  constructor(readonly model: LinearClassifierModel) {
    const n = model.vocabulary.length;
    if (model.idf.length !== n || model.weights.length !== n) {
      throw new LmSteerError(
        'BAD_FILE',
        `linear classifier has ${n} vocabulary entries, ${model.idf.length} idf values and ${model.weights.length} weights; they must agree`,
        'retrain or re-save the model',
      );
    }
    this.attribute = model.attribute;
    // The hash of the canonical JSON: the same whether the model was just trained or loaded from disk.
    this.version = `linear/1 sha256:${createHash('sha256').update(JSON.stringify(model)).digest('hex').slice(0, 16)}`;
    this.vec = new Vectorizer(model.vocabulary, Float64Array.from(model.idf));
    this.w = Float64Array.from(model.weights);
    this.b = model.bias;
  }

  probability(text: string): number {
    const { cols, vals } = this.vec.row(text);
    let z = this.b;
    for (let k = 0; k < cols.length; k++) z += vals[k]! * this.w[cols[k]!]!;
    return sigmoid(z);
  }

  async score(texts: readonly string[]): Promise<number[]> {
    return texts.map((t) => this.probability(t));
  }
}

/** Save as JSON, atomically (a crash never leaves half a model). */
export function saveLinearClassifier(path: string, model: LinearClassifierModel): void {
  writeJsonAtomic(path, model);
}

export async function loadLinearClassifier(path: string): Promise<LinearClassifierModel> {
  let text: string;
  try {
    text = readTextFile(path, FILE_LIMITS.classifier, 'linear classifier file');
  } catch (e) {
    if (e instanceof LmSteerError && e.code !== 'NOT_FOUND') throw e;
    throw new LmSteerError(
      'NOT_FOUND',
      `linear classifier file ${path} cannot be read`,
      'train one first (trainLinearClassifier) or check the path',
      { cause: e },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new LmSteerError(
      'BAD_FILE',
      `linear classifier file ${path} is not valid JSON`,
      'the file may be truncated; train and save it again',
      { cause: e },
    );
  }
  const parsed = ModelSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new LmSteerError(
      'BAD_FILE',
      `linear classifier file ${path}: field ${issue.path.join('.') || '(root)'}: ${issue.message}`,
      'expected a model saved by saveLinearClassifier (format lmsteer-linear/1)',
    );
  }
  return parsed.data;
}

/** Load a saved model and wrap it as a Scorer. */
export async function loadLinearScorer(path: string): Promise<LinearClassifierScorer> {
  return new LinearClassifierScorer(await loadLinearClassifier(path));
}
