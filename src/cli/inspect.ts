/**
 * `lmsteer inspect`: what the model (and a steer) does at each position of a text: the token, its
 * log-probability given what precedes it, and the five most likely next tokens; with --json also the last
 * position's full hidden state and logits.
 */
import { Command } from 'commander';
import { inspectIds } from '../runtime/inspect.js';
import { LmSteerError } from '../util/errors.js';
import { addModelFlags, addSteerFlags, openModel, openSteers, type ModelFlags, type SteerFlags } from './common.js';
import { parseIds } from './options.js';

interface InspectFlags extends ModelFlags, SteerFlags {
  prompt?: string;
  ids?: string;
  json?: boolean;
  top: number;
}

export function inspectCommand(): Command {
  const cmd = new Command('inspect').description(
    'per-position token log-probabilities and top next tokens (optionally steered)',
  );
  addModelFlags(cmd);
  addSteerFlags(cmd);
  return cmd
    .option('-p, --prompt <text>', 'the text to inspect')
    .option('--ids <ids>', 'comma-separated token ids instead of text')
    .option('--json', "print JSON, including the last position's full hidden state and logits")
    .action(async (flags: InspectFlags) => run({ ...flags, top: 5 }));
}

async function run(flags: InspectFlags): Promise<void> {
  if ((flags.prompt === undefined) === (flags.ids === undefined)) {
    throw new LmSteerError('BAD_ARGUMENT', 'give exactly one of --prompt TEXT or --ids 1,2,3');
  }
  const model = await openModel(flags);
  try {
    const ids = flags.ids !== undefined ? parseIds(flags.ids) : model.tokenizer.encode(flags.prompt!);
    if (ids.length === 0)
      throw new LmSteerError('BAD_ARGUMENT', 'the prompt encodes to no tokens', 'give a non-empty --prompt');
    const { steers } = openSteers(model, flags);
    const { tokens: rows, hidden, logits } = await inspectIds(model, ids, { steers, top: flags.top });
    if (flags.json) {
      process.stdout.write(
        JSON.stringify({
          model: model.id,
          steer: flags.steer.length ? { steers: flags.steer, values: flags.value } : null,
          tokens: rows,
          hidden: Array.from(hidden),
          logits: Array.from(logits),
        }) + '\n',
      );
      return;
    }
    const show = (s: string) => JSON.stringify(s);
    for (const r of rows) {
      const lp = r.logprob === null ? '      —' : r.logprob.toFixed(3).padStart(7);
      const next = r.top.map((c) => `${show(c.token)} ${Math.exp(c.logprob).toFixed(3)}`).join('  ');
      process.stdout.write(`${String(r.position).padStart(4)} ${show(r.token).padEnd(16)} ${lp}   next: ${next}\n`);
    }
  } finally {
    model.close();
  }
}
