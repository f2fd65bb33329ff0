import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { batchAt, buildLossBatch, initProjectors, trainingValues, trainSteer } from '../../src/train/trainLoop.js';
import { packScale, packSteers, unpackSteer } from '../../src/steer/pack.js';
import type { SteerConfig } from '../../src/steer/steer.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { loadSteer } from '../../src/steer/steerFile.js';
import { BASE_SLOT } from '../../src/steer/steer.js';
import { LmSteerError } from '../../src/util/errors.js';
import { tensor } from '../../src/util/tensor.js';
import { tinyDeps, tinyTrainOptions } from './fixtures/tinyTraining.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'lmsteer-train-'));

test('batchAt: every epoch is a permutation, the last batch is short, same seed same batches', () => {
  const n = 10;
  const seen: number[] = [];
  for (let s = 0; s < 3; s++) seen.push(...batchAt(n, 4, 0, s).indices);
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    [...Array(n).keys()],
  );
  assert.equal(batchAt(n, 4, 0, 2).indices.length, 2);
  assert.deepEqual(batchAt(n, 4, 0, 3).sampler, { seed: 0, epoch: 1, batchInEpoch: 0 });
  assert.deepEqual(batchAt(n, 4, 5, 7).indices, batchAt(n, 4, 5, 7).indices);
  assert.notDeepEqual(
    [0, 1, 2].map((s) => batchAt(n, 4, 0, s).indices),
    [3, 4, 5].map((s) => batchAt(n, 4, 0, s).indices),
  );
});

test('unpack inverts packSteers and seeded init with the asked std', () => {
  const { p1, p2 } = initProjectors(2, 5, 3, 0.01, 0);
  const again = initProjectors(2, 5, 3, 0.01, 0);
  assert.deepEqual(p1.data, again.p1.data);
  const config = {
    rank: 3,
    eps: 1,
    slots: [
      { name: 'a', defaultValue: 0 },
      { name: 'b', defaultValue: 0 },
    ],
  } as SteerConfig;
  const packed = packSteers([{ config, p1, p2 }]);
  assert.deepEqual(packed.p1.shape, [5, 6]);
  const back = unpackSteer(packed.p1, packed.p2t, 2);
  assert.deepEqual(back.p1.data, p1.data);
  assert.deepEqual(back.p2.data, p2.data);
  const big = initProjectors(1, 100, 100, 0.01, 1).p1.data;
  const sd = Math.sqrt(big.reduce((a, x) => a + x * x, 0) / big.length);
  assert.ok(Math.abs(sd - 0.01) < 0.0005, `std ${sd}`);
});

test('buildLossBatch: real next tokens only by default; includePadding pads to the longest row with pad rows', () => {
  const d = 2;
  // Hidden row t of a text holds [id, −id] for real tokens and [100 + t, 0] for pad rows.
  const entry = (ids: number[], rows = ids.length) => ({
    ids,
    hidden: tensor(
      [rows, d],
      Float32Array.from({ length: rows * d }, (_, k) => {
        const t = Math.floor(k / d);
        if (t >= ids.length) return k % d ? 0 : 100 + t;
        return k % d ? -ids[t]! : ids[t]!;
      }),
    ),
  });
  const config = {
    rank: 2,
    eps: 0.5,
    slots: [
      { name: 'v', defaultValue: 0 },
      { name: BASE_SLOT, defaultValue: 1 },
    ],
  } as SteerConfig;
  const layout = packSteers([{ config, p1: tensor([2, d, 2]), p2: tensor([2, d, 2]) }]);
  const scale = packScale(layout, [trainingValues(-1, true), trainingValues(1, true)]);
  const cfg = { includePadding: false, padId: null };
  const b = buildLossBatch([entry([5, 6, 7]), entry([8, 9])], scale, cfg);
  assert.deepEqual([...b.targets], [6, 7, 9]);
  assert.deepEqual([...b.hidden.data], [5, -5, 6, -6, 8, -8]);
  assert.deepEqual(b.scale.shape, [3, 4]);
  assert.deepEqual([...b.scale.data.subarray(0, 4)], [-0.5, -0.5, 0.5, 0.5]); // label slot, then dummy slot at 1
  assert.deepEqual([...b.scale.data.subarray(8, 12)], [0.5, 0.5, 0.5, 0.5]);
  const withPads = [entry([5, 6, 7, 4]), entry([8, 9], 4)];
  const p = buildLossBatch(withPads, scale, { includePadding: true, padId: 0 });
  assert.deepEqual([...p.targets], [6, 7, 4, 9, 0, 0]);
  // Row 2: predicting the first pad from the last real token, then from the pad rows at positions 2.
  assert.deepEqual([...p.hidden.data.subarray(6, 12)], [8, -8, 9, -9, 102, 0]);
  assert.equal(
    p.weight.reduce((a, x) => a + x, 0),
    6,
  );
  assert.throws(
    () => buildLossBatch([entry([5, 6, 7, 4]), entry([8, 9])], scale, { includePadding: true, padId: 0 }),
    /internal/,
  );
});

test('training writes a loadable steer, a loss plot and a checkpoint; the loss goes down', async () => {
  const out = tmp();
  const r = await trainSteer(tinyTrainOptions(out, { steps: 30, checkpointEvery: 10 }), tinyDeps());
  assert.equal(r.history.length, 30);
  const first = r.history.slice(0, 5).reduce((a, p) => a + p.loss, 0);
  const last = r.history.slice(-5).reduce((a, p) => a + p.loss, 0);
  assert.ok(last < first, `loss ${first / 5} → ${last / 5}`);
  const steer = loadSteer(out);
  assert.deepEqual(
    steer.config.slots.map((s) => s.name),
    ['sentiment', BASE_SLOT],
  );
  assert.deepEqual(steer.p1.shape, [2, 8, 3]);
  assert.deepEqual(steer.p1.data, r.p1.data);
  assert.equal(steer.config.training?.steps, 30);
  assert.match(readFileSync(join(out, 'loss.svg'), 'utf8'), /^<svg/);
  assert.equal(loadCheckpoint(out)!.step, 30);
});

test('a stopped run resumes to exactly the result of an uninterrupted one', async () => {
  const full = await trainSteer(tinyTrainOptions(tmp()), tinyDeps());
  const out = tmp();
  const ctl = new AbortController();
  await assert.rejects(
    trainSteer(tinyTrainOptions(out), {
      ...tinyDeps(),
      signal: ctl.signal,
      onStep: (p) => p.step === 7 && ctl.abort(),
    }),
    (e: unknown) =>
      e instanceof LmSteerError &&
      e.code === 'CANCELLED' &&
      /step 7 of 12/.test(e.message) &&
      e.hint!.includes('again'),
  );
  assert.equal(loadCheckpoint(out)!.step, 7);
  assert.ok(!existsSync(join(out, 'steer.json')));
  const resumed = await trainSteer(tinyTrainOptions(out), tinyDeps());
  assert.equal(resumed.resumedFrom, 7);
  assert.deepEqual(resumed.p1.data, full.p1.data);
  assert.deepEqual(resumed.p2.data, full.p2.data);
  assert.deepEqual(resumed.history, full.history);
  // A finished run rerun is a no-op that returns the same steer.
  const again = await trainSteer(tinyTrainOptions(out), tinyDeps());
  assert.equal(again.resumedFrom, 12);
  assert.deepEqual(again.p1.data, full.p1.data);
});

test('resuming with options that matter changed is refused, naming them', async () => {
  const out = tmp();
  await trainSteer(tinyTrainOptions(out, { steps: 2 }), tinyDeps());
  await assert.rejects(
    trainSteer(tinyTrainOptions(out, { steps: 4, lr: 0.5, batchSize: 2 }), tinyDeps()),
    (e: unknown) =>
      e instanceof LmSteerError &&
      e.code === 'BAD_ARGUMENT' &&
      /lr: 0\.02 → 0\.5/.test(e.message) &&
      /batchSize/.test(e.message),
  );
  // More steps alone is fine: training continues.
  const more = await trainSteer(tinyTrainOptions(out, { steps: 4 }), tinyDeps());
  assert.equal(more.resumedFrom, 2);
  assert.equal(more.history.length, 4);
  await assert.rejects(trainSteer(tinyTrainOptions(out, { steps: 3 }), tinyDeps()), /already at step 4/);
});

test('refuses to train over a steer it did not make', async () => {
  const out = tmp();
  await trainSteer(tinyTrainOptions(out, { steps: 1 }), tinyDeps());
  const other = tmp();
  writeFileSync(join(other, 'steer.json'), '{}');
  await assert.rejects(trainSteer(tinyTrainOptions(other, { steps: 1 }), tinyDeps()), /already holds a steer/);
});

const child = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'trainChild.ts');
function runChild(
  args: string[],
  kill?: { afterStep: number; signal: NodeJS.Signals },
): Promise<{ stdout: string; signal: NodeJS.Signals | null; code: number | null }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let sent = false;
    p.stdout.on('data', (b) => {
      stdout += b;
      if (kill && !sent && stdout.includes(`step ${kill.afterStep}\n`)) {
        sent = true;
        p.kill(kill.signal);
      }
    });
    p.stderr.on('data', (b) => (stderr += b));
    p.on('error', reject);
    p.on('close', (code, signal) =>
      code !== 0 && !kill
        ? reject(new Error(`child failed (${code ?? signal}): ${stdout}${stderr}`))
        : resolve({ stdout, signal, code }),
    );
  });
}

test('a training process killed with SIGKILL resumes from its last checkpoint and completes', async () => {
  const out = tmp();
  const cache = tmp();
  const killed = await runChild([out, cache], { afterStep: 5, signal: 'SIGKILL' });
  assert.equal(killed.signal, 'SIGKILL');
  assert.ok(!killed.stdout.includes('done'));
  const ck = loadCheckpoint(out)!;
  assert.ok(ck.step >= 4 && ck.step < 12, `checkpoint at ${ck.step}`);
  const rerun = await runChild([out, cache]);
  assert.match(rerun.stdout, new RegExp(`resuming from the checkpoint at step ${ck.step} of 12`));
  assert.match(rerun.stdout, new RegExp(`done 12 resumed ${ck.step}`));
  const steer = loadSteer(out);
  const reference = await trainSteer(tinyTrainOptions(tmp()), tinyDeps());
  assert.deepEqual(steer.p1.data, reference.p1.data);
  assert.deepEqual(steer.p2.data, reference.p2.data);
});

test('SIGINT writes a checkpoint at the current step and exits cleanly; the rerun finishes', async () => {
  const out = tmp();
  const stopped = await runChild([out], { afterStep: 3, signal: 'SIGINT' });
  assert.equal(stopped.code, 2);
  const m = /error training interrupted \(SIGINT\) at step (\d+) of 12/.exec(stopped.stdout);
  assert.ok(m, stopped.stdout);
  assert.equal(loadCheckpoint(out)!.step, Number(m[1]));
  const rerun = await runChild([out]);
  assert.match(rerun.stdout, new RegExp(`done 12 resumed ${m[1]}`));
});
