/** `lmsteer reproduce detox|sentiment`: train + evaluate as the paper does, in one command (src/eval/reproduce.ts). */
import { Command } from 'commander';
import { reproduce, SIZES, type Size, type Task } from '../eval/reproduce.js';
import { LmSteerError } from '../util/errors.js';
import { addPrecisionFlags, modelLoadOptions, type PrecisionFlags } from './common.js';
import { collect, floatOption, intOption } from './options.js';

interface ReproduceFlags extends PrecisionFlags {
  size: string;
  model?: string;
  pplModel?: string;
  data: string[];
  labelMap?: string;
  prompts: string[];
  dataDir?: string;
  out?: string;
  scorer?: string;
  scorerModel?: string;
  scorerLabel?: string;
  value: number;
  steps?: number;
  limit?: number;
  samples?: number;
  batchRows?: number;
  threads?: number;
  offline?: boolean;
  progress?: boolean;
  overwrite?: boolean;
}

export function reproduceCommand(): Command {
  const cmd = new Command('reproduce')
    .description("the paper's pipeline in one command: base model → steer training → evaluation → table")
    .argument('<task>', 'detox or sentiment')
    .option(
      '--size <size>',
      `tiny (${SIZES.tiny.model}, minutes), small (${SIZES.small.model}) or paper (${SIZES.paper.model}, the published setup)`,
      'tiny',
    )
    .option('-m, --model <spec>', 'base model (folder, .bin or hub id); default by --size')
    .option('--ppl-model <spec>', 'perplexity evaluator (default: gpt2-xl for --size paper, else the base model)')
    .option(
      '--data-dir <dir>',
      "a data folder laid out like lmsteer's shared data (sentiment/, toxicity/, prompts/)",
      process.env.LMSTEER_DATA,
    )
    .option('--data <file[:label]>', "training file instead of the data folder's (repeatable)", collect, [])
    .option('--label-map <map>', 'label map for --data (binary, sst5, …)')
    .option(
      '--prompts <name=file>',
      "prompt file instead of the data folder's: detox: FILE; sentiment: neutral=FILE, positive=FILE, negative=FILE (repeatable)",
      collect,
      [],
    )
    .option('-o, --out <dir>', 'output folder (steer/, eval/, report.md)')
    .option(
      '--scorer <name>',
      'attribute scorer (default: detox offensive-linear or perspective; sentiment vader, or onnx-classifier with --scorer-model)',
    )
    .option('--scorer-model <path>', "the scorer's model file or folder")
    .option('--scorer-label <label>', 'onnx-classifier: the label to score')
    .option('--value <v>', 'steer value of the steered settings', floatOption('--value', -1e6, 1e6), 5)
    .option('--steps <n>', 'training steps (default by --size)', intOption('--steps', 1, 1_000_000_000))
    .option(
      '--limit <n>',
      'prompts per prompt file (default by --size)',
      intOption('--limit', 1, Number.MAX_SAFE_INTEGER),
    )
    .option('--samples <n>', 'samples per prompt (default by --size)', intOption('--samples', 1, 10_000))
    .option('--batch-rows <n>', 'rows per decoder batch while generating', intOption('--batch-rows', 1, 100_000))
    .option('--threads <n>', 'CPU threads for ONNX Runtime', intOption('--threads', 1, 1024))
    .option('--offline', 'never touch the network')
    .option('--progress', 'print progress lines even when stderr is not a terminal')
    .option('--overwrite', 'discard evaluation results made with another configuration')
    .action(async (task: string, flags: ReproduceFlags) => run(task, flags));
  return addPrecisionFlags(cmd);
}

async function run(task: string, flags: ReproduceFlags): Promise<void> {
  if (task !== 'detox' && task !== 'sentiment')
    throw new LmSteerError('BAD_ARGUMENT', `unknown task "${task}"`, 'use detox or sentiment');
  if (!(flags.size in SIZES))
    throw new LmSteerError('BAD_ARGUMENT', `--size "${flags.size}" is not tiny, small or paper`);
  if (!flags.out) throw new LmSteerError('BAD_ARGUMENT', 'give --out DIR', `e.g. --out runs/${task}-${flags.size}`);
  const r = await reproduce({
    task: task as Task,
    size: flags.size as Size,
    outDir: flags.out,
    model: flags.model,
    pplModel: flags.pplModel,
    data: flags.data,
    labelMap: flags.labelMap,
    prompts: flags.prompts,
    dataDir: flags.dataDir,
    scorer: flags.scorer,
    scorerModel: flags.scorerModel,
    scorerLabel: flags.scorerLabel,
    value: flags.value,
    steps: flags.steps,
    promptLimit: flags.limit,
    samples: flags.samples,
    batchRows: flags.batchRows,
    threads: flags.threads,
    offline: flags.offline,
    load: modelLoadOptions(flags),
    progress: flags.progress,
    overwrite: flags.overwrite,
  });
  process.stdout.write(`${r.reportMd}\n`);
  process.stdout.write(`training ${r.seconds.train.toFixed(1)} s, evaluation ${r.seconds.eval.toFixed(1)} s\n`);
}
