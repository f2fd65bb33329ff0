/**
 * The real stories260K (../shared/models) through the whole engine — files, tokenizer, ONNX graph, KV-cached
 * decoding, generate() — reproduces its documented greedy output and logits, from both file layouts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';
import { loadModel } from '../../src/runtime/loadModel.js';
import { generate } from '../../src/runtime/generate.js';

const skip = skipUnlessShared('models/stories260K/expected.json');
const expected = () => JSON.parse(readFileSync(sharedPath('models/stories260K/expected.json')!, 'utf8'));

for (const layout of ['hf', 'llama2c/model.bin']) {
  test(
    `stories260K (${layout}): greedy decoding from BOS reproduces the expected 64 tokens and text`,
    { skip },
    async () => {
      const exp = expected().greedy_from_bos;
      const model = await loadModel(sharedPath('models/stories260K', layout)!, { cacheDir: false, threads: 1 });
      try {
        const [r] = await generate(model.decoder, model.tokenizer, [{ prompt: { ids: exp.prompt_ids } }], {
          maxNewTokens: exp.ids.length,
          temperature: 0,
          stopAtEos: false,
        });
        assert.deepEqual(r.samples[0].tokenIds, exp.ids);
        assert.equal(model.tokenizer.decode(exp.ids, { skipSpecialTokens: true }), exp.text);
      } finally {
        model.close();
      }
    },
  );
}

test('stories260K: logits of "Once upon a time" match the float64 reference within 2e-5', { skip }, async () => {
  const exp = expected().prompt_logits;
  const model = await loadModel(sharedPath('models/stories260K/hf')!, { cacheDir: false, threads: 1 });
  try {
    assert.deepEqual(model.tokenizer.encode(exp.prompt), exp.ids);
    const out = await model.decoder.forward([exp.ids]);
    const V = model.cfg.vocabSize;
    let worst = 0;
    exp.positions.forEach((pos: number, i: number) => {
      const row = (out.logits.data as Float32Array).subarray(pos * V, (pos + 1) * V);
      exp.logits[i].forEach((v: number, j: number) => (worst = Math.max(worst, Math.abs(v - row[j]))));
    });
    assert.ok(worst <= 2e-5, `max |Δ logit| = ${worst}`);
  } finally {
    model.close();
  }
});

test(
  'stories260K: batched prompts of different lengths give the same greedy text as each alone',
  { skip },
  async () => {
    const model = await loadModel(sharedPath('models/stories260K/hf')!, { cacheDir: false, threads: 1 });
    try {
      const prompts = ['Once upon a time', 'The dog', 'Lily and Ben went to the park. They saw'];
      const opts = { maxNewTokens: 24, temperature: 0 };
      const together = await generate(
        model.decoder,
        model.tokenizer,
        prompts.map((prompt) => ({ prompt })),
        opts,
      );
      for (const [i, prompt] of prompts.entries()) {
        const [alone] = await generate(model.decoder, model.tokenizer, [{ prompt }], opts);
        assert.deepEqual(together[i].samples[0].tokenIds, alone.samples[0].tokenIds, `prompt ${i}`);
      }
    } finally {
      model.close();
    }
  },
);
