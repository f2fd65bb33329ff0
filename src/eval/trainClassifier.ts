/**
 * `lmsteer classifier train`: dataset files (read and label-mapped by src/train/data.ts, as for steer training)
 * → lmsteer's linear TF-IDF classifier (src/eval/scorers/linearClassifier.ts), saved as DIR/classifier.json,
 * the layout `--scorer linear --scorer-model DIR` reads. A steer value > 0 is the attribute (label 1), < 0 is
 * not (label 0); 0 (e.g. SST-5's neutral class) says neither and is left out.
 */
import { makeDir } from '../formats/outDir.js';
import { join } from 'node:path';
import { loadDataset, type Dataset } from '../train/data.js';
import { LmSteerError } from '../util/errors.js';
import {
  saveLinearClassifier,
  trainLinearClassifier,
  type LabeledText,
  type LinearClassifierModel,
  type TrainLinearOptions,
} from './scorers/linearClassifier.js';
import { LINEAR_CLASSIFIER_FILE } from './scorers/registry.js';

export interface ClassifierTrainOptions extends TrainLinearOptions {
  /** Dataset files, `path` or `path:label`. */
  data: string[];
  outDir: string;
  labelMap?: string;
  textField?: string;
  labelField?: string;
}

export interface ClassifierTrainResult {
  model: LinearClassifierModel;
  path: string;
  dataset: Dataset;
  /** Examples with steer value 0, left out. */
  neutral: number;
}

export function trainClassifierFromFiles(o: ClassifierTrainOptions): ClassifierTrainResult {
  const dataset = loadDataset(o.data, { labelMap: o.labelMap, textField: o.textField, labelField: o.labelField });
  const examples: LabeledText[] = [];
  let neutral = 0;
  for (const e of dataset.examples) {
    if (e.label > 0) examples.push({ text: e.text, label: 1 });
    else if (e.label < 0) examples.push({ text: e.text, label: 0 });
    else neutral++;
  }
  if (examples.length === 0)
    throw new LmSteerError(
      'BAD_DATA',
      'every example has steer value 0 (neutral); nothing to learn',
      'check --label-map: values > 0 are the attribute, < 0 are not',
    );
  const model = trainLinearClassifier(examples, o);
  makeDir(o.outDir);
  const path = join(o.outDir, LINEAR_CLASSIFIER_FILE);
  saveLinearClassifier(path, model);
  return { model, path, dataset, neutral };
}
