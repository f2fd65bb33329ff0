/**
 * `npm run bench [-- MEASURE...]`: lmsteer's speed and memory on a GPT-2-small-shaped model, beside
 * llama.cpp (node-llama-cpp) on the same weights. Each measure runs in its own child process (bench/worker.ts)
 * so peak RSS is per measure. Prints a table; writes bench/results/<name>-<timestamp>.json and latest.json.
 * Never asserts a time. Measures: see MEASURE_ORDER; `--list` prints them.
 */
import { ensurePeer, peerVersion } from './peer.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem, platform, release, arch } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchPaths } from './model.js';
import { readVersion, SETTINGS, THREADS, type MeasureResult } from './settings.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');

const MEASURE_ORDER = [
  'decode',
  'generate',
  'batch25',
  'steer',
  'llamacpp',
  'versus',
  'parity',
  'train',
  'extract',
  'eval',
  'profile',
  'gemm',
] as const;
const DESCRIPTIONS: Record<(typeof MEASURE_ORDER)[number], string> = {
  decode: 'lmsteer batch 1: prefill 200 tokens, then greedy decode steps (raw batch.step loop)',
  generate: 'lmsteer batch 1 decode through generate() (greedy and top-k 50)',
  batch25: 'lmsteer batch 25 × 200-token context decode',
  steer: 'decode unsteered vs a rank-768 × 2-slot steer (K = 1536)',
  llamacpp: 'node-llama-cpp on the same F32 weights: prefill + decode at batch 1',
  versus: 'lmsteer and llama.cpp alternating in one process: robust decode/prefill ratios',
  parity: 'lmsteer vs llama.cpp next-token probabilities and greedy tokens on one prompt',
  train: 'LossSession training step on cached hidden states (32 texts × 40–60 tokens)',
  extract: 'hidden-state extraction through OrtDecoder.forward (32 × 48 tokens)',
  eval: 'generate() with 25 samples per prompt vs batch 1',
  profile: 'ORT profiling: which ops take the time in prefill and decode',
  gemm: 'only the weight MatMuls of a decode step, at 1 and 25 rows: the ceiling of batched decode',
};

function runChild(args: string[], timeoutMs: number): { ok: boolean; stdout: string; error?: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status === 0) return { ok: true, stdout: r.stdout };
  const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
  const tail = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(-12).join('\n');
  return { ok: false, stdout: r.stdout ?? '', error: `${why}\n${tail}` };
}

const fmt = (v: number) =>
  Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(4);

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c >= 2 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ');
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

function machineInfo(): Record<string, unknown> {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? 'unknown',
    logicalCores: c.length,
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    onnxruntimeNode: readVersion('onnxruntime-node'),
    nodeLlamaCpp: peerVersion() ?? 'not installed',
    threads: THREADS,
  };
}

function main(): void {
  const args = process.argv.slice(2);
  if (args[0] === 'scale') {
    // Real model sizes, its own runner (bench/scale.ts): models and flags of its own.
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'scale.ts'), ...args.slice(1)], {
      cwd: repoRoot,
      stdio: 'inherit',
    });
    process.exit(r.status ?? 1);
  }
  if (args.includes('--list') || args.includes('--help')) {
    for (const m of MEASURE_ORDER) console.log(`${m.padEnd(9)} ${DESCRIPTIONS[m]}`);
    console.log('scale     real model sizes (Qwen2.5-0.5B / Llama-3.2-1B shapes): see bench/scale.ts');
    console.log('\nnpm run bench [-- MEASURE...]   (default: all)   |   npm run bench -- scale [--shape S] [--parity]');
    return;
  }
  const unknown = args.filter((a) => !(MEASURE_ORDER as readonly string[]).includes(a));
  if (unknown.length > 0) {
    console.error(`unknown measure(s): ${unknown.join(', ')}; known: ${MEASURE_ORDER.join(', ')}`);
    process.exit(2);
  }
  const selected = MEASURE_ORDER.filter((m) => args.length === 0 || args.includes(m));
  const needGguf = selected.some((m) => m === 'llamacpp' || m === 'versus' || m === 'parity');
  if (needGguf) {
    const err = ensurePeer(); // before machineInfo(), which records its version
    if (err) console.error(`note: ${err}; the llama.cpp measures will report the error`);
  }
  const machine = machineInfo();
  const loadBefore = loadavg();
  console.error(
    `lmsteer bench: ${selected.join(', ')} on ${machine.cpu} (${machine.logicalCores} cores), ${THREADS} threads`,
  );

  const started = Date.now();
  const prep = runChild([join(here, 'prepare.ts'), ...(needGguf ? [] : ['--no-gguf'])], 15 * 60_000);
  if (!prep.ok) {
    console.error(`preparing the benchmark model failed: ${prep.error}`);
    process.exit(1);
  }
  const prepared = JSON.parse(prep.stdout.trim().split('\n').pop() ?? '{}') as {
    timings: Record<string, number>;
    notes: string[];
    gguf: boolean;
  };
  for (const n of prepared.notes) console.error(`note: ${n}`);
  console.error(`model ready in ${benchPaths().modelDir} (${JSON.stringify(prepared.timings)})`);

  const tmp = mkdtempSync(join(tmpdir(), 'lmsteer-bench-'));
  const results: MeasureResult[] = [];
  const failures: Record<string, string> = {};
  for (const m of selected) {
    if ((m === 'llamacpp' || m === 'versus' || m === 'parity') && !prepared.gguf) {
      failures[m] = 'skipped: no model.gguf (needs the GPT-2 tokenizer from ../shared for its vocabulary)';
      continue;
    }
    const t0 = Date.now();
    process.stderr.write(`  ${m} … `);
    const out = join(tmp, `${m}.json`);
    const r = runChild([join(here, 'worker.ts'), m, out], 10 * 60_000);
    if (r.ok && existsSync(out)) {
      results.push(JSON.parse(readFileSync(out, 'utf8')) as MeasureResult);
      process.stderr.write(`${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    } else {
      failures[m] = r.error ?? 'no result file';
      process.stderr.write(`FAILED\n${failures[m]}\n`);
    }
  }
  rmSync(tmp, { recursive: true, force: true });

  // Comparisons across processes.
  const get = (measure: string, metric: string) => results.find((r) => r.measure === measure)?.metrics[metric]?.median;
  const derived: Record<string, number> = {};
  const ratio = (name: string, a?: number, b?: number) => {
    if (a !== undefined && b !== undefined) derived[name] = a / b;
  };
  ratio(
    'decode lmsteer/llama.cpp (separate processes)',
    get('decode', 'decode_tok_s'),
    get('llamacpp', 'decode_tok_s'),
  );
  ratio(
    'prefill lmsteer/llama.cpp (separate processes)',
    get('decode', 'prefill_tok_s'),
    get('llamacpp', 'prefill_tok_s'),
  );
  ratio('batch25/batch1 decode tok/s', get('batch25', 'decode_tok_s'), get('decode', 'decode_tok_s'));
  const g1 = get('gemm', 'gemm_step_b1_ms');
  ratio(
    'GEMM-only: 25 rows vs 1 row, tok/s',
    g1 === undefined ? undefined : SETTINGS.batchRows * g1,
    get('gemm', 'gemm_step_b25_ms'),
  );
  ratio('generate(top-k 50)/raw decode', get('generate', 'generate_topk50_tok_s'), get('decode', 'decode_tok_s'));
  const ext = get('extract', 'hidden_only_tok_s');
  const tr = get('train', 'train_tok_s');
  if (ext !== undefined && tr !== undefined)
    derived['from-scratch tok/s (extract once + train)'] = 1 / (1 / ext + 1 / tr);

  const rows: string[][] = [['measure', 'metric', 'median', 'min', 'max', 'n', 'unit']];
  for (const r of results) {
    for (const [k, s] of Object.entries(r.metrics))
      rows.push([r.measure, k, fmt(s.median), fmt(s.min), fmt(s.max), String(s.n), s.unit]);
    rows.push([r.measure, 'peak RSS', fmt(r.peakRssMiB), '', '', '1', 'MiB']);
  }
  for (const [k, v] of Object.entries(derived)) rows.push(['derived', k, fmt(v), '', '', '', '×|tok/s']);
  console.log(`\n${table(rows)}`);
  for (const r of results) for (const n of r.notes) console.log(`  [${r.measure}] ${n}`);
  for (const [m, e] of Object.entries(failures)) console.log(`  [${m}] FAILED: ${e.split('\n')[0]}`);

  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const name = args.length === 0 ? 'all' : selected.join('+');
  const report = {
    name,
    date: new Date().toISOString(),
    durationS: (Date.now() - started) / 1000,
    machine: { ...machine, loadavgBefore: loadBefore, loadavgAfter: loadavg() },
    settings: SETTINGS,
    model: {
      shape: 'GPT-2 small (12 layers, d 768, 12 heads, vocab 50257, 1024 positions), seeded random weights, float32',
      dir: benchPaths().modelDir,
      prepare: prepared.timings,
    },
    results,
    derived,
    failures,
  };
  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}-${stamp}.json`), JSON.stringify(report, null, 2));
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(report, null, 2));
  console.log(
    `\nwrote bench/results/${name}-${stamp}.json (${report.durationS.toFixed(0)} s; load avg ${loadBefore.map((l) => l.toFixed(1)).join(' ')} → ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')})`,
  );
}

main();
