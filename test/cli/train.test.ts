/** `lmsteer train` as a user runs it, on the real stories260K and a tiny dataset. */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const skip = skipUnlessShared('models/stories260K/hf');
const model = () => sharedPath('models/stories260K/hf')!;
let tmp = '';
let env: NodeJS.ProcessEnv = {};
let data = '';

const POS = [
  'She was so happy and smiled.',
  'They had a wonderful day at the park.',
  'The sun was warm and everyone laughed.',
  'He loved his new red ball.',
  'Mom gave her a big hug.',
  'The party was fun and bright.',
];
const NEG = [
  'He was sad and cried all day.',
  'The toy broke and she was angry.',
  'It was dark and the dog was scared.',
  'They lost the ball and felt bad.',
  'The rain ruined the picnic.',
  'Tom was mad at his friend.',
];

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lmsteer-cli-train-'));
  env = { LMSTEER_CACHE: join(tmp, 'cache') };
  data = join(tmp, 'tiny.jsonl');
  writeFileSync(
    data,
    [...POS.map((text) => ({ text, label: 'pos' })), ...NEG.map((text) => ({ text, label: 'neg' }))]
      .map((o) => JSON.stringify(o))
      .join('\n') + '\n',
  );
});

const trainArgs = (out: string, ...extra: string[]) => [
  'train',
  '--model',
  model(),
  '--data',
  data,
  '--out',
  out,
  '--rank',
  '4',
  '--batch-size',
  '4',
  '--steps',
  '6',
  '--checkpoint-every',
  '2',
  ...extra,
];

test('train writes a steer folder; a second run finds it complete at once; generate uses it', { skip }, async () => {
  const out = join(tmp, 'steer');
  const r = await runCli(trainArgs(out), { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /12 examples/);
  assert.match(r.stderr, /per steer value: -1: 6, 1: 6/);
  assert.match(r.stdout, /trained 6 steps/);
  assert.match(r.stdout, /extraction: 12 texts/);
  for (const f of ['steer.json', 'steer.safetensors', 'loss.svg', 'checkpoint/checkpoint.json'])
    assert.ok(existsSync(join(out, f)), f);
  const cfg = JSON.parse(readFileSync(join(out, 'steer.json'), 'utf8'));
  assert.equal(cfg.baseModel.id, model());
  assert.match(cfg.baseModel.embeddingFingerprint, /^emb1-/);
  assert.equal(cfg.rank, 4);
  assert.deepEqual(
    cfg.slots.map((s: { name: string }) => s.name),
    ['value', 'base'],
  );
  assert.deepEqual(cfg.training.dataFiles, [data]);
  assert.equal(cfg.training.steps, 6);
  assert.ok(Number.isFinite(cfg.training.finalLoss) && cfg.training.finalLoss > 0);
  assert.equal(cfg.metrics.finalLoss, cfg.training.finalLoss);

  const again = await runCli(trainArgs(out), { env });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /training already complete/);
  assert.doesNotMatch(again.stdout, /extraction:/);

  const g = await runCli(
    [
      'generate',
      '--model',
      model(),
      '--steer',
      out,
      '--value',
      'value=5',
      '--prompt',
      'Once upon a time',
      '-n',
      '8',
      '--json',
    ],
    { env },
  );
  assert.equal(g.code, 0, g.stderr);
  assert.equal(JSON.parse(g.stdout).samples.length, 1);

  const unknown = await runCli(
    ['generate', '--model', model(), '--steer', out, '--value', 'joy=5', '--prompt', 'Hi', '-n', '2'],
    { env },
  );
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown steer value "joy"/);
  assert.match(unknown.stderr, /known values: steer\.value/);
  const nan = await runCli(
    ['generate', '--model', model(), '--steer', out, '--value', 'value=NaN', '--prompt', 'Hi', '-n', '2'],
    { env },
  );
  assert.equal(nan.code, 2);
  assert.match(nan.stderr, /value=NaN/);

  const info = await runCli(['steer', 'info', '--steer', out], { env });
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /rank 4/);
  assert.match(info.stdout, /values: steer\.value/);
});

test('train: more steps resume from the checkpoint; changed options are refused', { skip }, async () => {
  const out = join(tmp, 'resume');
  assert.equal((await runCli(trainArgs(out), { env })).code, 0);
  const more = await runCli([...trainArgs(out), '--steps', '10'], { env });
  assert.equal(more.code, 0, more.stderr);
  assert.match(more.stdout, /trained 10 steps \(resumed from step 6\)/);
  const changed = await runCli([...trainArgs(out), '--steps', '12', '--lr', '0.5'], { env });
  assert.equal(changed.code, 2);
  assert.match(changed.stderr, /other options \(lr: 0.01 → 0.5\)/);
});

test('train: Ctrl-C saves a checkpoint and exits 2 with the hint; rerunning resumes', { skip }, async () => {
  const out = join(tmp, 'interrupted');
  const bin = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'bin', 'lmsteer.mjs');
  const child = spawn(
    process.execPath,
    [bin, ...trainArgs(out), '--steps', '1000000', '--checkpoint-every', '1000000'],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  let sent = false;
  child.stderr.on('data', (d) => {
    stderr += d;
    // After extraction (or finding every text cached) the loop runs; give it a moment of steps, then interrupt.
    if (!sent && /tokens\/s\)|are cached/.test(stderr)) {
      sent = true;
      setTimeout(() => child.kill('SIGINT'), 1500);
    }
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000); // never run the million steps
  const code = await new Promise<number | null>((done) => child.on('close', done));
  clearTimeout(guard);
  assert.equal(code, 2, stderr);
  assert.match(stderr, /training interrupted \(SIGINT\) at step (\d+) of 1000000; checkpoint saved/);
  assert.match(stderr, /hint: run the same command again to resume/);
  const step = JSON.parse(readFileSync(join(out, 'checkpoint', 'checkpoint.json'), 'utf8')).step as number;
  assert.ok(step > 0);
  const resumed = await runCli([...trainArgs(out), '--steps', String(step + 3), '--checkpoint-every', '1000000'], {
    env,
  });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, new RegExp(`trained ${step + 3} steps \\(resumed from step ${step}\\)`));
});

test('train: user errors exit 2 with a message', { skip }, async () => {
  const empty = join(tmp, 'empty.jsonl');
  writeFileSync(empty, '\n\n');
  const e = await runCli(['train', '--model', model(), '--data', empty, '--out', join(tmp, 'x')], { env });
  assert.equal(e.code, 2);
  assert.match(e.stderr, /empty\.jsonl has no examples/);
  const noData = await runCli(['train', '--model', model(), '--out', join(tmp, 'y')], { env });
  assert.equal(noData.code, 2);
  assert.match(noData.stderr, /--data/);
  const badMap = await runCli(
    ['train', '--model', model(), '--data', data, '--label-map', 'sst5', '--out', join(tmp, 'z')],
    { env },
  );
  assert.equal(badMap.code, 2);
  assert.match(badMap.stderr, /label "pos" is not in the label map/);
  const badRank = await runCli(['train', '--model', model(), '--data', data, '--rank', '0', '--out', join(tmp, 'w')], {
    env,
  });
  assert.equal(badRank.code, 2);
});

test('train --include-padding runs end to end with a held-out split; steer loss reads it back', { skip }, async () => {
  const out = join(tmp, 'padded');
  const r = await runCli([...trainArgs(out), '--include-padding', '--holdout', '4'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /held out for the loss diagnostic: 4 examples/);
  assert.match(r.stderr, /held-out loss on 4 texts/);
  assert.match(r.stderr, /pads included \(\d+ targets\): ce [\d.]+ \| labels flipped/);
  const cfg = JSON.parse(readFileSync(join(out, 'steer.json'), 'utf8'));
  assert.equal(cfg.training.includePadding, true);
  assert.equal(cfg.metrics.heldOut.texts, 4);

  const loss = await runCli(
    ['steer', 'loss', '--model', model(), '--steer', out, '--data', data, '--batch-size', '4', '--json'],
    { env },
  );
  assert.equal(loss.code, 0, loss.stderr);
  const j = JSON.parse(loss.stdout);
  for (const k of ['ce', 'ce_flipped', 'ce_off', 'n_targets']) assert.ok(Number.isFinite(j[k]), k);
  assert.equal(j.texts, 12);
  const inc = await runCli(
    ['steer', 'loss', '--model', model(), '--steer', out, '--data', data, '--batch-size', '4', '--include-padding'],
    { env },
  );
  assert.equal(inc.code, 0, inc.stderr);
  const m = /pads included \((\d+) targets\): ce [\d.]+ \| labels flipped [\d.]+ \(style signal [-+][\d.]+\)/.exec(
    inc.stdout,
  );
  assert.ok(m && Number(m[1]) > j.n_targets, `pads add positions: ${inc.stdout}`);
});
