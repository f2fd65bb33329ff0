import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/runtime/loadModel.js';
import {
  encodeForTraining,
  extractionFingerprint,
  lengthBatches,
  makeExtractor,
  tokenizerFingerprint,
} from '../../src/train/extract.js';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const skip = skipUnlessShared('models/stories260K/hf');
const open = () =>
  loadModel(sharedPath('models/stories260K/hf')!, {
    cacheDir: mkdtempSync(join(tmpdir(), 'lmsteer-graphs-')),
    threads: 1,
  });

test('lengthBatches: rows of similar length together, padded tokens within the budget, empty rows left out', () => {
  const lengths = [5, 1, 9, 0, 3, 9, 2, 7];
  const batches = lengthBatches(lengths, 16, 3);
  assert.deepEqual(batches.flat().sort(), [0, 1, 2, 4, 5, 6, 7]);
  for (const b of batches) {
    assert.ok(b.length <= 3);
    const longest = Math.max(...b.map((i) => lengths[i]!));
    assert.ok(b.length === 1 || b.length * longest <= 16, `batch ${b} pads to ${b.length * longest}`);
  }
  // Ascending by length: a batch never mixes the shortest and the longest rows.
  assert.deepEqual(batches[0], [1, 6, 4]);
  // A row longer than the budget still runs, alone.
  assert.deepEqual(lengthBatches([50, 2], 10, 8), [[1], [0]]);
});

test(
  'extractor: hidden states per text equal a lone forward (no padding leaks), BOS added, truncated',
  { skip },
  async () => {
    const model = await open();
    try {
      const texts = [
        'Once upon a time',
        'The little dog ran to the park and saw a big red ball.',
        'Hi',
        'Lily was sad. Her toy was broken and she cried.',
      ];
      let calls = 0;
      const extract = makeExtractor(model, { maxLength: 12, tokenBudget: 40, onBatch: () => calls++ });
      const out = await extract(texts);
      assert.ok(calls >= 2, 'the budget splits the texts into several decoder calls');
      const d = model.cfg.hiddenSize;
      for (const [i, t] of texts.entries()) {
        const ids = model.tokenizer.encode(t).slice(0, 12);
        assert.equal(ids[0], 1, 'BOS');
        assert.deepEqual(out[i]!.ids, ids);
        assert.deepEqual(out[i]!.hidden.shape, [ids.length, d]);
        const alone = await model.decoder.forward([ids]);
        const ref = alone.hidden.data as Float32Array;
        let maxDiff = 0;
        for (let k = 0; k < ids.length * d; k++)
          maxDiff = Math.max(maxDiff, Math.abs(ref[k]! - out[i]!.hidden.data[k]!));
        assert.ok(maxDiff < 1e-4, `text ${i}: batched vs alone differ by ${maxDiff}`);
      }
      assert.equal(encodeForTraining(model.tokenizer, texts[1]!, 12).length, 12);
    } finally {
      model.close();
    }
  },
);

test('fingerprints: a tokenizer that encodes differently (no BOS) gives another cache key', { skip }, async () => {
  const model = await open();
  try {
    const tok = model.tokenizer;
    const noBos: Tokenizer = {
      vocabSize: tok.vocabSize,
      bosId: tok.bosId,
      eosIds: tok.eosIds,
      padId: tok.padId,
      encode: (t) => tok.encode(t, { addSpecialTokens: false }),
      decode: (ids, o) => tok.decode(ids, o),
      tokenString: (id) => tok.tokenString(id),
      isSpecial: (id) => tok.isSpecial(id),
    };
    assert.equal(tokenizerFingerprint(tok), tokenizerFingerprint(tok));
    assert.notEqual(tokenizerFingerprint(noBos), tokenizerFingerprint(tok));
    const fp = extractionFingerprint(model);
    assert.equal(fp, extractionFingerprint(model));
    assert.notEqual(extractionFingerprint({ ...model, tokenizer: noBos }), fp);
    assert.notEqual(fp, model.fingerprint(), 'covers all weights and the tokenizer, not only the embeddings');
  } finally {
    model.close();
  }
});

test(
  'fingerprints: behaviour, not file: the llama2.c tokenizer.bin of the same model encodes alike and shares the key',
  { skip: skipUnlessShared('models/stories260K/llama2c/model.bin') },
  async () => {
    const hf = await open();
    const l2c = await loadModel(sharedPath('models/stories260K/llama2c/model.bin')!, {
      cacheDir: mkdtempSync(join(tmpdir(), 'lmsteer-graphs-')),
      threads: 1,
    });
    try {
      for (const t of ['Once upon a time', 'Zoë ate crème brûlée 🍰'])
        assert.deepEqual(l2c.tokenizer.encode(t), hf.tokenizer.encode(t));
      assert.equal(tokenizerFingerprint(hf.tokenizer), tokenizerFingerprint(l2c.tokenizer));
    } finally {
      hf.close();
      l2c.close();
    }
  },
);

test('encodeForTraining cuts a huge text before tokenizing, with the same ids as cutting after', { skip }, async () => {
  const model = await open();
  try {
    const tok = model.tokenizer;
    const seen: number[] = [];
    const counting: Tokenizer = Object.assign(Object.create(tok), {
      encode: (t: string, o?: { addSpecialTokens?: boolean }) => (seen.push(t.length), tok.encode(t, o)),
    });
    const text = 'Once upon a time, a little bird sang a song. '.repeat(20_000); // 900 KB
    const ids = encodeForTraining(counting, text, 32);
    assert.equal(ids.length, 32);
    assert.ok(seen[0]! < 5000, `tokenized ${seen[0]} characters`);
    assert.deepEqual(ids, tok.encode(text.slice(0, 20_000)).slice(0, 32));
  } finally {
    model.close();
  }
});
