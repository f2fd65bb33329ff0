/**
 * A steer with the reference's always-on slot (`base`, default 1): every slot is settable, every slot at 0 is
 * the base model exactly — from the CLI, the library and the server — and listings say what `base` is.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, type LoadedModel } from '../../src/runtime/loadModel.js';
import { generate } from '../../src/runtime/generate.js';
import { startServer } from '../../src/server/server.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import { runCli } from '../helpers/cli.js';
import { makeSteer, modelPath, postJson, skip } from './fixtures.js';

let tmp = '';
let model: LoadedModel;
let dir = '';

before(async () => {
  if (skip) return;
  tmp = mkdtempSync(join(tmpdir(), 'lmsteer-base-slot-'));
  model = await loadModel(modelPath(), { cacheDir: join(tmp, 'cache'), threads: 1 });
  // eps 0.05 × random rank-4 projectors: the base slot alone moves the logits visibly
  dir = makeSteer(model, tmp, 'mood', 21, ['happy', { name: 'base', defaultValue: 1 }]);
});
after(() => {
  if (skip) return;
  model.close();
  rmSync(tmp, { recursive: true, force: true });
});

test(
  'library: every slot at 0 gives exactly the unsteered logits; the main slot alone at 0 does not',
  { skip },
  async () => {
    const set = SteerSet.load(model, [dir]);
    const ids = model.tokenizer.encode('Once upon a time there was');
    const plain = await model.decoder.forward([ids]);
    const run = async (values: Record<string, number>) => {
      const scale = set.resolve(values).scale!;
      const out = await model.decoder.forward([ids], {
        steer: { ...set.directions!, scale: { dtype: 'float32', shape: [1, scale.length], data: scale } },
      });
      return out.logits.data as Float32Array;
    };
    assert.deepEqual(await run({ mood: 0, 'mood.base': 0 }), plain.logits.data, 'all slots at 0: bit for bit');
    assert.deepEqual(await run(set.offValues()), plain.logits.data);
    assert.notDeepEqual(await run({ mood: 0 }), plain.logits.data, 'base stays at 1 unless set');
  },
);

test(
  'CLI: --value on every slot at 0 gives the unsteered greedy text; steer info explains base',
  { skip },
  async () => {
    const env = { LMSTEER_CACHE: join(tmp, 'cache') };
    const gen = (extra: string[]) =>
      runCli(
        ['generate', '--model', modelPath(), '--prompt', 'Once upon a time', '-n', '24', '-t', '0', '--json', ...extra],
        { env },
      );
    const plain = await gen([]);
    const off = await gen(['--steer', dir, '--value', 'mood=0', '--value', 'mood.base=0']);
    assert.equal(off.code, 0, off.stderr);
    assert.deepEqual(JSON.parse(off.stdout).samples, JSON.parse(plain.stdout).samples);
    const info = await runCli(['steer', 'info', '--steer', dir], { env });
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /base: the always-on slot/);
  },
);

test(
  'server: all slots 0 answers the unsteered text; listings carry the base slot with its note',
  { skip },
  async () => {
    const server = await startServer(model, SteerSet.load(model, [dir]), { port: 0 });
    try {
      const list = await (await fetch(`${server.url}/v1/steers`)).json();
      const slots = list.data[0].slots;
      assert.deepEqual(
        slots.map((s: { value_name: string; default: number }) => [s.value_name, s.default]),
        [
          ['mood', 0],
          ['mood.base', 1],
        ],
      );
      assert.match(slots[1].note, /always-on/);
      const body = { prompt: 'The dog', max_tokens: 24, seed: 3 };
      const off = await postJson(`${server.url}/v1/completions`, { ...body, steer: { mood: 0, 'mood.base': 0 } });
      assert.equal(off.status, 200, JSON.stringify(off.json));
      assert.deepEqual(off.json.steer, { mood: 0, 'mood.base': 0 });
      const [plain] = await generate(model.decoder, model.tokenizer, [{ prompt: 'The dog', seed: 3 }], {
        maxNewTokens: 24,
      });
      assert.equal(off.json.choices[0].text, plain!.samples[0]!.text);
    } finally {
      await server.close();
    }
  },
);
