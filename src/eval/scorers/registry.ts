/**
 * Scorers by name, for the CLI and the evaluation protocol: `createScorer('vader')`,
 * `createScorer('offensive-linear', { modelPath })`, `createScorer('perspective', { perspective: { qps: 1 } })`.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LmSteerError } from '../../util/errors.js';
import { loadLinearScorer } from './linearClassifier.js';
import { OnnxClassifierScorer } from './onnxClassifier.js';
import { loadOffensiveLinear } from './offensiveLinear.js';
import { PerspectiveScorer, type PerspectiveOptions } from './perspective.js';
import type { Scorer } from './scorer.js';
import { VaderScorer } from './vader.js';

export type { Scorer } from './scorer.js';

export interface ScorerOptions {
  /** Model file: model.json of offensive-linear, a saved linear classifier, an ONNX classifier. */
  modelPath?: string;
  /** onnx-classifier: the label to score (name in id2label or index); default: the positive/toxic one. */
  label?: string;
  perspective?: PerspectiveOptions;
}

interface Entry {
  attribute: string;
  describe: string;
  create(opts: ScorerOptions): Promise<Scorer>;
}

function needModel(name: string, opts: ScorerOptions, what: string): string {
  if (!opts.modelPath)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `scorer '${name}' needs a model file and none was given`,
      `pass the path of ${what}`,
    );
  return opts.modelPath;
}

const SCORERS: Record<string, Entry> = {
  'offensive-linear': {
    attribute: 'toxicity',
    describe: 'alt-profanity-check TF-IDF + calibrated linear SVMs (local JSON model): P(offensive)',
    create: (o) => loadOffensiveLinear(needModel('offensive-linear', o, 'the offensive-linear model.json')),
  },
  vader: {
    attribute: 'positive-sentiment',
    describe: 'VADER lexicon sentiment (no model file): positive iff compound ≥ 0.05',
    create: async () => new VaderScorer(),
  },
  linear: {
    attribute: 'model-defined',
    describe: "lmsteer's own TF-IDF logistic-regression classifier (JSON saved by saveLinearClassifier)",
    create: (o) => {
      const p = needModel(
        'linear',
        o,
        'a linear classifier JSON saved by lmsteer (or the folder `lmsteer classifier train` wrote)',
      );
      // A folder from `lmsteer classifier train` holds the model as classifier.json.
      return loadLinearScorer(existsSync(p) && statSync(p).isDirectory() ? join(p, LINEAR_CLASSIFIER_FILE) : p);
    },
  },
  perspective: {
    attribute: 'toxicity',
    describe: 'Google Perspective API TOXICITY (needs PERSPECTIVE_API_KEY, network)',
    create: async (o) => new PerspectiveScorer(o.perspective),
  },
  'onnx-classifier': {
    attribute: 'model-defined',
    describe:
      'a Hugging Face sequence-classification model exported to ONNX (folder: model.onnx, tokenizer.json, config.json)',
    create: (o) =>
      OnnxClassifierScorer.load(needModel('onnx-classifier', o, 'the exported model folder'), { label: o.label }),
  },
};

/** The file name `lmsteer classifier train` saves a linear classifier under. */
export const LINEAR_CLASSIFIER_FILE = 'classifier.json';

export const SCORER_NAMES: readonly string[] = Object.keys(SCORERS);

/** One line per scorer, for `--help` and error hints. */
export function describeScorers(): { name: string; attribute: string; describe: string }[] {
  return Object.entries(SCORERS).map(([name, e]) => ({ name, attribute: e.attribute, describe: e.describe }));
}

export async function createScorer(name: string, opts: ScorerOptions = {}): Promise<Scorer> {
  const entry = Object.hasOwn(SCORERS, name) ? SCORERS[name] : undefined;
  if (!entry)
    throw new LmSteerError('NOT_FOUND', `unknown scorer '${name}'`, `choose one of: ${SCORER_NAMES.join(', ')}`);
  return entry.create(opts);
}
