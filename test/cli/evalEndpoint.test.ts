/**
 * The acceptance run, as a user types it: two `lmsteer serve` processes on loopback, `lmsteer eval
 * --endpoint` with --shard 0/2 and 1/2 (one per server, at once), `lmsteer eval merge` — the same report and
 * generations as `lmsteer eval` run locally with the same seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../../src/runtime/loadModel.js';
import { runCli } from '../helpers/cli.js';
import { makeSteer, modelPath, skip } from '../server/fixtures.js';

const BIN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'bin', 'lmsteer.mjs');

/** Start `lmsteer serve` on a free port; resolves with its URL once it listens. */
function serve(args: string[], env: NodeJS.ProcessEnv): Promise<{ url: string; child: ChildProcess }> {
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    const timer = setTimeout(() => fail(new Error(`serve did not start: ${err}`)), 120_000);
    child.stderr!.on('data', (d) => {
      err += d;
      const m = / at (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        ok({ url: m[1]!, child });
      }
    });
    child.on('exit', (code) => fail(new Error(`serve exited ${code}: ${err}`)));
  });
}

test(
  'two serve replicas + eval --endpoint --shard 0/2 and 1/2, merged = local eval (same seed)',
  { skip },
  async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), 'lmsteer-cli-endpoint-'));
    const env = { LMSTEER_CACHE: join(tmp, 'cache') };
    const children: ChildProcess[] = [];
    t.after(() => {
      for (const c of children) c.kill('SIGTERM');
      rmSync(tmp, { recursive: true, force: true });
    });
    const model = await loadModel(modelPath(), { cacheDir: false, threads: 1 });
    const steer = makeSteer(model, tmp, 'sentiment', 9);
    model.close();
    const prompts = join(tmp, 'prompts.txt');
    writeFileSync(
      prompts,
      ['Once upon a time', 'The dog', 'Mia found a box.', 'It was late', 'Ben ran'].join('\n') + '\n',
    );

    const servers = await Promise.all([0, 1].map(() => serve(['--model', modelPath(), '--steer', steer], env)));
    children.push(...servers.map((s) => s.child));
    const common = ['--model', modelPath(), '--steer', steer, '--prompts', prompts, '--samples', '2', '-n', '6'];
    const more = ['--sweep', 'sentiment=-5,5', '--seed', '11', '--top-p', '0.9'];
    const [local, ...shards] = await Promise.all([
      runCli(['eval', ...common, ...more, '--out', join(tmp, 'local')], { env }),
      ...[0, 1].map((i) =>
        runCli(
          ['eval', ...common, ...more, '--out', join(tmp, `s${i}`), '--endpoint', servers[i]!.url, '--shard', `${i}/2`],
          {
            env,
          },
        ),
      ),
    ]);
    for (const r of [local!, ...shards]) assert.equal(r.code, 0, r.stderr);
    const merge = await runCli(['eval', 'merge', '--out', join(tmp, 'merged'), join(tmp, 's0'), join(tmp, 's1')], {
      env,
    });
    assert.equal(merge.code, 0, merge.stderr);
    assert.match(merge.stdout, /merged 2 shards: 5 prompts × 3 settings/);

    const report = (dir: string) => JSON.parse(readFileSync(join(tmp, dir, 'report.json'), 'utf8'));
    const a = report('local');
    const b = report('merged');
    assert.deepEqual(b.rows, a.rows);
    assert.match(b.config.generation, /lmsteer serve/);
    delete b.config.generation;
    assert.deepEqual(b.config, a.config);
    for (const dir of ['unsteered', 'sentiment=-5', 'sentiment=5'])
      assert.equal(
        readFileSync(join(tmp, 'merged', dir, 'generations.jsonl'), 'utf8'),
        readFileSync(join(tmp, 'local', dir, 'generations.jsonl'), 'utf8'),
      );
    assert.equal(report('s0').rows[0].prompts, 3, 'shard 0 holds prompts 0, 2, 4');
  },
);
