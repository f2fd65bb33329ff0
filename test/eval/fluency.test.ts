import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generationLogProbs, type FluencyModel } from '../../src/eval/fluency.js';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.js';

/** Characters are tokens (no BOS); the fake LM's logits at position t are fixed numbers of (t, token before). */
const tok = {
  encode: (s: string) => [...s].map((c) => c.charCodeAt(0) - 97),
  vocabSize: 26,
  eosIds: [],
} as unknown as Tokenizer;
const V = 26;
const logit = (t: number, prev: number, v: number) => Math.sin(1 + t * 7 + prev * 3 + v);
function fake(calls: number[][][]): FluencyModel['decoder'] {
  return {
    vocabSize: V,
    async forward(rows: number[][]) {
      calls.push(rows);
      const T = Math.max(...rows.map((r) => r.length));
      const data = new Float32Array(rows.length * T * V);
      rows.forEach((r, b) => {
        for (let t = 0; t < T; t++)
          for (let v = 0; v < V; v++) data[(b * T + t) * V + v] = logit(t, r[Math.min(t, r.length - 1)]!, v);
      });
      return {
        logits: { dtype: 'float32', shape: [rows.length, T, V], data },
        hidden: { dtype: 'float32', shape: [0], data: new Float32Array() },
        lengths: rows.map((r) => r.length),
      };
    },
  } as FluencyModel['decoder'];
}

function expected(prompt: string, gen: string): number[] {
  const ids = tok.encode(prompt + gen);
  const out: number[] = [];
  for (let t = Math.max(1, prompt.length); t < ids.length; t++) {
    const z = Array.from({ length: V }, (_, v) => Math.fround(logit(t - 1, ids[t - 1]!, v)));
    const lse = Math.log(z.reduce((a, x) => a + Math.exp(x), 0));
    out.push(z[ids[t]!]! - lse);
  }
  return out;
}

test('generation log-probs: tokens after the prompt, conditioned on everything before, any batching', async () => {
  const items = [
    { prompt: 'abc', generation: 'de' },
    { prompt: 'a', generation: 'bcdefg' },
    { prompt: 'xyz', generation: '' },
    { prompt: '', generation: 'hij' },
  ];
  for (const maxRows of [1, 2, 64]) {
    const calls: number[][][] = [];
    const got = await generationLogProbs({ decoder: fake(calls), tokenizer: tok, maxPositions: 100 }, items, {
      maxRows,
    });
    items.forEach((it, i) => {
      const want = expected(it.prompt, it.generation);
      assert.equal(got[i]!.logProbs.length, want.length, `${i}`);
      want.forEach((w, t) => assert.ok(Math.abs(got[i]!.logProbs[t]! - w) < 1e-9, `${i}/${t}`));
    });
    assert.ok(calls.every((c) => c.length <= maxRows));
    assert.equal(calls.flat().length, 3); // the empty generation needs no forward pass
  }
  // A row longer than the context loses prompt tokens from the left, never generation tokens.
  const got = await generationLogProbs({ decoder: fake([]), tokenizer: tok, maxPositions: 4 }, [
    { prompt: 'abcdef', generation: 'gh' },
  ]);
  assert.equal(got[0]!.logProbs.length, 2);
  await assert.rejects(
    generationLogProbs({ decoder: fake([]), tokenizer: tok, maxPositions: 3 }, [{ prompt: 'a', generation: 'bcdef' }]),
    /context/,
  );
});
