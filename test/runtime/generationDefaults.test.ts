import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENERATION_DEFAULTS, generationDefaults } from '../../src/runtime/generationDefaults.js';
import { LmSteerError } from '../../src/util/errors.js';
import { runCli } from '../helpers/cli.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

test('generation_config.json → settings: do_sample false is greedy; sampling keys; unsupported ones are reported', () => {
  assert.deepEqual(generationDefaults(undefined), { settings: {}, notes: [] });
  assert.deepEqual(generationDefaults({ bos_token_id: 1, eos_token_id: 2 }), { settings: {}, notes: [] });
  assert.deepEqual(generationDefaults({ do_sample: false, temperature: 0.6, top_p: 0.9 }).settings, { temperature: 0 });
  const s = generationDefaults({
    do_sample: true,
    temperature: 0.7,
    top_p: 0.8,
    max_new_tokens: 100,
    repetition_penalty: 1.05,
    num_beams: 4,
    foo: 1,
  });
  // do_sample true without top_k: transformers' GenerationConfig default of 50
  assert.deepEqual(s.settings, { temperature: 0.7, topK: 50, topP: 0.8, maxNewTokens: 100, repetitionPenalty: 1.05 });
  assert.ok(s.notes.some((n) => /num_beams 4 is not implemented/.test(n)));
  assert.ok(s.notes.some((n) => /foo is not read/.test(n)));
  assert.deepEqual(generationDefaults({ temperature: 0.5 }).settings, { temperature: 0.5 });
  for (const bad of [{ top_p: 0 }, { temperature: -1 }, { top_k: 2.5 }, { do_sample: 'yes' }, { max_new_tokens: 0 }]) {
    assert.throws(
      () => generationDefaults(bad, 'x/generation_config.json'),
      (e: unknown) =>
        e instanceof LmSteerError && e.code === 'BAD_FILE' && /x\/generation_config\.json/.test(e.message),
      JSON.stringify(bad),
    );
  }
  assert.equal(GENERATION_DEFAULTS.topK, 0);
});

test(
  'a model folder whose generation_config.json says do_sample false generates greedily without flags',
  { skip: skipUnlessShared('models/stories260K/hf') },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lmsteer-genconfig-'));
    try {
      cpSync(sharedPath('models/stories260K/hf')!, join(dir, 'model'), { recursive: true });
      writeFileSync(
        join(dir, 'model', 'generation_config.json'),
        JSON.stringify({ bos_token_id: 1, eos_token_id: 2, do_sample: false, max_new_tokens: 20 }),
      );
      const env = { LMSTEER_CACHE: join(dir, 'cache') };
      const gen = (extra: string[]) =>
        runCli(['generate', '--model', join(dir, 'model'), '--prompt', 'Once upon a time', '--json', ...extra], {
          env,
        });
      const [a, b, greedy, sampled] = await Promise.all([
        gen(['--seed', '1']),
        gen(['--seed', '2']),
        gen(['-t', '0', '-n', '20']),
        gen(['-t', '1', '--seed', '1']),
      ]);
      for (const r of [a, b, greedy, sampled]) assert.equal(r.code, 0, r.stderr);
      const tokens = (r: { stdout: string }) => JSON.parse(r.stdout).samples[0].token_ids;
      assert.equal(tokens(a).length, 20, 'max_new_tokens from the file');
      assert.deepEqual(tokens(a), tokens(b), 'greedy: seeds do not matter');
      assert.deepEqual(tokens(a), tokens(greedy));
      assert.notDeepEqual(tokens(sampled), tokens(a), 'a flag overrides the file');
      assert.match(a.stderr, /generation_config\.json: greedy \(do_sample false\); max_new_tokens 20/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
