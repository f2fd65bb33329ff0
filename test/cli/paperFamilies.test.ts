/**
 * GPT-Neo, GPT-J and OPT through the real command line: `generate` (greedy tokens = the reference forward's) and
 * `inspect` (last hidden state and logits = the reference's) on tiny checkpoint folders (config.json +
 * model.safetensors + tokenizer.json, HF's tensor names); and `transfer` of a steer trained for a GPT-2-shaped
 * model to a GPT-Neo- and an OPT-shaped one sharing GPT-2's tokenizer, with the fit error reported, the moved
 * steer then used by `generate` and `explain dims` on its new model.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { removeTempDirs, tempDir } from '../helpers/lensFixtures.js';
import { tinyTokenizerJson } from '../helpers/optimumExport.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';
import { tinyCheckpoint, type TinyKind } from '../helpers/tinyModels.js';
import { randomSteer } from '../steer/randomSteer.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { MapWeightStore, type WeightStore } from '../../src/formats/weights.js';
import { outputEmbeddings, parseDecoderConfig, referenceForward } from '../../src/models/registry.js';
import { embeddingFingerprint } from '../../src/steer/steer.js';
import { saveSteer } from '../../src/steer/steerFile.js';
import { tensor, type Tensor } from '../../src/util/tensor.js';

const env = () => ({ LMSTEER_CACHE: mkdtempSync(join(tmpdir(), 'lmsteer-cache-')), NO_COLOR: '1' });

function writeModel(config: Record<string, unknown>, weights: WeightStore, tokenizer: string | { link: string }) {
  const dir = tempDir('lmsteer-family-');
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const all: Record<string, Tensor> = {};
  for (const name of weights.names()) all[name] = weights.get(name);
  writeSafetensors(join(dir, 'model.safetensors'), all);
  if (typeof tokenizer === 'string') writeFileSync(join(dir, 'tokenizer.json'), tokenizer);
  else symlinkSync(tokenizer.link, join(dir, 'tokenizer.json'));
  return dir;
}

/** `store` with tensor `name` replaced by `t`. */
function replaced(store: WeightStore, name: string, t: Tensor): WeightStore {
  return new MapWeightStore(new Map(store.names().map((n) => [n, n === name ? t : store.get(n)])));
}

const KINDS: TinyKind[] = ['gpt_neo', 'gptj', 'opt-350m'];
const models = new Map<TinyKind, { dir: string; config: Record<string, unknown>; weights: WeightStore }>();
before(() => {
  for (const kind of KINDS) {
    const ck = tinyCheckpoint(kind, { seed: 21 });
    models.set(kind, { ...ck, dir: writeModel(ck.config, ck.weights, tinyTokenizerJson(64)) });
  }
});
after(removeTempDirs);

/** Greedy continuation by the reference forward, EOS excluded (as --min-new-tokens does). */
function referenceGreedy(kind: TinyKind, ids: number[], n: number): number[] {
  const { config, weights } = models.get(kind)!;
  const cfg = parseDecoderConfig(config, kind);
  const out: number[] = [];
  for (let s = 0; s < n; s++) {
    const logits = referenceForward(cfg, weights, [...ids, ...out]).logits;
    const V = cfg.vocabSize;
    const last = logits.data.subarray(logits.data.length - V);
    let best = -1;
    for (let v = 0; v < V; v++) if (!cfg.eosTokenIds.includes(v) && (best < 0 || last[v]! > last[best]!)) best = v;
    out.push(best);
  }
  return out;
}

for (const kind of KINDS) {
  test(`${kind}: lmsteer generate (greedy = the reference) and inspect (hidden and logits = the reference)`, async () => {
    const { dir, config, weights } = models.get(kind)!;
    const e = env();
    const g = await runCli(
      [
        'generate',
        '--model',
        dir,
        '--ids',
        '3,1,4,1,5',
        '-t',
        '0',
        '-n',
        '6',
        '--min-new-tokens',
        '6',
        '--json',
        '--threads',
        '1',
      ],
      { env: e },
    );
    assert.equal(g.code, 0, g.stderr);
    assert.deepEqual(JSON.parse(g.stdout).samples[0].token_ids, referenceGreedy(kind, [3, 1, 4, 1, 5], 6));

    const i = await runCli(['inspect', '--model', dir, '--prompt', 'w3 w1 w4 w1 w5', '--json', '--threads', '1'], {
      env: e,
    });
    assert.equal(i.code, 0, i.stderr);
    const out = JSON.parse(i.stdout);
    const ids = out.tokens.map((t: { id: number }) => t.id);
    assert.deepEqual(ids, [3, 1, 4, 1, 5]);
    const cfg = parseDecoderConfig(config, kind);
    const ref = referenceForward(cfg, weights, ids);
    const T = ids.length;
    const lastRow = (x: Tensor) => [...x.data.subarray((T - 1) * x.shape[1]!, T * x.shape[1]!)];
    assert.equal(out.hidden.length, cfg.hiddenSize, 'hidden is the LM head input (word_embed_proj_dim for OPT-350m)');
    const diff = (a: number[], b: number[]) => Math.max(...a.map((v, j) => Math.abs(v - b[j]!)));
    assert.ok(diff(out.hidden, lastRow(ref.hidden)) <= 1e-4);
    assert.ok(diff(out.logits, lastRow(ref.logits)) <= 1e-4);
  });
}

const skip = skipUnlessShared('models/gpt2-tokenizer');
test(
  'lmsteer transfer: a GPT-2-shaped steer moves to GPT-Neo- and OPT-shaped models; the fit error is reported',
  { skip },
  async () => {
    const tokenizer = { link: join(sharedPath('models/gpt2-tokenizer')!, 'tokenizer.json') };
    const V = 50257;
    const small = { vocab: V, d: 16, layers: 1, heads: 2, seed: 4 };
    const gpt2 = tinyCheckpoint('gpt2', small);
    const gpt2Cfg = parseDecoderConfig(gpt2.config, 'gpt2');
    const E = outputEmbeddings(gpt2Cfg, gpt2.weights);
    // The targets' embeddings are a linear map of GPT-2's (OPT's 15 padding rows beyond the tokenizer aside), so
    // the fitted map is near exact on held-out tokens.
    const mapped = (rows: number, seed: number) => {
      const M = tinyCheckpoint('gpt2', { vocab: 16, d: 16, layers: 1, heads: 2, seed }).weights.get('wte.weight');
      const out = tensor([rows, 16]);
      for (let t = 0; t < rows; t++)
        for (let j = 0; j < 16; j++) {
          let s = 0;
          if (t < V) for (let i = 0; i < 16; i++) s += E.data[t * 16 + i]! * M.data[i * 16 + j]!;
          else s = 0.1 * Math.sin(t * 16 + j);
          out.data[t * 16 + j] = s;
        }
      return out;
    };
    const neo = tinyCheckpoint('gpt_neo', small);
    const opt = tinyCheckpoint('opt', { ...small, vocab: 50272 });
    const dirs = {
      gpt2: writeModel(gpt2.config, gpt2.weights, tokenizer),
      neo: writeModel(neo.config, replaced(neo.weights, 'transformer.wte.weight', mapped(V, 1)), tokenizer),
      opt: writeModel(
        opt.config,
        replaced(opt.weights, 'model.decoder.embed_tokens.weight', mapped(50272, 2)),
        tokenizer,
      ),
    };
    const steer = randomSteer({ d: 16, rank: 2, slots: ['tone'], name: 'tone', eps: 1e-2, vocab: V });
    steer.config.baseModel = {
      id: dirs.gpt2,
      embeddingFingerprint: embeddingFingerprint(E),
      vocabSize: V,
      hiddenSize: 16,
    };
    const steerDir = join(tempDir('lmsteer-steer-'), 'tone');
    saveSteer(steerDir, steer);

    const e = env();
    const moved = { neo: '', opt: '' };
    for (const to of ['neo', 'opt'] as const) {
      const out = (moved[to] = join(tempDir('lmsteer-moved-'), 'tone'));
      const t = await runCli(
        ['transfer', '--steer', steerDir, '--from', dirs.gpt2, '--to', dirs[to], '--out', out, '--threads', '1'],
        { env: e },
      );
      assert.equal(t.code, 0, t.stderr);
      const m = /embedding-map error .*: held-out ([\d.]+)%, train ([\d.]+)%/.exec(t.stdout);
      assert.ok(m, t.stdout);
      assert.ok(Number(m[1]) < 1, `held-out fit error ${m[1]}% (the embeddings are a linear map apart)`);
      assert.ok(Number(/shared tokens: (\d+)/.exec(t.stdout)?.[1]) > 50000, t.stdout); // GPT-2's vocabulary, matched by string
      if (to === 'neo') continue; // generating with a moved steer: once is enough
      const g = await runCli(
        [
          'generate',
          '--model',
          dirs[to],
          '--steer',
          out,
          '--value',
          'tone=3',
          '--ids',
          '464',
          '-n',
          '3',
          '--json',
          '--threads',
          '1',
        ],
        { env: e },
      );
      assert.equal(g.code, 0, g.stderr);
      assert.equal(JSON.parse(g.stdout).samples[0].token_ids.length, 3);
    }
    const x = await runCli(
      ['explain', 'dims', '--model', dirs.opt, '--steer', moved.opt, '--top', '3', '--dims', '1'],
      {
        env: e,
      },
    );
    assert.equal(x.code, 0, x.stderr);
  },
);
