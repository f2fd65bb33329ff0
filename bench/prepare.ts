/**
 * Make the benchmark model once (own process, so its peak memory stays out of the measures):
 * seeded weights → config.json + model.safetensors + model.gguf, then lmsteer's graph cache, built through
 * createDecoderSession exactly as the measures will open it. Prints one JSON line of timings.
 *   node --import tsx bench/prepare.ts [--no-gguf]
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSafetensorsModel } from '../src/formats/safetensors.js';
import { canonicalWeights, checkWeights, parseDecoderConfig } from '../src/models/registry.js';
import { createDecoderSession } from '../src/runtime/session.js';
import { vocabFromTokenizerJson, writeGpt2Gguf } from './gguf.js';
import { benchPaths, makeGpt2SmallWeights, readConfig, sharedTokenizerDir, writeModelFiles } from './model.js';
import { THREADS } from './settings.js';
import { now } from './stats.js';

const wantGguf = !process.argv.includes('--no-gguf');
const p = benchPaths();
const timings: Record<string, number> = {};
const notes: string[] = [];

if (!existsSync(p.safetensors) || !existsSync(p.config)) {
  let t = now();
  const weights = makeGpt2SmallWeights();
  timings.make_weights_ms = now() - t;
  t = now();
  writeModelFiles(p, weights);
  timings.write_safetensors_ms = now() - t;
}

const cfg = parseDecoderConfig(readConfig(p), p.config);
const store = openSafetensorsModel(p.modelDir);
const weights = canonicalWeights(cfg, store);
checkWeights(cfg, weights);

if (wantGguf && !existsSync(p.gguf)) {
  const tokDir = sharedTokenizerDir();
  if (!tokDir) {
    notes.push(
      'no GPT-2 tokenizer in ../shared/models/gpt2-tokenizer: model.gguf not written (its vocabulary comes from tokenizer.json), llama.cpp measures skipped',
    );
  } else {
    const t = now();
    const vocab = vocabFromTokenizerJson(
      JSON.parse(readFileSync(join(tokDir, 'tokenizer.json'), 'utf8')),
      cfg.vocabSize,
    );
    writeGpt2Gguf(
      p.gguf,
      {
        vocabSize: cfg.vocabSize,
        hiddenSize: cfg.hiddenSize,
        numLayers: cfg.numLayers,
        numHeads: cfg.numHeads,
        intermediateSize: cfg.intermediateSize,
        maxPositions: cfg.maxPositions,
        normEps: cfg.normEps,
      },
      (name) => weights.get(name),
      vocab,
    );
    timings.write_gguf_ms = now() - t;
  }
}

const t = now();
const session = await createDecoderSession(cfg, weights, { cacheDir: p.graphCache, threads: THREADS });
timings.graph_build_or_load_ms = now() - t;
await session.release();
store.close();
process.stdout.write(`${JSON.stringify({ modelDir: p.modelDir, gguf: existsSync(p.gguf), timings, notes })}\n`);
