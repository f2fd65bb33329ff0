import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { SHARED_DIR, sharedPath, skipUnlessShared } from '../helpers/shared.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'lmsteer-cli-eval-'));
const skip = skipUnlessShared('models/stories260K/hf') || skipUnlessShared('data/sentiment/sst2_glue/dev.tsv');
const env = () => ({ LMSTEER_CACHE: join(tmp(), 'cache') });

test(
  'classifier train → eval --scorer linear DIR on stories260K; user errors exit 2 with a hint',
  { skip },
  async () => {
    const dir = tmp();
    const cls = join(dir, 'cls');
    const t = await runCli([
      'classifier',
      'train',
      '--data',
      sharedPath('data', 'sentiment', 'sst2_glue', 'dev.tsv')!,
      '--out',
      cls,
    ]);
    assert.equal(t.code, 0, t.stderr);
    const acc = /held-out accuracy ([\d.]+)%/.exec(t.stdout);
    assert.ok(acc && Number(acc[1]) > 60, t.stdout);
    assert.ok(existsSync(join(cls, 'classifier.json')));

    const prompts = join(dir, 'p.txt');
    writeFileSync(prompts, 'Once upon a time\nThe cat was\n');
    const model = sharedPath('models', 'stories260K', 'hf')!;
    const out = join(dir, 'out');
    const e = await runCli(
      [
        'eval',
        '--model',
        model,
        '--prompts',
        prompts,
        '--out',
        out,
        '--samples',
        '3',
        '--scorer',
        'linear',
        '--scorer-model',
        cls,
      ],
      { env: env() },
    );
    assert.equal(e.code, 0, e.stderr);
    assert.match(
      e.stdout,
      /unsteered: positive-sentiment [\d.]+% \[[\d.]+, [\d.]+\], ppl [\d.]+ \(\d\/6 kept\), pooled [\d.]+, junk [\d.]+%/,
    );
    assert.equal(readFileSync(join(out, 'generations.jsonl'), 'utf8').trim().split('\n').length, 2);

    const again = await runCli(
      [
        'eval',
        '--model',
        model,
        '--prompts',
        prompts,
        '--out',
        out,
        '--samples',
        '4',
        '--scorer',
        'linear',
        '--scorer-model',
        cls,
      ],
      { env: env() },
    );
    assert.equal(again.code, 2);
    assert.match(again.stderr, /another configuration \(sampling\.samples: 3 → 4\)[\s\S]*hint: .*--overwrite/);

    for (const [args, re] of [
      [['--scorer', 'toxic-bert'], /unknown scorer 'toxic-bert'[\s\S]*hint: choose one of/],
      [['--sweep', 'sentiment'], /--sweep "sentiment" is not name=v1,v2/],
      [['--sweep', 'x=1'], /--sweep needs a steer/],
      [['--scorer', 'onnx-classifier'], /needs a model file/],
    ] as [string[], RegExp][]) {
      const r = await runCli(['eval', '--model', model, '--prompts', prompts, '--out', join(dir, 'bad'), ...args], {
        env: env(),
      });
      assert.equal(r.code, 2, `${args}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": {"text": "ok"}}\nnot json\n');
    const r = await runCli(['eval', '--model', model, '--prompts', bad, '--out', join(dir, 'bad2')], { env: env() });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad\.jsonl:2 is not valid JSON/);
  },
);

test(
  'reproduce sentiment --size tiny runs end to end on stories260K with the shared data',
  { skip: skip || skipUnlessShared('data/prompts/sentiment_prompts-10k') },
  async () => {
    const out = tmp();
    const r = await runCli(
      [
        'reproduce',
        'sentiment',
        '--size',
        'tiny',
        '--model',
        sharedPath('models', 'stories260K', 'hf')!,
        '--data-dir',
        join(SHARED_DIR, 'data'),
        '--out',
        out,
        '--steps',
        '20',
        '--limit',
        '2',
        '--samples',
        '2',
      ],
      { env: env(), timeoutMs: 180_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    for (const row of [
      'neutral prompts, sentiment=-5',
      'neutral prompts, sentiment=0 (unsteered)',
      'positive prompts, sentiment=-5',
      'negative prompts, sentiment=5',
    ])
      assert.ok(md.includes(`| ${row} |`), row);
    assert.ok(existsSync(join(out, 'steer', 'steer.json')));
    const bad = await runCli(['reproduce', 'detox', '--size', 'tiny', '--out', out]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /is not given[\s\S]*hint: pass --data-dir/);
  },
);
