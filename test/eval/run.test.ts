import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fluencyModelOf } from '../../src/eval/fluency.js';
import { parseSweep, promptSeed, runEval, type EvalOptions } from '../../src/eval/run.js';
import { GENERATIONS_FILE, readGenerations } from '../../src/eval/runFolder.js';
import { createScorer } from '../../src/eval/scorers/registry.js';
import { loadModel, type LoadedModel } from '../../src/runtime/loadModel.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import { runTraining } from '../../src/train/run.js';
import { LmSteerError } from '../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'lmsteer-eval-'));
const isErr = (code: string, re?: RegExp) => (e: unknown) =>
  e instanceof LmSteerError && e.code === code && (!re || re.test(e.message));
const skip = skipUnlessShared('models/stories260K/hf') || skipUnlessShared('data/sentiment/sst5_prrao87/sst_train.txt');

test('parseSweep and promptSeed', () => {
  assert.deepEqual(parseSweep('sentiment=-5,-3,0,3,5'), { name: 'sentiment', values: [-5, -3, 0, 3, 5] });
  assert.deepEqual(parseSweep(' a.b = 1.5 ,2'), { name: 'a.b', values: [1.5, 2] });
  for (const bad of ['sentiment', '=1,2', 'x=', 'x=1,,2', 'x=1,abc', 'x=1,Infinity', 'x=1,1'])
    assert.throws(() => parseSweep(bad), isErr('BAD_ARGUMENT'), bad);
  assert.equal(promptSeed(0, 7), promptSeed(0, 7));
  assert.notEqual(promptSeed(0, 7), promptSeed(0, 8));
  assert.notEqual(promptSeed(1, 7), promptSeed(0, 7));
  assert.ok(Number.isSafeInteger(promptSeed(123, 10_000)));
});

let shared: Promise<{ model: LoadedModel; steers: SteerSet; steerDir: string }> | undefined;
/** stories260K and a small sentiment steer trained on 1000 SST-5 sentences (~20 s), once per file. */
function setup() {
  shared ??= (async () => {
    const model = await loadModel(sharedPath('models', 'stories260K', 'hf')!, { threads: 2 });
    const steerDir = join(tmp(), 'steer');
    await runTraining({
      model: model.id,
      loaded: model,
      data: [sharedPath('data', 'sentiment', 'sst5_prrao87', 'sst_train.txt')!],
      labelMap: 'sst5',
      outDir: steerDir,
      limit: 1000,
      cacheDir: false,
      progress: false,
      log: () => {},
      train: { slotName: 'sentiment', steps: 150, maxLength: 64, regularization: 1e-6 },
    });
    return { model, steers: SteerSet.load(model, [steerDir]), steerDir };
  })();
  return shared;
}

function promptsFile(n: number): string {
  const src = readFileSync(sharedPath('data', 'prompts', 'sentiment_prompts-10k', 'neutral_prompts.dev.jsonl')!, 'utf8')
    .split('\n')
    .slice(0, n);
  const p = join(tmp(), 'prompts.jsonl');
  writeFileSync(p, src.join('\n') + '\n');
  return p;
}

async function evalDeps(extra: { signal?: AbortSignal; onChunk?: (i: { done: number }) => void } = {}) {
  const { model, steers, steerDir } = await setup();
  return {
    model,
    steers,
    steerDirs: [steerDir],
    scorer: await createScorer('vader'),
    fluency: fluencyModelOf(model),
    log: () => {},
    ...extra,
  };
}

const base = (outDir: string, promptsPath: string): EvalOptions => ({
  outDir,
  promptsPath,
  samples: 10,
  maxNewTokens: 20,
  topP: 1,
  topK: 50,
  temperature: 1,
  seed: 0,
  progress: false,
});

test(
  'a sentiment steer moves the positive rate (vader) with its value; files and report are written',
  { skip },
  async () => {
    const out = tmp();
    const prompts = promptsFile(20);
    const r = await runEval(
      { ...base(out, prompts), sweep: { name: 'sentiment', values: [-10, 10] } },
      await evalDeps(),
    );
    // The unsteered baseline runs first, in its own folder, and is marked in the report.
    assert.deepEqual(
      r.settings.map((s) => s.setting),
      ['unsteered', 'sentiment=-10', 'sentiment=10'],
    );
    assert.equal(r.settings[0]!.row.baseline, true);
    assert.ok(existsSync(join(out, 'unsteered', GENERATIONS_FILE)));
    const rate = Object.fromEntries(r.settings.slice(1).map((s) => [s.steerValue!, s.row.positiveRate!]));
    assert.ok(rate[10]! > rate[-10]!, `positive rate ${JSON.stringify(rate)}`);
    for (const s of r.settings) {
      // Intervals around every number, kept/dropped counts, pooled and median PPL, junk rate.
      for (const k of ['positiveRate', 'ppl', 'pooledPpl', 'medianPpl', 'dist1', 'junkRate'] as const) {
        const [lo, hi] = s.row.ci![k]!;
        const v = s.row[k]!;
        assert.ok(lo <= v + 1e-12 && v <= hi + 1e-12, `${s.setting} ${k} ${v} outside [${lo}, ${hi}]`);
      }
      assert.equal(s.row.pplKept! + s.row.pplDropped!, 200);
      assert.ok(s.row.junkRate! >= 0 && s.row.junkRate! <= 1);
      assert.equal(s.row.prompts, 20);
      assert.ok(s.row.ppl! > 1 && s.row.ppl! < 1e4, `ppl ${s.row.ppl}`);
      assert.ok(s.row.dist1! > 0 && s.row.dist1! <= 1);
      const lines = readGenerations(join(s.dir, GENERATIONS_FILE));
      assert.equal(lines.length, 20);
      assert.equal(lines[0]!.generations.length, 10);
      const g = lines[0]!.generations[0]!;
      assert.equal(typeof g['positive-sentiment'], 'number');
      assert.equal(g.ppl_tokens !== undefined && (g.ppl_tokens as number) > 0, true);
      assert.ok('md5_hash' in lines[0]!, 'the prompt record is kept');
    }
    assert.ok(existsSync(join(out, 'report.md')) && existsSync(join(out, 'sentiment=10', 'run.json')));
    assert.match(readFileSync(join(out, 'attribute_vs_value.svg'), 'utf8'), /^<svg/);
    assert.match(readFileSync(join(out, 'attribute_vs_ppl.svg'), 'utf8'), /^<svg/);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    assert.match(md, /\| sentiment=10 \| 10 \| \d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \|/);
    assert.match(md, /\| unsteered \(baseline\) \| — \|/);
    assert.match(md, /\| PPL kept \| Pooled PPL \| Median PPL \|/);
    assert.match(readFileSync(join(out, 'attribute_vs_value.svg'), 'utf8'), /unsteered/);
    assert.ok(r.generatedTokens === 3 * 20 * 10 * 20);
    // Everything is on disk: a rerun generates nothing and reports the same numbers.
    const again = await runEval(
      { ...base(out, prompts), sweep: { name: 'sentiment', values: [-10, 10] } },
      await evalDeps(),
    );
    assert.equal(again.generatedTokens, 0);
    assert.deepEqual(
      again.settings.map((s) => s.row.positiveRate),
      r.settings.map((s) => s.row.positiveRate),
    );
  },
);

test(
  'a run stopped after some prompts resumes to the file of an uninterrupted run; torn lines are dropped',
  { skip },
  async () => {
    const prompts = promptsFile(12);
    const opts = (out: string): EvalOptions => ({
      ...base(out, prompts),
      samples: 4,
      values: { sentiment: 5 },
      batchRows: 8,
      baseline: false,
    }); // chunks of 8 prompts
    const full = tmp();
    await runEval(opts(full), await evalDeps());
    const want = readFileSync(join(full, GENERATIONS_FILE), 'utf8');

    const cut = tmp();
    const ac = new AbortController();
    await assert.rejects(
      runEval(opts(cut), await evalDeps({ signal: ac.signal, onChunk: () => ac.abort() })),
      isErr('CANCELLED', /8 of 12/),
    );
    assert.equal(readGenerations(join(cut, GENERATIONS_FILE)).length, 8);
    // A kill mid-write leaves half a line; the rerun drops it and goes on.
    appendFileSync(join(cut, GENERATIONS_FILE), '{"prompt": {"text": "half');
    const r = await runEval(opts(cut), await evalDeps());
    assert.equal(r.settings[0]!.generatedPrompts, 4);
    assert.equal(readFileSync(join(cut, GENERATIONS_FILE), 'utf8'), want);

    // Batching never changes a sample: another batch size, and resuming from a prompt inside a chunk.
    const other = tmp();
    await runEval({ ...opts(other), batchRows: 3, limit: 5 }, await evalDeps());
    await runEval({ ...opts(other), batchRows: 3 }, await evalDeps());
    const a = readGenerations(join(other, GENERATIONS_FILE)).map((l) => l.generations.map((g) => g.text));
    assert.deepEqual(
      a,
      readGenerations(join(full, GENERATIONS_FILE)).map((l) => l.generations.map((g) => g.text)),
    );

    // Another configuration in the same folder is refused, naming what differs, unless overwriting.
    await assert.rejects(
      runEval({ ...opts(cut), topP: 0.9 }, await evalDeps()),
      isErr('BAD_ARGUMENT', /sampling\.topP: 1 → 0\.9/),
    );
    await assert.rejects(
      runEval({ ...opts(cut), values: { sentiment: 3 } }, await evalDeps()),
      isErr('BAD_ARGUMENT', /values\.sentiment: 5 → 3/),
    );
    const o = await runEval({ ...opts(cut), values: { sentiment: 3 }, limit: 2, overwrite: true }, await evalDeps());
    assert.equal(readGenerations(join(cut, GENERATIONS_FILE)).length, 2);
    assert.equal(o.settings[0]!.generatedPrompts, 2);
  },
);

test('bad input: malformed prompts, unknown scorer, sweep and value errors', { skip }, async () => {
  const out = tmp();
  const bad = join(out, 'bad.jsonl');
  writeFileSync(bad, '{"prompt": {"text": "ok"}}\n{"prompt": \n');
  await assert.rejects(runEval(base(join(out, 'a'), bad), await evalDeps()), isErr('BAD_DATA', /bad\.jsonl:2/));
  const noText = join(out, 'notext.jsonl');
  writeFileSync(noText, '{"prompt": {"txt": "ok"}}\n');
  await assert.rejects(runEval(base(join(out, 'b'), noText), await evalDeps()), isErr('BAD_DATA', /prompt\.text/));
  await assert.rejects(runEval(base(join(out, 'c'), join(out, 'missing.jsonl')), await evalDeps()), isErr('NOT_FOUND'));
  await assert.rejects(createScorer('toxic-bert'), isErr('NOT_FOUND', /unknown scorer/));
  const p = promptsFile(2);
  await assert.rejects(
    runEval({ ...base(join(out, 'd'), p), sweep: { name: 'sentimnt', values: [1] } }, await evalDeps()),
    isErr('BAD_ARGUMENT', /sentimnt/),
  );
  await assert.rejects(
    runEval(
      { ...base(join(out, 'e'), p), sweep: { name: 'sentiment', values: [1] }, values: { sentiment: 2 } },
      await evalDeps(),
    ),
    isErr('BAD_ARGUMENT', /both swept/),
  );
  const deps = await evalDeps();
  await assert.rejects(
    runEval({ ...base(join(out, 'f'), p), sweep: { name: 'sentiment', values: [1] } }, { ...deps, steers: undefined }),
    isErr('BAD_ARGUMENT', /needs a steer/),
  );
  await assert.rejects(runEval({ ...base(join(out, 'g'), p), samples: 0 }, deps), isErr('BAD_ARGUMENT', /samples/));
});

test.after(async () => {
  if (shared) (await shared).model.close();
});
