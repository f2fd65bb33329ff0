/**
 * `lmsteer explain dims|text`: what a steer slot does to the vocabulary, and which parts of a text it
 * explains (src/lens/explain.ts). Prints a terminal view (coloured on a TTY), JSON, or writes an HTML report.
 */
import { Command } from 'commander';
import { writeFileAtomic } from '../formats/atomicWrite.js';
import { explainSteerDims, explainText, type TextExplanation } from '../lens/explain.js';
import { valueGrid } from '../lens/evidence.js';
import { renderLensHtml } from '../lens/html.js';
import { dimsTerminal, evidenceTerminal, sanitize, shouldColor } from '../lens/terminal.js';
import type { LoadedModel } from '../runtime/loadModel.js';
import { loadSteerFor } from '../steer/steerSet.js';
import type { Steer } from '../steer/steer.js';
import { LmSteerError } from '../util/errors.js';
import { addModelFlags, openModel, type ModelFlags } from './common.js';
import { intOption } from './options.js';

interface CommonFlags extends ModelFlags {
  steer: string;
  slot?: string;
  force?: boolean;
  json?: boolean;
  html?: string;
}
interface DimsFlags extends CommonFlags {
  top: number;
  dims: number;
  allTokens?: boolean;
}
interface TextFlags extends CommonFlags {
  text: string;
  grid: number[];
}

function addCommon(cmd: Command): Command {
  addModelFlags(cmd);
  return cmd
    .requiredOption('--steer <dir>', 'the steer folder to explain (trained for --model)')
    .option('--slot <name>', 'which slot of the steer (default: its only settable slot)')
    .option('--force', 'explain the steer even if it was trained for another base model of the same width')
    .option('--json', 'print the result as JSON')
    .option('--html <file>', 'also write a self-contained HTML report to this file');
}

export function explainCommand(): Command {
  const cmd = new Command('explain').description(
    'explain a steer: its word dimensions (dims) or the evidence for it in a text (text)',
  );
  cmd.addCommand(
    addCommon(
      new Command('dims').description('the tokens each top singular direction of the steer promotes and demotes'),
    )
      .option('--top <n>', 'tokens per direction and pole', intOption('--top', 1, 10_000), 20)
      .option('--dims <n>', 'singular directions to show', intOption('--dims', 1, 1000), 5)
      .option('--all-tokens', 'rank every token, not only word-like ones')
      .action(async (flags: DimsFlags) => runDims(flags)),
  );
  cmd.addCommand(
    addCommon(
      new Command('text').description(
        'per-token evidence for the steer slot in a text, its best spans, and the best-fitting steer value',
      ),
    )
      .requiredOption('--text <text>', 'the text to explain')
      .option('--grid <min:max:steps>', 'steer values to fit the text against', parseGrid, valueGrid())
      .action(async (flags: TextFlags) => runText(flags)),
  );
  return cmd;
}

/** `-3:3:13` → 13 values from −3 to 3. */
export function parseGrid(raw: string): number[] {
  const parts = raw.split(':').map((s) => s.trim());
  const [min, max, steps] = parts.map(Number);
  if (parts.length !== 3 || parts.some((p) => p === '') || !Number.isInteger(steps)) {
    throw new LmSteerError('BAD_ARGUMENT', `--grid must be min:max:steps, got "${raw}"`, 'e.g. --grid -3:3:13');
  }
  return valueGrid(min, max, steps);
}

async function withSteer<T>(flags: CommonFlags, fn: (model: LoadedModel, steer: Steer) => Promise<T>): Promise<T> {
  const model = await openModel(flags);
  try {
    const steer = loadSteerFor(model, flags.steer, flags.force);
    return await fn(model, steer);
  } finally {
    model.close();
  }
}

async function runDims(flags: DimsFlags): Promise<void> {
  const report = await withSteer(flags, async (model, steer) =>
    explainSteerDims(model, steer, { slot: flags.slot, top: flags.top, dims: flags.dims, allTokens: flags.allTokens }),
  );
  const title = `Steer ${report.steer}, slot ${report.slot} on ${report.model}`;
  if (flags.html)
    writeFileAtomic(
      flags.html,
      renderLensHtml({ title, dims: { heading: `Word dimensions (rank ${report.rank})`, dims: report.dims } }),
    );
  if (flags.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
    return;
  }
  const color = shouldColor(process.stdout);
  process.stdout.write(
    `${sanitize(title)}: ${report.dims.length} direction${report.dims.length === 1 ? '' : 's'}${report.wordLike ? ' (word-like tokens; --all-tokens for all)' : ''}\n`,
  );
  if (report.dims.length === 0) process.stdout.write('  the slot is zero: it does not change the model\n');
  else process.stdout.write(dimsTerminal(report.dims, { color }));
  if (flags.html) process.stdout.write(`wrote ${flags.html}\n`);
}

async function runText(flags: TextFlags): Promise<void> {
  const res = await withSteer(flags, (model, steer) =>
    explainText(model, steer, flags.text, { slot: flags.slot, grid: flags.grid }),
  );
  const ev = { tokens: res.tokens, spans: res.spans, total: res.total };
  const title = `Steer ${res.steer}, slot ${res.slot} on ${res.model}`;
  if (flags.html) {
    const labels = { positive: `likelier with ${res.slot} at +1`, negative: `likelier with ${res.slot} at −1` };
    writeFileAtomic(
      flags.html,
      renderLensHtml({
        title,
        evidence: { text: ev, labels, heading: `Evidence in the text — best fitting value ${fmtValue(res.grid.best)}` },
      }),
    );
  }
  if (flags.json) {
    process.stdout.write(JSON.stringify(res) + '\n');
    return;
  }
  const color = shouldColor(process.stdout);
  process.stdout.write(`${sanitize(title)}\n\n${evidenceTerminal(ev, { color })}\n${gridTable(res)}`);
  if (flags.html) process.stdout.write(`wrote ${flags.html}\n`);
}

const fmtValue = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));

/** The value fit as a small bar chart: one line per grid value. */
function gridTable(res: TextExplanation): string {
  const { values, meanLosses, distribution, best } = res.grid;
  const lines = values.map((v, i) => {
    const bar = '#'.repeat(Math.round(distribution[i]! * 40));
    const mark = v === best ? '  ← best' : '';
    return `  ${fmtValue(v).padStart(6)}  loss ${meanLosses[i]!.toFixed(4)}  p ${distribution[i]!.toFixed(3)} ${bar}${mark}`;
  });
  // Widen by the grid's own width on the edge side, keeping its spacing.
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const wider = res.grid.edge === 'low' ? [lo - (hi - lo), hi] : [lo, hi + (hi - lo)];
  const edge = res.grid.edge
    ? `warning: the best value ${fmtValue(best)} is the ${res.grid.edge === 'low' ? 'lowest' : 'highest'} of the grid; a value beyond it may fit the text better (try --grid ${fmtValue(wider[0]!)}:${fmtValue(wider[1]!)}:${2 * values.length - 1})\n`
    : '';
  return `Steer value that best explains the text: ${fmtValue(best)}\n${lines.join('\n')}\n${edge}`;
}
