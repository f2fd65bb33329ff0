/** `lmsteer train`: learn a steer from labelled texts (src/train/run.ts); Ctrl-C saves, rerunning resumes. */
import { Command } from 'commander';
import { runTraining } from '../train/run.js';
import { STEER_LIMITS } from '../steer/steer.js';
import { LmSteerError } from '../util/errors.js';
import { addModelFlags, modelLoadOptions, type ModelFlags } from './common.js';
import { collect, floatOption, intOption } from './options.js';

interface TrainFlags extends ModelFlags {
  data: string[];
  out?: string;
  textField?: string;
  labelField?: string;
  labelMap: string;
  balance?: boolean;
  slot: string;
  dummy: boolean;
  rank?: number;
  eps?: number;
  initStd?: number;
  lr?: number;
  reg?: number;
  batchSize?: number;
  maxLength?: number;
  steps?: number;
  seed?: number;
  includePadding?: boolean;
  checkpointEvery?: number;
  fp16Cache?: boolean;
  limit?: number;
  dev: string[];
  holdout?: number;
  cacheDir?: string;
  cache: boolean;
  overwrite?: boolean;
  progress?: boolean;
}

export function trainCommand(): Command {
  const cmd = new Command('train').description(
    'train a steer on labelled texts (defaults follow the LM-Steer reference training)',
  );
  addModelFlags(cmd);
  return cmd
    .option(
      '--data <file[:label]>',
      'a dataset file (.jsonl, .csv, .tsv, .txt); a trailing :number gives all its texts that steer value; repeatable',
      collect,
      [],
    )
    .option('-o, --out <dir>', 'the steer folder to write (steer.json, steer.safetensors, loss.svg, checkpoint/)')
    .option('--text-field <name>', 'text field (JSONL key, CSV/TSV column)')
    .option('--label-field <name>', 'label field (JSONL key, CSV/TSV column)')
    .option(
      '--label-map <map>',
      'labels → steer values: binary, sst5, sst5-0, sst5-1, identity, or "a=1,b=-1"',
      'binary',
    )
    .option('--balance', 'downsample every steer value to as many examples as the rarest one')
    .option('--slot <name>', 'name of the trained value (used as --value NAME=v)', 'value')
    .option('--no-dummy', "leave out the reference's dummy slot (held at 1)")
    .option(
      '--rank <r>',
      'rank of P1/P2, at most the hidden size (default min(1000, hidden size))',
      intOption('--rank', 1, STEER_LIMITS.rank),
    )
    .option(
      '--eps <e>',
      'steer scale epsilon (default 1e-3)',
      floatOption('--eps', -STEER_LIMITS.eps, STEER_LIMITS.eps),
    )
    .option('--init-std <s>', 'std of the random init of P1/P2 (default 0.01)', floatOption('--init-std', 0, 1e6))
    .option('--lr <lr>', 'Adam learning rate (default 0.01)', floatOption('--lr', 0, 1e6))
    .option('--reg <r>', 'weight of ‖P1‖² + ‖P2‖² in the loss (default 0)', floatOption('--reg', 0, 1e12))
    .option('--batch-size <b>', 'texts per step (default 32)', intOption('--batch-size', 1, 65_536))
    .option('--max-length <n>', 'tokens kept per text (default 256)', intOption('--max-length', 1, 1_000_000))
    .option('--steps <n>', 'training steps (default 1000)', intOption('--steps', 1, 1_000_000_000))
    .option(
      '--seed <s>',
      'seed of init, batch order, balancing and --limit (default 0)',
      intOption('--seed', 0, 2 ** 31 - 1),
    )
    .option(
      '--include-padding',
      "the reference's loss: every batch padded with EOS to its longest text, all B·(T−1) positions counted, pad states under the attention mask",
    )
    .option(
      '--checkpoint-every <n>',
      'steps between checkpoints (default 50)',
      intOption('--checkpoint-every', 1, 1_000_000_000),
    )
    .option('--fp16-cache', 'store cached hidden states as fp16 (half the disk)')
    .option(
      '--limit <n>',
      'train on a seeded random subset of n examples (quick runs)',
      intOption('--limit', 1, Number.MAX_SAFE_INTEGER),
    )
    .option(
      '--dev <file[:label]>',
      'held-out data (read like --data): after training, print the loss with true labels, flipped labels and the steer off; repeatable',
      collect,
      [],
    )
    .option(
      '--holdout <n>',
      'hold out n training examples (seeded) for that diagnostic instead of --dev',
      intOption('--holdout', 1, Number.MAX_SAFE_INTEGER),
    )
    .option('--cache-dir <dir>', 'hidden-state cache folder (default: <lmsteer cache>/hidden)')
    .option('--no-cache', 'keep hidden states in memory only (nothing written, nothing reused)')
    .option('--overwrite', 'replace a finished steer in --out')
    .option('--progress', 'print progress lines even when stderr is not a terminal')
    .action(async (flags: TrainFlags) => run(flags));
}

async function run(flags: TrainFlags): Promise<void> {
  if (flags.data.length === 0)
    throw usage(
      'give at least one --data FILE[:label]',
      'e.g. --data sst_train.txt --label-map sst5, or --data toxic.txt:-1 --data clean.txt:1',
    );
  if (!flags.out) throw usage('give --out DIR, the steer folder to write', 'e.g. --out steers/sentiment');
  const r = await runTraining({
    model: flags.model,
    data: flags.data,
    outDir: flags.out,
    textField: flags.textField,
    labelField: flags.labelField,
    labelMap: flags.labelMap,
    balance: flags.balance,
    limit: flags.limit,
    dev: flags.dev,
    holdout: flags.holdout,
    train: {
      slotName: flags.slot,
      dummySlot: flags.dummy,
      rank: flags.rank,
      eps: flags.eps,
      initStd: flags.initStd,
      lr: flags.lr,
      regularization: flags.reg,
      batchSize: flags.batchSize,
      maxLength: flags.maxLength,
      steps: flags.steps,
      seed: flags.seed,
      includePadding: flags.includePadding,
      checkpointEvery: flags.checkpointEvery,
      fp16Cache: flags.fp16Cache,
      overwrite: flags.overwrite,
    },
    cacheDir: flags.cache ? flags.cacheDir : false,
    threads: flags.threads,
    offline: flags.offline,
    load: modelLoadOptions(flags),
    progress: flags.progress ? true : undefined,
  });
  const rate = (tokens: number, s: number) => (s > 0 ? `${Math.round(tokens / s)} tokens/s` : '—');
  const lines = [
    `trained ${r.result.history.length} steps${r.result.resumedFrom > 0 ? ` (resumed from step ${r.result.resumedFrom})` : ''}`,
    `  final loss ${fmt(r.finalLoss)} (mean of the last ${Math.max(1, Math.round(r.result.history.length / 10))} steps: ${fmt(r.recentLoss)})`,
  ];
  if (r.extraction.texts > 0)
    lines.push(
      `  extraction: ${r.extraction.texts} texts, ${r.extraction.tokens} tokens in ${r.extraction.seconds.toFixed(1)} s (${rate(r.extraction.tokens, r.extraction.seconds)})`,
    );
  if (r.training.steps > 0)
    lines.push(
      `  this run: ${r.training.steps} steps, ${r.training.tokens} loss tokens in ${r.training.seconds.toFixed(1)} s (${rate(r.training.tokens, r.training.seconds)})`,
    );
  lines.push('wrote:', ...r.files.map((f) => `  ${f}`));
  if (r.cacheFolder) lines.push(`hidden-state cache: ${r.cacheFolder}`);
  const slot = r.result.steer.config.slots[0]!.name;
  lines.push(
    `try: lmsteer generate --model ${quote(flags.model)} --steer ${quote(flags.out)} --value ${slot}=5 --prompt "…"`,
  );
  process.stdout.write(lines.join('\n') + '\n');
}

function fmt(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(4);
}

function quote(s: string): string {
  return /^[\w./:@=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function usage(message: string, hint: string): LmSteerError {
  return new LmSteerError('BAD_ARGUMENT', message, hint);
}
