/**
 * The `lmsteer` command line: one file per command beside this one; this file wires them and turns errors
 * into messages. User errors (LmSteerError) print message + hint and exit 2; anything else is a bug: exit 1.
 */
import '../util/ortTelemetryOff.js';
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { LmSteerError } from '../util/errors.js';
import { PACKAGE_VERSION, shippedSteerDir } from '../util/packageFiles.js';
import { classifierCommand } from './classifier.js';
import { evalCommand } from './eval.js';
import { explainCommand } from './explain.js';
import { generateCommand } from './generate.js';
import { inspectCommand } from './inspect.js';
import { terminalSafe } from './options.js';
import { reproduceCommand } from './reproduce.js';
import { serveCommand } from './serve.js';
import { steerCommand } from './steer.js';
import { trainCommand } from './train.js';
import { transferCommand } from './transfer.js';

const program = new Command('lmsteer')
  .description('Steer language models with LM-Steer (Han et al., ACL 2024) on ONNX Runtime.')
  .version(PACKAGE_VERSION)
  .showHelpAfterError()
  // Options belong to the command they follow, so a subcommand may reuse a name (`eval merge --out`).
  .enablePositionalOptions()
  .configureOutput({ outputError: (str, write) => write(str) });

// In pipeline order: use a model, learn a steer, measure it, explain it, move it, serve it.
for (const cmd of [
  generateCommand(),
  inspectCommand(),
  trainCommand(),
  steerCommand(),
  evalCommand(),
  classifierCommand(),
  reproduceCommand(),
  explainCommand(),
  transferCommand(),
  serveCommand(),
]) {
  program.addCommand(cmd);
}

// `--steer NAME` also names a steer shipped with lmsteer (steers/NAME, e.g. stories260K-sentiment), so a user
// of the installed package need not know where npm put it. A path that exists wins.
const steerPath = (s: string): string => (existsSync(s) ? s : (shippedSteerDir(s) ?? s));
program.hook('preAction', (_program, action) => {
  const v: unknown = action.getOptionValue('steer');
  if (typeof v === 'string') action.setOptionValue('steer', steerPath(v));
  else if (Array.isArray(v))
    action.setOptionValue(
      'steer',
      v.map((s) => steerPath(String(s))),
    );
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof LmSteerError) {
    process.stderr.write(`lmsteer: ${terminalSafe(err.message)}\n`);
    if (err.hint) process.stderr.write(`  hint: ${terminalSafe(err.hint)}\n`);
    process.exit(2);
  }
  if ((err as { code?: string }).code?.startsWith('commander.')) process.exit(2);
  process.stderr.write(`lmsteer: internal error (please report): ${(err as Error).stack ?? err}\n`);
  process.exit(1);
}
