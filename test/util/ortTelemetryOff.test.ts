/**
 * ONNX Runtime's telemetry is off in every lmsteer process: with it on, a long command line crashed the CLI
 * with SIGSEGV (exit 139) at session creation, and each process wrote files under ~/.cache/Microsoft and /tmp.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

test(
  'a 100 KB command line runs and leaves no telemetry files',
  { skip: skipUnlessShared('models/stories260K/hf') },
  async () => {
    const home = mkdtempSync(join(tmpdir(), 'lmsteer-home-'));
    // The parent's own setting must not leak in: the CLI has to turn telemetry off by itself.
    // (runCli adds process.env; spawn drops the variables set to undefined)
    const env = {
      HOME: home,
      LMSTEER_CACHE: join(home, 'cache'),
      ORT_DISABLE_TELEMETRY: undefined,
      XDG_CACHE_HOME: undefined,
    };
    const longStop = 'x'.repeat(100_000); // harmless: a stop string that never appears
    const started = Date.now() - 1000; // filesystem timestamps may lag the clock a little
    const r = await runCli(
      [
        'generate',
        '--model',
        sharedPath('models/stories260K/hf')!,
        '--prompt',
        'Once',
        '-n',
        '3',
        '-t',
        '0',
        '--stop',
        longStop,
      ],
      { env },
    );
    assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
    assert.ok(r.stdout.startsWith('Once'), r.stdout);
    assert.deepEqual(
      readdirSync(home).filter((f) => f !== 'cache'),
      [],
      'nothing but the graph cache under HOME',
    );
    // A file of that name from before this run (another process with the same pid) does not count.
    const log = `/tmp/mat-debug-${r.pid}.log`;
    assert.ok(!existsSync(log) || statSync(log).mtimeMs < started, `${log} was written by this run`);
  },
);
