/**
 * `npm run bench -- scale [--shape qwen2.5-0.5b|llama-3.2-1b|llama-3.1-8b] [--dtypes fp32,q8,q4] [--heads fp32,q8,q4]
 *                         [--gguf F16,Q8_0,Q4_0,Q4_0/Q6_K,Q4_0/Q8_0] [--parity] [--skip-batch25] [--rounds N]`
 * lmsteer at real sizes: a script-made bf16 checkpoint of the exact shape (bench/scaleModels.ts), loaded cold (graph
 * built into an empty cache) and warm, then prefill and greedy decode at batch 1 and 25; node-llama-cpp on GGUFs of
 * the same weights (bench/gguf.ts) beside it. Each dtype runs with each LM head precision of --heads. A GGUF type
 * `BODY/HEAD` gives the LM head its own type: Q4_0/Q6_K is what `llama-quantize … Q4_0` makes (its default head
 * type, Q8_0 where d is not a multiple of 256, as there), Q4_0/Q8_0 is lmsteer q4's precision (an 8-bit head). Every
 * measure runs in its own process (bench/scaleWorker.ts), so peak RSS is its own. `--rounds N` runs every warm
 * measure (lmsteer's and llama.cpp's) N times, alternating engines, and pools their windows: on a shared machine
 * the speed drifts by ±15% over minutes, so one run of each in sequence can put either engine ahead. `--parity`
 * first runs the GGUF writer's check on tiny models. Prints a table; writes
 * bench/results/scale-<shape>-<timestamp>.json. Never asserts a time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openSafetensorsModel } from '../src/formats/safetensors.js';
import { HEAD_DTYPES, WEIGHT_DTYPES, type HeadDType, type WeightDType } from '../src/graph/buildOptions.js';
import { storeRows } from '../src/graph/rowSource.js';
import { vocabFromTokenizerJson, writeLlamaGguf, type LlamaGgufConfig } from './gguf.js';
import { GGML_TYPES, storableType, type GgmlType } from './ggmlTypes.js';
import { ensurePeer } from './peer.js';
import { makeScaleModel } from './scaleModels.js';
import { SCALE_SHAPE_NAMES, SCALE_SHAPES, type ScaleShape } from './scaleShapes.js';
import { THREADS, type MeasureResult } from './settings.js';
import { summarize, type Summary } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');

const { values: args } = parseArgs({
  options: {
    shape: { type: 'string', default: 'qwen2.5-0.5b' },
    dtypes: { type: 'string', default: 'fp32,q8,q4' },
    heads: { type: 'string', default: 'fp32,q8' },
    gguf: { type: 'string', default: 'F16,Q8_0,Q4_0,Q4_0/Q6_K,Q4_0/Q8_0' },
    parity: { type: 'boolean', default: false },
    // The 8B shape's batch-25 prefill (2 × 25 × 128 tokens) alone takes ~10 minutes on 2 cores.
    'skip-batch25': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
  },
});

/** A --gguf entry: `Q4_0` (every matrix), or `Q4_0/Q8_0` (the LM head its own type); undefined if unknown. */
interface GgufSpec {
  body: GgmlType;
  head: GgmlType;
  /** The row name after "llama.cpp ". */
  key: string;
}
function parseGgufSpec(text: string): Omit<GgufSpec, 'key'> | undefined {
  const [body, head = body, extra] = text.split('/') as GgmlType[];
  if (extra !== undefined || !(body in GGML_TYPES) || !(head in GGML_TYPES)) return undefined;
  return { body, head };
}

/** `specs` as the types llama-quantize would store for rows of `d` (Q6_K → Q8_0 when d % 256 ≠ 0), duplicates dropped. */
function storableSpecs(specs: Omit<GgufSpec, 'key'>[], d: number): GgufSpec[] {
  const out = new Map<string, GgufSpec>();
  for (const s of specs) {
    const [body, head] = [storableType(s.body, d), storableType(s.head, d)];
    if (body !== s.body || head !== s.head)
      console.error(
        `note: --gguf ${s.body}/${s.head}: d = ${d} is no whole number of 256-value super-blocks, so ${s.head} is stored as ${head}, as llama-quantize does`,
      );
    const key = head === body ? body : `${body} + ${head} head`;
    out.set(key, { body, head, key });
  }
  return [...out.values()];
}

/** `a` and `b` as one measure: each metric's samples together, the higher memory readings, both runs' notes. */
function pooled(a: MeasureResult | undefined, b: MeasureResult): MeasureResult {
  if (!a) return b;
  const metrics: Record<string, Summary> = { ...a.metrics };
  for (const [k, m] of Object.entries(b.metrics))
    metrics[k] = metrics[k] ? summarize([...metrics[k].samples, ...m.samples], m.unit) : m;
  return {
    ...a,
    metrics,
    peakRssMiB: Math.max(a.peakRssMiB, b.peakRssMiB),
    loadedRssMiB: Math.max(a.loadedRssMiB ?? 0, b.loadedRssMiB ?? 0) || undefined,
    notes: [...a.notes, ...b.notes],
  };
}

/** Run one scaleWorker measure: `argv` then the result path then `after`. */
function child(argv: string[], after: string[] = []): { result?: MeasureResult; error?: string } {
  const out = join(mkdtempSync(join(tmpdir(), 'lmsteer-scale-')), 'r.json');
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'scaleWorker.ts'), ...argv, out, ...after], {
    cwd: repoRoot,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  try {
    if (r.status === 0 && existsSync(out)) return { result: JSON.parse(readFileSync(out, 'utf8')) as MeasureResult };
    const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
    const tail = `${r.stderr ?? ''}`.trim().split('\n').slice(-6).join('\n');
    return { error: `${why}: ${tail}` };
  } finally {
    rmSync(dirname(out), { recursive: true, force: true });
  }
}

const fmt = (v: number | undefined) =>
  v === undefined ? '—' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
const med = (r: MeasureResult | undefined, m: string) => r?.metrics[m]?.median;
const range = (r: MeasureResult | undefined, m: string) => {
  const s = r?.metrics[m];
  return s ? (s.n > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median)) : '—';
};

function main(): void {
  const shape = args.shape as ScaleShape;
  const rounds = Number(args.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    console.error(`--rounds ${args.rounds}: expected a whole number from 1 to 20`);
    process.exit(2);
  }
  if (!SCALE_SHAPE_NAMES.includes(shape)) {
    console.error(`unknown --shape ${shape}; known: ${SCALE_SHAPE_NAMES.join(', ')}`);
    process.exit(2);
  }
  const dtypes = args.dtypes.split(',') as WeightDType[];
  const ggufSpecs = args.gguf ? args.gguf.split(',').map(parseGgufSpec) : [];
  if (ggufSpecs.some((g) => !g)) {
    console.error(`unknown --gguf ${args.gguf}; types ${Object.keys(GGML_TYPES).join(', ')}, or BODY/HEAD`);
    process.exit(2);
  }
  const ggufTypes = storableSpecs(ggufSpecs as Omit<GgufSpec, 'key'>[], SCALE_SHAPES[shape].hidden_size);
  const heads = args.heads.split(',') as HeadDType[];
  const bad = dtypes.filter((d) => !WEIGHT_DTYPES.includes(d));
  const badHeads = heads.filter((h) => !HEAD_DTYPES.includes(h));
  if (bad.length || badHeads.length) {
    console.error(
      `unknown --dtypes / --heads ${[...bad, ...badHeads].join(', ')}; known: ${WEIGHT_DTYPES.join(', ')} / ${HEAD_DTYPES.join(', ')}`,
    );
    process.exit(2);
  }
  /** Every lmsteer configuration measured, with its row name. */
  const builds = dtypes.flatMap((dtype) =>
    heads.map((head) => ({ dtype, head, key: `lmsteer ${dtype}${head === 'fp32' ? '' : ` head ${head}`}` })),
  );
  const started = Date.now();
  const load0 = loadavg();
  const failures: Record<string, string> = {};
  const results: Record<string, MeasureResult> = {};
  // scaleWorker reads it (each measure is its own process, with this environment).
  if (args['skip-batch25']) process.env.LMSTEER_SCALE_SKIP_BATCH25 = '1';
  const peerErr = ggufTypes.length || args.parity ? ensurePeer() : undefined;
  if (peerErr) console.error(`note: ${peerErr}; llama.cpp measures skipped`);

  if (args.parity && !peerErr) {
    process.stderr.write('parity (tiny models, GGUF writer check) … ');
    const r = child(['parity']);
    if (r.result) results.parity = r.result;
    else failures.parity = r.error!;
    process.stderr.write(r.result ? 'done\n' : `FAILED\n${r.error}\n`);
  }

  process.stderr.write(`making ${shape} (bf16, seeded) … `);
  let t = Date.now();
  const paths = makeScaleModel(shape);
  const prepare: Record<string, number> = { make_model_s: (Date.now() - t) / 1000 };
  const modelBytes = statSync(paths.safetensors).size;
  process.stderr.write(`${paths.dir}\n`);

  const ggufs = new Map<string, string>();
  if (!peerErr && ggufTypes.length) {
    const cfg = SCALE_SHAPES[shape] as unknown as LlamaGgufConfig & { bos_token_id: number; eos_token_id: number };
    const store = openSafetensorsModel(paths.dir);
    const vocab = vocabFromTokenizerJson(JSON.parse(readFileSync(paths.tokenizer, 'utf8')), cfg.vocab_size);
    vocab.bosId = cfg.bos_token_id;
    vocab.eosId = cfg.eos_token_id;
    for (const { body, head, key } of ggufTypes) {
      const file = join(paths.dir, `model-${body}${head === body ? '' : `-head${head}`}.gguf`);
      if (!existsSync(file)) {
        process.stderr.write(`writing ${file} … `);
        t = Date.now();
        writeLlamaGguf(
          file,
          cfg,
          (n) => storeRows(store, n),
          (n) => store.get(n).data,
          vocab,
          body,
          `lmsteer-bench-${shape}`,
          head,
        );
        prepare[`write_gguf_${key}_s`] = (Date.now() - t) / 1000;
        process.stderr.write('done\n');
      }
      ggufs.set(key, file);
    }
    store.close();
  }

  const cacheRoot = join(paths.dir, 'lmsteer-cache');
  /** Each measure's result per round (index = round), for the per-round ratios. */
  const byRound: Record<string, MeasureResult[]> = {};
  const run = (key: string, argv: string[], after: string[] = []) => {
    const round = rounds > 1 && !key.endsWith(' cold') ? ` (round ${(byRound[key]?.length ?? 0) + 1})` : '';
    process.stderr.write(`${key}${round} … `);
    const t0 = Date.now();
    const r = child(argv, after);
    if (r.result) {
      results[key] = pooled(results[key], r.result);
      (byRound[key] ??= []).push(r.result);
    } else failures[key] = r.error!;
    process.stderr.write(r.result ? `${((Date.now() - t0) / 1000).toFixed(0)} s\n` : `FAILED\n${r.error}\n`);
  };
  const cacheOf = (dtype: WeightDType, head: HeadDType) => join(cacheRoot, `${dtype}-${head}`);
  const cold = ({ dtype, head, key }: (typeof builds)[number]) => {
    const cache = cacheOf(dtype, head);
    rmSync(cache, { recursive: true, force: true }); // a true cold load: the graph is built
    mkdirSync(cache, { recursive: true });
    run(`${key} cold`, ['lmsteer', paths.dir, dtype, head, cache], ['--load-only']);
  };
  const warm = ({ dtype, head, key }: (typeof builds)[number]) => {
    if (results[`${key} cold`]) run(key, ['lmsteer', paths.dir, dtype, head, cacheOf(dtype, head)]);
  };
  if (rounds === 1) {
    // One cache on disk at a time (the 8B shape's take 5–20 GB each).
    for (const b of builds) {
      cold(b);
      warm(b);
      rmSync(cacheOf(b.dtype, b.head), { recursive: true, force: true });
    }
    for (const [type, file] of ggufs) run(`llama.cpp ${type}`, ['llamacpp', file]);
  } else {
    for (const b of builds) cold(b);
    for (let r = 0; r < rounds; r++) {
      for (const b of builds) warm(b);
      for (const [type, file] of ggufs) run(`llama.cpp ${type}`, ['llamacpp', file]);
    }
    for (const b of builds) rmSync(cacheOf(b.dtype, b.head), { recursive: true, force: true });
  }

  // The table: one row per engine/precision.
  const rows: string[][] = [
    [
      'engine',
      'cold load s',
      'warm load s',
      'peak RSS MiB: build / cold load / warm load / decode',
      'on disk MiB',
      'decode b1 tok/s',
      'decode b25 tok/s',
      'prefill tok/s',
    ],
  ];
  for (const { key } of builds) {
    const cold = results[`${key} cold`];
    const warm = results[key];
    rows.push([
      key,
      fmt((med(cold, 'first_load_ms') ?? NaN) / 1000),
      fmt((med(warm, 'warm_load_ms') ?? NaN) / 1000),
      `${fmt(med(cold, 'build_peak_rss_mib'))} / ${fmt(cold?.peakRssMiB)} / ${fmt(med(warm, 'warm_load_peak_rss_mib'))} / ${fmt(warm?.peakRssMiB)}`,
      fmt(med(cold, 'graph_cache_mb')),
      range(warm, 'decode_b1_tok_s'),
      range(warm, 'decode_b25_tok_s'),
      range(warm, 'prefill_tok_s'),
    ]);
  }
  for (const type of ggufs.keys()) {
    const r = results[`llama.cpp ${type}`];
    rows.push([
      `llama.cpp ${type}`,
      '',
      fmt((med(r, 'load_ms') ?? NaN) / 1000),
      `— / — / ${fmt(r?.loadedRssMiB)} / ${fmt(r?.peakRssMiB)}`,
      fmt(r ? (r.config.ggufBytes as number) / 2 ** 20 : undefined),
      range(r, 'decode_b1_tok_s'),
      '',
      range(r, 'prefill_tok_s'),
    ]);
  }
  const ratios: Record<string, number> = {};
  /** With --rounds: each round's ratio of medians, to show how far one round can be from another. */
  const roundRatios: Record<string, number[]> = {};
  const ratio = (name: string, a: string, b: string) => {
    const [x, y] = [b1(a), b1(b)];
    if (x === undefined || y === undefined) return;
    ratios[name] = x / y;
    if (rounds > 1)
      roundRatios[name] = (byRound[a] ?? []).map(
        (r, i) => (med(r, 'decode_b1_tok_s') ?? NaN) / (med(byRound[b]?.[i], 'decode_b1_tok_s') ?? NaN),
      );
  };
  const b1 = (k: string) => med(results[k], 'decode_b1_tok_s');
  // Each build against every GGUF of the body's precision, whatever its head (Q4_0 + Q6_K head is llama-quantize's
  // Q4_0; Q4_0 + Q8_0 head is lmsteer q4's precision).
  const peer: Record<WeightDType, GgmlType> = { fp32: 'F16', q8: 'Q8_0', q4: 'Q4_0' };
  for (const { dtype, key } of builds) {
    if (dtype !== 'fp32') ratio(`${key} / lmsteer fp32, decode b1`, key, 'lmsteer fp32');
    for (const g of ggufs.keys())
      if (g === peer[dtype] || g.startsWith(`${peer[dtype]} + `))
        ratio(`${key} / llama.cpp ${g}, decode b1`, key, `llama.cpp ${g}`);
  }

  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((cell, c) => (c ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ');
  console.log(
    `\n${shape}: bf16 checkpoint ${(modelBytes / 2 ** 20).toFixed(0)} MiB, ${THREADS} threads, ${cpus()[0]?.model}`,
  );
  console.log([line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n'));
  for (const [k, v] of Object.entries(ratios))
    console.log(
      `  ${k}: ${v.toFixed(2)}${roundRatios[k] ? ` (rounds: ${roundRatios[k].map((x) => x.toFixed(2)).join(', ')})` : ''}`,
    );
  if (results.parity)
    for (const [k, m] of Object.entries(results.parity.metrics)) console.log(`  [parity] ${k}: ${m.median} ${m.unit}`);
  for (const [k, r] of Object.entries(results))
    if (k !== 'parity') for (const n of r.notes) console.log(`  [${k}] ${n}`);
  for (const [k, e] of Object.entries(failures)) console.log(`  [${k}] FAILED: ${e.split('\n')[0]}`);

  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `scale-${shape}-${stamp}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        shape,
        date: new Date().toISOString(),
        durationS: (Date.now() - started) / 1000,
        machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadavgBefore: load0, loadavgAfter: loadavg() },
        builds,
        model: { dir: paths.dir, bf16Bytes: modelBytes, prepare },
        results,
        rounds,
        ratios,
        roundRatios,
        failures,
      },
      null,
      2,
    ),
  );
  console.log(`\nwrote ${file}`);
}

main();
