/**
 * Training on a model whose LM head has a bias (GPT-J): the loss runTraining reports for its first step is the
 * cross-entropy of the model's own logits (h·Eᵀ + b, the reference forward's), not of h·Eᵀ alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { parseDecoderConfig, referenceForward } from '../../src/models/registry.js';
import { loadModel } from '../../src/runtime/loadModel.js';
import { runTraining } from '../../src/train/run.js';
import type { Tensor } from '../../src/util/tensor.js';
import { tinyCheckpoint } from '../helpers/tinyModels.js';

/** A byte-level BPE tokenizer.json without merges: token id = byte value (GPT-2's byte-to-unicode alphabet). */
function byteTokenizerJson(): string {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const vocab: Record<string, number> = {};
  let extra = 0;
  for (let b = 0; b < 256; b++) vocab[String.fromCodePoint(printable(b) ? b : 256 + extra++)] = b;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: { type: 'BPE', vocab, merges: [], dropout: null, unk_token: null, fuse_unk: false, byte_fallback: false },
  });
}

test('runTraining on GPT-J: the first step’s loss is the cross-entropy of h·Eᵀ + b', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'lmsteer-gptj-train-'));
  try {
    const ck = tinyCheckpoint('gptj', { seed: 13, vocab: 256 });
    const bias = ck.weights.get('lm_head.bias');
    for (let v = 0; v < bias.data.length; v++) bias.data[v] = v % 3 === 0 ? 1.5 : -0.5; // a bias that matters
    const dir = mkdtempSync(join(tmp, 'model-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(ck.config));
    writeFileSync(join(dir, 'tokenizer.json'), byteTokenizerJson());
    const all: Record<string, Tensor> = {};
    for (const n of ck.weights.names()) all[n] = ck.weights.get(n);
    writeSafetensors(join(dir, 'model.safetensors'), all);
    const texts = ['good day', 'bad dog', 'a fun game', 'so cold'];
    const data = join(tmp, 'd.jsonl');
    writeFileSync(data, texts.map((text, i) => JSON.stringify({ text, label: i % 2 ? 'neg' : 'pos' })).join('\n'));

    const model = await loadModel(dir, { cacheDir: false, threads: 1 });
    try {
      const r = await runTraining({
        model: dir,
        loaded: model,
        data: [data],
        outDir: join(tmp, 'steer'),
        cacheDir: false,
        progress: false,
        log: () => {},
        train: { rank: 2, batchSize: 4, steps: 1 },
      });
      // The initial steer moves logits by ~1e-6 here: the first loss is the base model's mean cross-entropy.
      const cfg = parseDecoderConfig(ck.config, 'gptj');
      const V = cfg.vocabSize;
      const ce = (withBias: boolean) => {
        let sum = 0;
        let n = 0;
        for (const text of texts) {
          const ids = [...Buffer.from(text)];
          const z = referenceForward(cfg, ck.weights, ids).logits.data;
          for (let t = 0; t + 1 < ids.length; t++) {
            const row = Array.from(z.subarray(t * V, (t + 1) * V), (x, v) => x - (withBias ? 0 : bias.data[v]!));
            const max = Math.max(...row);
            sum += max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0)) - row[ids[t + 1]!]!;
            n++;
          }
        }
        return sum / n;
      };
      const first = r.result.history[0]!.loss;
      assert.ok(Math.abs(first - ce(true)) < 1e-4, `first loss ${first} vs cross-entropy with the bias ${ce(true)}`);
      assert.ok(Math.abs(first - ce(false)) > 1e-2, 'without the bias the loss would differ');
    } finally {
      model.close();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
