/** `lmsteer transfer`: move a steer from the model it was trained for to another one (src/transfer/run.ts). */
import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command } from 'commander';
import type { LoadedModel } from '../runtime/loadModel.js';
import { saveSteer } from '../steer/steerFile.js';
import { loadSteerFor } from '../steer/steerSet.js';
import { transferSteerBetweenModels } from '../transfer/run.js';
import { LmSteerError } from '../util/errors.js';
import { addPrecisionFlags, openModel, type PrecisionFlags } from './common.js';
import { intOption } from './options.js';

interface TransferFlags extends PrecisionFlags {
  steer: string;
  from: string;
  to: string;
  out: string;
  normalize: boolean;
  refine: number;
  maxTrainTokens?: number;
  force?: boolean;
  json?: boolean;
  threads?: number;
  offline?: boolean;
}

export function transferCommand(): Command {
  const cmd = new Command('transfer')
    .description(
      'move a steer to another model through a linear map between their output embeddings, fit on the shared vocabulary',
    )
    .requiredOption('--steer <dir>', 'the steer folder to move (trained for --from)')
    .requiredOption('--from <model>', 'the model the steer was trained for (folder, llama2.c .bin or hub id)')
    .requiredOption('--to <model>', 'the model to move it to')
    .requiredOption('--out <dir>', 'where to write the new steer folder (must not hold a steer yet)')
    .option('--no-normalize', "keep the map's rows as fitted (the reference scales each row to unit norm)")
    .option(
      '--refine <n>',
      'iterative-refinement steps of the least-squares fit (helps ill-conditioned embeddings)',
      intOption('--refine', 0, 100),
      0,
    )
    .option(
      '--max-train-tokens <n>',
      'fit on at most this many shared tokens (the reference uses 4000)',
      intOption('--max-train-tokens', 1),
    )
    .option('--force', 'transfer even if the steer was trained for another model of the same width as --from')
    .option('--json', 'print the transfer report as JSON')
    .option('--threads <n>', 'CPU threads for ONNX Runtime (default: all cores)', intOption('--threads', 1, 1024))
    .option('--offline', 'never touch the network; use the local Hugging Face cache only')
    .action(async (flags: TransferFlags) => run(flags));
  return addPrecisionFlags(cmd);
}

async function run(flags: TransferFlags): Promise<void> {
  const out = resolve(flags.out);
  if (resolve(flags.steer) === out)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      '--out is the source steer folder',
      'write the transferred steer to a new folder',
    );
  if (existsSync(out) && readdirSync(out).length > 0) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `--out ${flags.out} already exists and is not empty`,
      'choose a new folder, or delete that one first',
    );
  }
  const opened: LoadedModel[] = [];
  try {
    const open = async (spec: string) => {
      const m = await openModel({ ...flags, model: spec });
      opened.push(m);
      return m;
    };
    const from = await open(flags.from);
    const steer = loadSteerFor(from, flags.steer, flags.force);
    const to = await open(flags.to);
    const res = transferSteerBetweenModels(steer, from, to, {
      normalizeRows: flags.normalize,
      refineSteps: flags.refine,
      maxTrainTokens: flags.maxTrainTokens,
      force: flags.force,
      sourcePath: resolve(flags.steer),
    });
    saveSteer(out, res.steer);
    const r = res.report;
    if (flags.json) {
      process.stdout.write(JSON.stringify({ out, steer: res.steer.config.name ?? null, ...r }) + '\n');
      return;
    }
    const err = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(2)}%`);
    process.stdout.write(
      `transferred steer ${res.steer.config.name ?? flags.steer} from ${r.from.id} to ${r.to.id}\n` +
        `  shared tokens: ${r.sharedTokens}\n` +
        `  embedding-map error ‖E_to·H − E_from‖/‖E_from‖: held-out ${err(r.heldOutError)}, train ${err(r.trainError)}\n` +
        `  rows normalised: ${r.normalizeRows ? 'yes' : 'no'}\n` +
        `wrote ${out}\n`,
    );
  } finally {
    for (const m of opened) m.close();
  }
}
