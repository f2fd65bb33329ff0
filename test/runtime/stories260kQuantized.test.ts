/**
 * stories260K (the embedded trained model) in q8 and q4 against fp32: top-1 agreement over 200 positions of a
 * story, greedy text, and the shipped sentiment steer (steers/stories260K-sentiment) in q8 — it must still move
 * VADER the right way, by about as much as in fp32, and so must q4 with the 4-bit head, the least exact build. q8
 * and q4 are what a model load gives for them: the 8-bit head included (defaultHead).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { vaderCompound } from '../../src/eval/scorers/vader.js';
import type { GraphBuildOptions } from '../../src/graph/buildOptions.js';
import { generate } from '../../src/runtime/generate.js';
import { loadModel, type LoadedModel } from '../../src/runtime/loadModel.js';
import { loadSteer } from '../../src/steer/steerFile.js';
import { packSteers, steerInputs } from '../../src/steer/pack.js';

const STORY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ' +
  'One day, she saw a big red ball under a tree. She ran to get it, but a dog came and took the ball away. Lily was ' +
  'sad and started to cry. Her mom came and gave her a hug. Then they went home and had some cookies and milk. The ' +
  'next day, Lily went to the park again and found the dog with her ball. The dog was nice and gave the ball back to ' +
  'her. Lily was very happy and they played together all day long.';

const open = (build: GraphBuildOptions) => loadModel('stories260K', { cacheDir: false, threads: 1, ...build });

function argmaxRows(x: Float32Array, V: number): number[] {
  return Array.from({ length: x.length / V }, (_, r) => {
    let best = 0;
    for (let v = 1; v < V; v++) if (x[r * V + v] > x[r * V + best]) best = v;
    return best;
  });
}

/** Each row's lead of its top-1 logit over its runner-up. */
function topMargins(x: Float32Array, V: number): number[] {
  return Array.from({ length: x.length / V }, (_, r) => {
    let a = -Infinity;
    let b = -Infinity;
    for (let v = 0; v < V; v++) {
      const y = x[r * V + v];
      if (y > a) [a, b] = [y, a];
      else if (y > b) b = y;
    }
    return a - b;
  });
}

/**
 * A position fp32 decides by less than this many logits (its top two tokens' probabilities within 10%) is a coin
 * toss that any rounding may turn: int8 kernels differ by CPU (ORT's AVX2 and AVX-512 VNNI kernels round the
 * activations differently), and on an AVX-512 machine the 8-bit head turns 3 of this story's 7 such positions
 * (fp32 margins 0.003, 0.012, 0.063) where an AVX2 one turned at most 2. A decided position must never turn.
 */
const COIN_TOSS = 0.1;

async function greedy(m: LoadedModel): Promise<number[]> {
  const [r] = await generate(m.decoder, m.tokenizer, [{ prompt: 'Once upon a time' }], {
    maxNewTokens: 48,
    temperature: 0,
    stopAtEos: false,
  });
  return r.samples[0].tokenIds;
}

const sharedPrefix = (a: number[], b: number[]) => {
  const i = a.findIndex((t, j) => t !== b[j]);
  return i < 0 ? a.length : i;
};

test('stories260K q8: top-1 agreement ≥ 98% over 200 positions of a story, every decided position kept; greedy text close to fp32', async (t) => {
  const fp32 = await open({ dtype: 'fp32' });
  const ids = fp32.tokenizer.encode(STORY).slice(0, 200);
  assert.equal(ids.length, 200);
  const V = fp32.cfg.vocabSize;
  const refLogits = (await fp32.decoder.forward([ids])).logits.data as Float32Array;
  const refTop = argmaxRows(refLogits, V);
  const refMargin = topMargins(refLogits, V);
  const decided = refMargin.filter((m) => m >= COIN_TOSS).length;
  assert.ok(decided >= 190, `only ${decided} of 200 positions decided by fp32: the check would say little`);
  const refText = await greedy(fp32);
  fp32.close();
  const lines: string[] = [];
  for (const dtype of ['q8', 'q4'] as const) {
    const m = await open({ dtype });
    const top = argmaxRows((await m.decoder.forward([ids])).logits.data as Float32Array, V);
    const agree = top.filter((x, i) => x === refTop[i]).length / ids.length;
    const turned = top.flatMap((x, i) => (x === refTop[i] ? [] : [i]));
    const described = turned.map((i) => `${i} (fp32 margin ${refMargin[i].toFixed(3)})`).join(', ') || 'none';
    const text = await greedy(m);
    const same = sharedPrefix(text, refText);
    lines.push(
      `${dtype}: top-1 agreement ${(agree * 100).toFixed(1)}%, greedy text equal for ${same} of ${refText.length} tokens: ${JSON.stringify(m.tokenizer.decode(text))}`,
    );
    if (dtype === 'q8') {
      lines.push(`q8 turned positions: ${described}`);
      const decidedTurned = turned.filter((i) => refMargin[i] >= COIN_TOSS);
      assert.equal(decidedTurned.length, 0, `q8 turned positions fp32 decides: ${described}`);
      assert.ok(agree >= 0.98, `q8 top-1 agreement ${agree}`);
      assert.ok(same >= 24, `q8 greedy text leaves fp32's after ${same} tokens`);
    } else {
      assert.ok(agree >= 0.7, `q4 top-1 agreement ${agree}`);
    }
    m.close();
  }
  t.diagnostic(lines.join('; '));
});

test('stories260K q8, and q4 with the 4-bit head: the shipped sentiment steer still moves VADER the right way', async (t) => {
  const steer = loadSteer(join(process.cwd(), 'steers', 'stories260K-sentiment'));
  const packed = packSteers([steer]);
  const prompts = ['Once upon a time', 'The little dog', 'Tom went to the park', 'One day, Lily'];
  const meanCompound = async (m: LoadedModel, value: number) => {
    const scale = steerInputs(packed, [[[value]]]).scale.data as Float32Array;
    const results = await generate(
      m.decoder,
      m.tokenizer,
      prompts.map((prompt) => ({ prompt, numSamples: 12, steerScale: scale })),
      { maxNewTokens: 24, seed: 7, topK: 50, steer: { p1: packed.p1, p2t: packed.p2t } },
    );
    const scores = results.flatMap((r, i) => r.samples.map((x) => vaderCompound(prompts[i] + x.text)));
    return scores.reduce((a, x) => a + x, 0) / scores.length;
  };
  // q4 with the 4-bit head is the least exact build there is (the head's steering effect within ~10%).
  const builds: Record<string, GraphBuildOptions> = {
    fp32: { dtype: 'fp32' },
    q8: { dtype: 'q8' },
    'q4 (q4 head)': { dtype: 'q4', head: 'q4' },
  };
  const moves: Record<string, [number, number]> = {};
  for (const [name, build] of Object.entries(builds)) {
    const m = await open(build);
    moves[name] = [await meanCompound(m, -8), await meanCompound(m, 8)];
    m.close();
  }
  t.diagnostic(
    `mean VADER compound at −8 / +8: ${Object.entries(moves)
      .map(([name, v]) => `${name} ${v.map((x) => x.toFixed(3))}`)
      .join(', ')}`,
  );
  assert.ok(moves.fp32[1] - moves.fp32[0] > 0.1, `premise: the steer works in fp32 (${moves.fp32})`);
  for (const name of ['q8', 'q4 (q4 head)'])
    assert.ok(moves[name][1] - moves[name][0] > 0.1, `the steer moves VADER in ${name}: ${moves[name]}`);
});
