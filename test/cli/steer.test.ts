/** `lmsteer steer import|export-lora|info` as a user runs them, on the real stories260K. */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAllSafetensors } from '../../src/formats/safetensors.js';
import { runCli } from '../helpers/cli.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const skip =
  skipUnlessShared('models/stories260K/hf') || skipUnlessShared('steers/reference-format/stories260K-sample.pt');
const model = () => sharedPath('models/stories260K/hf')!;
const pt = () => sharedPath('steers/reference-format/stories260K-sample.pt')!;
let tmp = '';
let env: NodeJS.ProcessEnv = {};

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lmsteer-cli-steer-'));
  env = { LMSTEER_CACHE: join(tmp, 'cache') };
});

test(
  'steer import: a reference .pt becomes a steer folder for the model; generate runs with it; info describes it',
  { skip },
  async () => {
    const out = join(tmp, 'ref');
    const r = await runCli(
      ['steer', 'import', '--pt', pt(), '--model', model(), '--out', out, '--slot-names', 'mood'],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2 slots, rank 16, eps 0\.001/);
    assert.match(r.stdout, /values: ref\.mood/);
    const cfg = JSON.parse(readFileSync(join(out, 'steer.json'), 'utf8'));
    assert.equal(cfg.source.kind, 'reference-pt');
    assert.equal(cfg.baseModel.id, model());
    // The tensors are the .pt's, exactly.
    const expected = readAllSafetensors(
      sharedPath('steers/reference-format/stories260K-sample.expected.safetensors')!,
    ).tensors;
    const got = readAllSafetensors(join(out, 'steer.safetensors')).tensors;
    assert.deepEqual(got.projector1!.data, expected.projector1!.data);

    const base = await runCli(
      ['generate', '--model', model(), '--prompt', 'Once upon a time', '-n', '12', '-t', '0', '--json'],
      { env },
    );
    const steered = await runCli(
      [
        'generate',
        '--model',
        model(),
        '--steer',
        out,
        '--value',
        'mood=10000',
        '--prompt',
        'Once upon a time',
        '-n',
        '12',
        '-t',
        '0',
        '--json',
      ],
      { env },
    );
    assert.equal(steered.code, 0, steered.stderr);
    assert.notDeepEqual(
      JSON.parse(steered.stdout).samples[0].token_ids,
      JSON.parse(base.stdout).samples[0].token_ids,
      'a large value changes greedy text (the sample steer is random, std 0.05: it takes ~1e4 to matter)',
    );

    const again = await runCli(['steer', 'import', '--pt', pt(), '--model', model(), '--out', out], { env });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already holds a steer/);

    const info = await runCli(['steer', 'info', '--steer', out, '--json'], { env });
    assert.equal(info.code, 0, info.stderr);
    const j = JSON.parse(info.stdout);
    assert.equal(j.rank, 16);
    assert.deepEqual(j.values, ['ref.mood', 'ref.base'], 'the base slot is settable like any slot');
    assert.equal(j.norms.length, 2);
    assert.ok(j.norms[0].p1 > 0);
  },
);

test(
  'steer export: LoRA at the exact rank, per slot, per sweep value, composed; refuses to overwrite',
  { skip },
  async () => {
    const steer = join(tmp, 'ref2');
    const other = join(tmp, 'ref3');
    assert.equal(
      (await runCli(['steer', 'import', '--pt', pt(), '--model', model(), '--out', steer], { env })).code,
      0,
    );
    assert.equal(
      (await runCli(['steer', 'import', '--pt', pt(), '--model', model(), '--out', other, '--name', 'other'], { env }))
        .code,
      0,
    );
    const out = join(tmp, 'lora');
    const r = await runCli(
      ['steer', 'export-lora', '--steer', steer, '--model', model(), '--value', 'slot0=5', '--out', out],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /rank 32 \(exact\)/, 'two slots of rank 16 (slot0=5, base=1): rank 32 ≤ d = 64');
    assert.match(r.stderr, /ties lm_head to its input embeddings/);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'README.md'])
      assert.ok(existsSync(join(out, f)), f);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    assert.deepEqual(cfg.target_modules, ['lm_head']);
    assert.equal(cfg.r, 32);
    assert.equal(cfg.base_model_name_or_path, model(), 'an absolute path');
    const t = readAllSafetensors(join(out, 'adapter_model.safetensors')).tensors;
    assert.deepEqual(t['base_model.model.lm_head.lora_A.weight']!.shape, [32, 64]);
    assert.deepEqual(t['base_model.model.lm_head.lora_B.weight']!.shape, [512, 32]);
    const again = await runCli(
      ['steer', 'export', '--steer', steer, '--model', model(), '--value', 'slot0=5', '--out', out, '--rank', '8'],
      { env },
    );
    assert.equal(again.code, 2);
    assert.match(again.stderr, /not empty.*--overwrite/s);
    const truncated = await runCli(
      [
        'steer',
        'export',
        '--steer',
        steer,
        '--model',
        model(),
        '--value',
        'slot0=5',
        '--out',
        out,
        '--rank',
        '8',
        '--overwrite',
      ],
      { env },
    );
    assert.equal(truncated.code, 0, truncated.stderr);
    assert.match(truncated.stdout, /rank 8 of 32, relative error \d/);

    const slots = join(tmp, 'slots');
    const per = await runCli(
      [
        'steer',
        'export',
        '--steer',
        steer,
        '--steer',
        other,
        '--model',
        model(),
        '--per-slot',
        '--out',
        slots,
        '--untie-head',
      ],
      { env },
    );
    assert.equal(per.code, 0, per.stderr);
    for (const name of ['ref2.slot0', 'ref2.base', 'other.slot0', 'other.base'])
      assert.equal(JSON.parse(readFileSync(join(slots, name, 'adapter_config.json'), 'utf8')).r, 16, name);
    assert.ok(existsSync(join(slots, 'lm_head.safetensors')));

    const sweep = await runCli(
      [
        'steer',
        'export',
        '--steer',
        steer,
        '--steer',
        other,
        '--model',
        model(),
        '--value',
        'other.slot0=2',
        '--sweep',
        'ref2.slot0=-5,5',
        '--out',
        join(tmp, 'sweep'),
      ],
      { env },
    );
    assert.equal(sweep.code, 0, sweep.stderr);
    assert.match(sweep.stdout, /--lora-modules ref2\.slot0_-5=\S+ ref2\.slot0_5=/);
    assert.equal(
      JSON.parse(readFileSync(join(tmp, 'sweep', 'ref2.slot0_5', 'adapter_config.json'), 'utf8')).r,
      32,
      'two copies of one steer composed: their 4 slots span the same 32 directions, and the exact rank says so',
    );

    const none = await runCli(['steer', 'export', '--steer', steer, '--model', model(), '--out', join(tmp, 'lora2')], {
      env,
    });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--value/);
    const unknown = await runCli(
      ['steer', 'export', '--steer', steer, '--model', model(), '--value', 'x=1', '--out', join(tmp, 'lora3')],
      { env },
    );
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /known values: ref2\.slot0/);
  },
);

test('steer export --format pt: import → export → import gives the same steer files', { skip }, async () => {
  const first = join(tmp, 'pt-a');
  const second = join(tmp, 'pt-b');
  const file = join(tmp, 'round.pt');
  const imp = (p: string, o: string, ...more: string[]) =>
    runCli(['steer', 'import', '--pt', p, '--model', model(), '--out', o, ...more], { env });
  assert.equal((await imp(pt(), first, '--slot-names', 'mood', '--name', 'mood')).code, 0);
  const ex = await runCli(['steer', 'export', '--format', 'pt', '--steer', first, '--out', file], { env });
  assert.equal(ex.code, 0, ex.stderr);
  assert.equal((await imp(file, second)).code, 0);
  assert.ok(readFileSync(join(first, 'steer.safetensors')).equals(readFileSync(join(second, 'steer.safetensors'))));
  const a = JSON.parse(readFileSync(join(first, 'steer.json'), 'utf8'));
  const b = JSON.parse(readFileSync(join(second, 'steer.json'), 'utf8'));
  assert.deepEqual({ ...b, source: { ...b.source, path: a.source.path } }, a);
  const twice = await runCli(['steer', 'export', '--format', 'pt', '--steer', first, '--out', file], { env });
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /already exists/);
});

test('steer: user errors exit 2', { skip }, async () => {
  const missing = await runCli(['steer', 'info', '--steer', join(tmp, 'nope')], { env });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /does not exist/);
  const notPt = await runCli(
    ['steer', 'import', '--pt', model() + '/config.json', '--model', model(), '--out', join(tmp, 'bad')],
    { env },
  );
  assert.equal(notPt.code, 2);
});
