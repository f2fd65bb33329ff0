/**
 * One measure of the scale benchmark in its own process (so peak RSS is its own; bench/scale.ts starts these):
 *   node --import tsx bench/scaleWorker.ts lmsteer MODEL_DIR DTYPE HEAD CACHE_DIR RESULT.json [--load-only] [--no-prepack]
 *   node --import tsx bench/scaleWorker.ts llamacpp GGUF_PATH RESULT.json
 *   node --import tsx bench/scaleWorker.ts parity RESULT.json            (tiny models: the GGUF writer's check)
 * Writes a MeasureResult (bench/settings.ts).
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensorsModel, writeSafetensors } from '../src/formats/safetensors.js';
import type { HeadDType, WeightDType } from '../src/graph/buildOptions.js';
import { storeRows } from '../src/graph/rowSource.js';
import { loadModel } from '../src/runtime/loadModel.js';
import type { SessionLoadInfo } from '../src/runtime/session.js';
import type { Decoder } from '../src/runtime/decoder.js';
import { decodeRun } from './decodeRun.js';
import type { Tensor } from '../src/util/tensor.js';
import { vocabFromTokenizerJson, writeLlamaGguf, type LlamaGgufConfig } from './gguf.js';
import { decodeRows, encodeRows, type GgmlType } from './ggmlTypes.js';
import { llamaCppGreedy, openLlamaCpp, peerVersion } from './peer.js';
import { writeCheckpointFolder, type SpecialToken } from './scaleModels.js';
import { THREADS, type MeasureResult } from './settings.js';
import { now, peakRssMiB, rssMiB, single, summarize, type Summary } from './stats.js';

/** Decode settings of the scale bench (smaller than the GPT-2 bench's: these models are 4–60× bigger). */
export const SCALE_SETTINGS = { promptTokens: 128, windowSteps: 8, windows: 3, batchRows: 25, batchWindows: 2 };

function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
  return best;
}

/** Prompt ids stay below this: ordinary tokens in both real vocabularies (151643 and 128000 BPE tokens). */
const PROMPT_ID_LIMIT = 100000;

/** Seeded token ids below `limit`: prompts of the synthetic vocabulary (the bench feeds ids, not text). */
export function promptIds(n: number, limit: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % limit;
  });
}

/** Prefill `rows`, then `windows` timed windows of `steps` greedy steps. */
function lmsteerDecode(dec: Decoder, rows: number[][], steps: number, windows: number) {
  return decodeRun(dec, rows, steps, windows);
}

/**
 * lmsteer on a scale model: one load, then (unless `loadOnly`) prefill and decode. bench/scale.ts runs it twice:
 * `loadOnly` on an empty cache (a cold load: its peak RSS is the build's), then on the built cache (a warm load).
 */
async function measureLmsteer(
  modelDir: string,
  dtype: WeightDType,
  head: HeadDType,
  cacheDir: string,
  loadOnly: boolean,
  prepack = true,
): Promise<MeasureResult> {
  const loads: SessionLoadInfo[] = [];
  const name = `lmsteer-${dtype}${head === 'fp32' ? '' : `-head-${head}`}${prepack ? '' : '-no-prepack'}`;
  const open = async () => {
    const t0 = now();
    const m = await loadModel(modelDir, {
      cacheDir,
      threads: THREADS,
      dtype,
      head,
      prepack,
      onLoaded: (i) => loads.push(i),
    });
    return { m, ms: now() - t0 };
  };
  const metrics: Record<string, Summary> = {};
  const notes: string[] = [];
  const cold = await open();
  const coldPeak = peakRssMiB();
  metrics.first_load_ms = single(cold.ms, 'ms');
  const first = loads[0];
  const buildPeak = first.buildPeakRssBytes !== undefined ? first.buildPeakRssBytes / 2 ** 20 : undefined;
  notes.push(
    `first load: ${first.cacheHit ? 'graph from the cache (already built by an earlier run)' : 'graph built'}; key ${first.keyMs.toFixed(0)} ms, build ${first.buildMs.toFixed(0)} ms, session ${first.sessionMs.toFixed(0)} ms; peak RSS ${buildPeak !== undefined ? `${buildPeak.toFixed(0)} MiB after the build, ` : ''}${coldPeak.toFixed(0)} MiB after the session`,
  );
  if (buildPeak !== undefined) metrics.build_peak_rss_mib = single(buildPeak, 'MiB');
  if (loadOnly) {
    metrics.graph_cache_mb = single((first.cacheBytes ?? 0) / 2 ** 20, 'MiB');
    metrics.loaded_rss_mib = single(rssMiB(), 'MiB');
    cold.m.close();
    return {
      measure: `${name}-load`,
      config: { modelDir, dtype, head, threads: THREADS },
      metrics,
      loadedRssMiB: rssMiB(),
      peakRssMiB: coldPeak,
      notes,
    };
  }
  // One load per process: a second one here would overlap the first's release (ORT frees it asynchronously)
  // and count both in the peak. bench/scale.ts runs this after the --load-only run built the cache.
  const warm = cold;
  metrics.warm_load_ms = single(warm.ms, 'ms');
  metrics.warm_load_peak_rss_mib = single(coldPeak, 'MiB');
  metrics.graph_cache_mb = single((first.cacheBytes ?? 0) / 2 ** 20, 'MiB');
  const loaded = rssMiB();
  const dec = warm.m.decoder;
  const limit = Math.min(PROMPT_ID_LIMIT, warm.m.cfg.vocabSize);
  const { promptTokens: T, windowSteps: S, windows: W, batchRows: B, batchWindows: BW } = SCALE_SETTINGS;
  await lmsteerDecode(dec, [promptIds(16, 1000, 9)], 2, 1);
  const b1 = await lmsteerDecode(dec, [promptIds(T, limit, 1)], S, W);
  metrics.prefill_tok_s = single((T / b1.prefillMs) * 1000, 'tok/s');
  metrics.decode_b1_tok_s = summarize(
    b1.windowMs.map((ms) => (S / ms) * 1000),
    'tok/s',
  );
  if (process.env.LMSTEER_SCALE_SKIP_BATCH25 !== '1') {
    const rows = Array.from({ length: B }, (_, i) => promptIds(T, limit, 100 + i));
    await lmsteerDecode(dec, rows, 2, 1); // warm-up at the measured shape (ORT's arena, fresh pages)
    const b25 = await lmsteerDecode(dec, rows, S, BW);
    metrics.decode_b25_tok_s = summarize(
      b25.windowMs.map((ms) => ((B * S) / ms) * 1000),
      'tok/s',
    );
  }
  warm.m.close();
  return {
    measure: name,
    config: { modelDir, dtype, head, threads: THREADS, ...SCALE_SETTINGS },
    metrics,
    loadedRssMiB: loaded,
    peakRssMiB: peakRssMiB(),
    notes,
  };
}

async function measureLlamaCpp(gguf: string): Promise<MeasureResult> {
  const { promptTokens: T, windowSteps: S, windows: W } = SCALE_SETTINGS;
  const { llama, model, context, loadMs } = await openLlamaCpp(gguf, 512);
  const loaded = rssMiB();
  const seq = context.getSequence();
  await llamaCppGreedy(seq, promptIds(16, 1000, 9), 2, 1);
  const r = await llamaCppGreedy(seq, promptIds(T, PROMPT_ID_LIMIT, 1), S, W);
  const release = llama.llamaCppRelease.release;
  await context.dispose();
  await model.dispose();
  return {
    measure: `llamacpp`,
    config: {
      gguf,
      ggufBytes: statSync(gguf).size,
      threads: THREADS,
      nodeLlamaCpp: peerVersion(),
      llamaCppRelease: release,
    },
    metrics: {
      load_ms: single(loadMs, 'ms'),
      prefill_tok_s: single((T / r.prefillMs) * 1000, 'tok/s'),
      decode_b1_tok_s: summarize(
        r.windowMs.map((ms) => (S / ms) * 1000),
        'tok/s',
      ),
    },
    loadedRssMiB: loaded,
    peakRssMiB: peakRssMiB(),
    notes: [],
  };
}

/** Tiny models of both GGUF architectures, every feature the writer maps (GQA, llama3 rope, biases, tying). */
const TINY: {
  name: string;
  config: LlamaGgufConfig & Record<string, unknown>;
  tokens: { bpe: number; special: SpecialToken[] };
}[] = [
  {
    name: 'tiny llama (llama3 rope scaling, GQA 8/2, untied)',
    config: {
      model_type: 'llama',
      vocab_size: 2304,
      hidden_size: 256,
      intermediate_size: 704,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      head_dim: 32,
      max_position_embeddings: 2048,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      rope_scaling: {
        rope_type: 'llama3',
        factor: 32,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 64,
      },
      tie_word_embeddings: false,
      hidden_act: 'silu',
      bos_token_id: 2048,
      eos_token_id: 2049,
    },
    tokens: {
      bpe: 2048,
      special: [
        { id: 2048, content: '<|begin_of_text|>' },
        { id: 2049, content: '<|end_of_text|>' },
      ],
    },
  },
  {
    name: 'tiny qwen2 (q/k/v biases, GQA 4/2, tied, vocab padded past the tokenizer)',
    config: {
      model_type: 'qwen2',
      vocab_size: 2080,
      hidden_size: 256,
      intermediate_size: 512,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 2048,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      use_sliding_window: false,
      hidden_act: 'silu',
      bos_token_id: 2048,
      eos_token_id: 2048,
    },
    tokens: { bpe: 2048, special: [{ id: 2048, content: '<|endoftext|>' }] },
  },
];

/**
 * The GGUF writer's check: on tiny random models, llama.cpp's greedy tokens from F32 and F16 GGUFs equal lmsteer's
 * fp32 greedy tokens; for Q8_0 / Q4_0 / Q4_0 with a Q6_K or Q8_0 head (which change the weights) they equal lmsteer
 * fp32's on the weights ggml's block layout decodes from the written bytes.
 */
async function measureParity(): Promise<MeasureResult> {
  const root = mkdtempSync(join(tmpdir(), 'lmsteer-parity-'));
  const metrics: Record<string, Summary> = {};
  const notes: string[] = [];
  const PROMPTS = 6;
  const N = 8; // greedy tokens per prompt
  try {
    for (const [i, tiny] of TINY.entries()) {
      const dir = join(root, `m${i}`);
      writeCheckpointFolder(dir, tiny.config, tiny.tokens, 77 + i);
      const prompts = Array.from({ length: PROMPTS }, (_, p) => promptIds(6 + 3 * p, tiny.tokens.bpe, 5 + 31 * i + p));
      const greedy = async (modelDir: string) => {
        const m = await loadModel(modelDir, { cacheDir: join(root, 'cache'), threads: THREADS });
        const rows: number[][] = [];
        for (const prompt of prompts) rows.push((await lmsteerDecode(m.decoder, [prompt], N - 1, 1)).tokens[0]);
        m.close();
        return rows;
      };
      /** Tokens up to each row's first divergence (after one, the contexts differ and nothing is compared). */
      const agree = (a: number[][], b: number[][]) =>
        a.reduce((n, row, r) => {
          const d = row.findIndex((t, j) => t !== b[r][j]);
          return n + (d < 0 ? N : d);
        }, 0);
      const ours = await greedy(dir);
      const store = openSafetensorsModel(dir);
      const vocab = vocabFromTokenizerJson(
        JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
        tiny.config.vocab_size,
      );
      vocab.bosId = tiny.config.bos_token_id as number;
      vocab.eosId = tiny.config.eos_token_id as number;
      const distinct = new Set(ours.flat()).size;
      notes.push(`${tiny.name}: lmsteer fp32 ${JSON.stringify(ours)} (${distinct} distinct tokens)`);
      // [body, LM head]: Q4_0 with a Q6_K / Q8_0 head checks the head's own type, tied (token_embd) and untied (output).
      const kinds: [GgmlType, GgmlType][] = [
        ['F32', 'F32'],
        ['F16', 'F16'],
        ['Q8_0', 'Q8_0'],
        ['Q4_0', 'Q4_0'],
        ['Q4_0', 'Q6_K'],
        ['Q4_0', 'Q8_0'],
      ];
      const headName = tiny.config.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
      for (const [body, head] of kinds) {
        const type = body === head ? body : `${body}-head${head}`;
        const gguf = join(dir, `model-${type}.gguf`);
        writeLlamaGguf(
          gguf,
          tiny.config,
          (n) => storeRows(store, n),
          (n) => store.get(n).data,
          vocab,
          body,
          undefined,
          head,
        );
        const { model, context } = await openLlamaCpp(gguf, 256);
        const seq = context.getSequence();
        const theirs: number[][] = [];
        for (const prompt of prompts) theirs.push((await llamaCppGreedy(seq, prompt, N - 1, 1)).tokens);
        await context.dispose();
        await model.dispose();
        metrics[`m${i}_${type}_greedy_equal`] = single(agree(ours, theirs), `of ${PROMPTS * N}`);
        notes.push(`  llama.cpp ${type}: ${JSON.stringify(theirs)}`);
        if (body === 'Q8_0' || body === 'Q4_0') {
          // The block format's proof: lmsteer fp32 on the weights ggml's layout decodes from our bytes must give
          // llama.cpp's tokens (a wrong scale or nibble order would make llama.cpp read other weights).
          const deqDir = join(root, `m${i}-${type}`);
          mkdirSync(deqDir, { recursive: true });
          for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(dir, f), join(deqDir, f));
          const tensors: Record<string, Tensor<'float32'>> = {};
          for (const n of store.names()) {
            const t = store.get(n);
            const q = n === headName ? head : body;
            tensors[n] = t.shape.length === 2 ? { ...t, data: decodeRows(encodeRows(t.data, t.shape[1], q), q) } : t;
          }
          writeSafetensors(join(deqDir, 'model.safetensors'), tensors);
          const deq = await greedy(deqDir);
          metrics[`m${i}_${type}_dequantized_greedy_equal`] = single(agree(deq, theirs), `of ${PROMPTS * N}`);
          notes.push(`  lmsteer fp32 on ${type}-dequantized weights: ${JSON.stringify(deq)}`);
        }
      }
      store.close();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return {
    measure: 'parity',
    config: { prompts: PROMPTS, greedyTokens: N, models: TINY.map((t) => t.name), nodeLlamaCpp: peerVersion() },
    metrics,
    peakRssMiB: peakRssMiB(),
    notes,
  };
}

async function main(): Promise<void> {
  const [what, ...rest] = process.argv.slice(2);
  let res: MeasureResult;
  let out: string;
  const flags = rest.slice(5);
  if (what === 'lmsteer' && rest.length >= 5 && flags.every((f) => f === '--load-only' || f === '--no-prepack')) {
    const [dir, dtype, head, cache] = rest;
    const loadOnly = flags.includes('--load-only');
    res = await measureLmsteer(
      dir,
      dtype as WeightDType,
      head as HeadDType,
      cache,
      loadOnly,
      !flags.includes('--no-prepack'),
    );
    out = rest[4];
  } else if (what === 'llamacpp' && rest.length === 2 && existsSync(rest[0])) {
    res = await measureLlamaCpp(rest[0]);
    out = rest[1];
  } else if (what === 'parity' && rest.length === 1) {
    res = await measureParity();
    out = rest[0];
  } else {
    process.stderr.write(
      'usage: bench/scaleWorker.ts lmsteer DIR DTYPE HEAD CACHE OUT [--load-only] [--no-prepack] | llamacpp GGUF OUT | parity OUT\n',
    );
    process.exit(2);
  }
  writeFileSync(out, JSON.stringify(res, null, 2));
}

await main();
