/**
 * Acceptance: a sentiment steer trained here on stories260K moves the sentiment of generated text with its
 * value, monotonically, as LM-Steer promises (Han et al. 2024, §4: one steer, positive and negative values).
 *
 * Setup, and why (see the engineer's notes in the final report):
 * - SST-2 (GLUE train.tsv), balanced, a seeded 2000-text subset, 500 steps: ~5 s of training here.
 * - No dummy slot: with it (the reference's default) the dummy slot, held at 1, learns SST's movie-review style
 *   and garbles this TinyStories model's text at every value; balanced ±1 labels instead cancel the shared
 *   style out of the one trained slot, so value 0 is the base model exactly.
 * - Rank 2: a 64-wide model loses fluency quickly under a full-rank steer (rank 64 breaks down past |v| ≈ 5);
 *   rank 2 keeps text fluent up to |v| = 16, and text that stays text is what VADER can score.
 * Everything is seeded, so the numbers are the same on every run of this machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vaderCompound } from '../../src/eval/scorers/vader.js';
import { generate } from '../../src/runtime/generate.js';
import { loadModel } from '../../src/runtime/loadModel.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import { runTraining } from '../../src/train/run.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const skip = skipUnlessShared('models/stories260K/hf') || skipUnlessShared('data/sentiment/sst2_glue/train.tsv');

const PROMPTS = [
  'Once upon a time',
  'The little dog',
  'One day, Lily',
  'Tom was',
  'The girl looked at the',
  'Mom said',
];
const VALUES = [-16, -8, 0, 8, 16];

test(
  'a sentiment steer trained on SST-2 makes stories260K text more positive as its value grows',
  { skip, timeout: 240_000 },
  async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'lmsteer-sentiment-'));
    const model = await loadModel(sharedPath('models/stories260K/hf')!, { cacheDir: join(tmp, 'graphs') });
    try {
      const out = join(tmp, 'steer');
      const run = await runTraining({
        model: model.id,
        loaded: model,
        data: [sharedPath('data/sentiment/sst2_glue/train.tsv')!],
        outDir: out,
        balance: true,
        limit: 2000,
        train: { slotName: 'sentiment', dummySlot: false, rank: 2, steps: 500, seed: 0 },
        cacheDir: join(tmp, 'hidden'),
        progress: false,
        log: () => {},
      });
      assert.equal(run.result.history.length, 500);
      assert.deepEqual(
        run.dataset.summary.perLabel.map((p) => p.label),
        [-1, 1],
      );
      const first = run.result.history.slice(0, 20).reduce((a, p) => a + p.loss, 0) / 20;
      assert.ok(run.recentLoss! < first, `loss fell: ${first.toFixed(3)} → ${run.recentLoss!.toFixed(3)}`);

      const active = SteerSet.load(model, [out]);
      const means: number[] = [];
      for (const v of VALUES) {
        const scale = active.resolve({ sentiment: v }).scale;
        const res = await generate(
          model.decoder,
          model.tokenizer,
          PROMPTS.map((prompt) => ({ prompt, numSamples: 32, steerScale: scale })),
          { maxNewTokens: 30, seed: 0, steer: active.directions, maxPositions: model.cfg.maxPositions },
        );
        const scores = res.flatMap((r, i) => r.samples.map((s) => vaderCompound(PROMPTS[i] + s.text)));
        means.push(scores.reduce((a, b) => a + b, 0) / scores.length);
      }
      const table = VALUES.map((v, i) => `${v}: ${means[i]!.toFixed(3)}`).join(', ');
      console.log(`mean VADER compound by steer value (${PROMPTS.length}×32 samples of 30 tokens): ${table}`);
      for (let i = 1; i < means.length; i++) assert.ok(means[i]! > means[i - 1]!, `not monotonic: ${table}`);
      assert.ok(means.at(-1)! - means[0]! > 0.2, `+${VALUES.at(-1)} vs ${VALUES[0]} differ by less than 0.2: ${table}`);
    } finally {
      model.close();
    }
  },
);
