/** `lmsteer classifier train`: a linear TF-IDF attribute classifier for `lmsteer eval --scorer linear`. */
import { Command } from 'commander';
import { trainClassifierFromFiles } from '../eval/trainClassifier.js';
import { describeDataset } from '../train/data.js';
import { LmSteerError } from '../util/errors.js';
import { collect, floatOption, intOption } from './options.js';

interface ClassifierTrainFlags {
  data: string[];
  out?: string;
  labelMap: string;
  textField?: string;
  labelField?: string;
  attribute: string;
  heldOut: number;
  seed: number;
  l2?: number;
  minDf: number;
  maxFeatures?: number;
}

export function classifierCommand(): Command {
  const cmd = new Command('classifier').description('attribute classifiers for evaluation');
  cmd
    .command('train')
    .description(
      'train a TF-IDF logistic-regression classifier (steer value > 0 = the attribute, < 0 = not, 0 left out)',
    )
    .option(
      '--data <file[:label]>',
      'a dataset file (.jsonl, .csv, .tsv, .txt); a trailing :number labels all its texts; repeatable',
      collect,
      [],
    )
    .option('-o, --out <dir>', 'folder to write classifier.json into (use it as --scorer linear --scorer-model DIR)')
    .option('--label-map <map>', 'labels → values: binary, sst5, sst5-0, sst5-1, identity, or "a=1,b=-1"', 'binary')
    .option('--text-field <name>', 'text field (JSONL key, CSV/TSV column)')
    .option('--label-field <name>', 'label field (JSONL key, CSV/TSV column)')
    .option(
      '--attribute <name>',
      'what a score > 0.5 means (toxicity makes eval report toxicity metrics)',
      'positive-sentiment',
    )
    .option(
      '--held-out <fraction>',
      'share of examples held out to measure accuracy',
      floatOption('--held-out', 0, 0.99),
      0.1,
    )
    .option('--seed <s>', 'seed of the held-out split', intOption('--seed', 0, 2 ** 31 - 1), 0)
    .option('--l2 <w>', 'L2 penalty (default 1/(2·n_train), sklearn C = 2)', floatOption('--l2', 0, 1e12))
    .option('--min-df <n>', 'keep n-grams seen in at least n training texts', intOption('--min-df', 1, 1_000_000), 2)
    .option('--max-features <n>', 'keep at most n n-grams (most frequent)', intOption('--max-features', 1, 100_000_000))
    .action((flags: ClassifierTrainFlags) => train(flags));
  return cmd;
}

function train(flags: ClassifierTrainFlags): void {
  if (flags.data.length === 0)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'give at least one --data FILE[:label]',
      'e.g. --data sst_train.txt --label-map sst5, or --data toxic.txt:1 --data clean.txt:-1 --attribute toxicity',
    );
  if (!flags.out) throw new LmSteerError('BAD_ARGUMENT', 'give --out DIR', 'e.g. --out classifiers/sentiment');
  const r = trainClassifierFromFiles({
    data: flags.data,
    outDir: flags.out,
    labelMap: flags.labelMap,
    textField: flags.textField,
    labelField: flags.labelField,
    attribute: flags.attribute,
    heldOutFraction: flags.heldOut,
    seed: flags.seed,
    l2: flags.l2,
    minDf: flags.minDf,
    maxFeatures: flags.maxFeatures,
  });
  const t = r.model.training;
  process.stderr.write(`${describeDataset(r.dataset)}\n`);
  if (r.neutral) process.stderr.write(`  ${r.neutral} examples with value 0 left out\n`);
  const held =
    t.heldOutAccuracy === null
      ? 'no held-out examples'
      : `held-out accuracy ${(100 * t.heldOutAccuracy).toFixed(2)}% (${t.heldOutExamples} examples)`;
  process.stdout.write(
    `${held}; train accuracy ${(100 * t.trainAccuracy).toFixed(2)}% (${t.trainExamples}); ${r.model.vocabulary.length} features; attribute ${r.model.attribute}\n`,
  );
  process.stdout.write(`saved ${r.path}\n`);
}
