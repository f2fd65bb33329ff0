/**
 * Which MatMulNBits settings to use: block size (32/64/128) × accuracy_level (0/1/4) × bits (4/8) × symmetric
 * or asymmetric, on the per-token weight shapes of a real model, against float32 MatMul on the same weights.
 *
 *   node --import tsx bench/quantProbe.ts [--shape qwen2.5-0.5b|llama-3.2-1b] [--layers 2] [--head] [--gather]
 *                  [--bits 4,8] [--blocks 32,64,128] [--acc 0,1,4] [--sym both|sym|asym] [--rounds 4]
 *
 * For each setting: ms per decode step of `--layers` layers' weight products (q/k/v fused, o, gate/up fused,
 * down; 1 row and 25 rows; medians with min–max and the 10th percentile, over interleaved rounds), the output error relative to float32 (‖y_q − y‖ / ‖y‖ over
 * all outputs) and the weights' own error (‖W − deq(W)‖ / ‖W‖). `--head` adds the LM head [V, d]: its time at 1
 * row and the error of the steering effect (logits of h + Δh minus logits of h, Δh 5% of ‖h‖) when the head
 * itself is quantized, and when the steering term goes through the head as its own row (logits = head(h) +
 * head(Δh): the effect is then head(Δh), not a difference of two rounded products). `--gather` adds the embedding lookup: float32 Gather vs GatherBlockQuantized. Weights: seeded normal, std 0.02 with 0.1% outliers ×10; activations: normal with 1% of
 * channels ×20 (the outlier features of real LLM activations, which int8 activation quantization must survive).
 * Prints a table; writes bench/results/quant-<shape>-<timestamp>.json. Never asserts a time.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { GraphBuilder, MS_DOMAIN } from '../src/graph/builder.js';
import { matMulNBits, nbitsInitializers, type NBitsOpOptions } from '../src/graph/nbitsOps.js';
import { dequantize, quantizeRows, type QuantBits } from '../src/graph/quantize.js';
import { tensorRows } from '../src/graph/rowSource.js';
import { sessionOptions } from '../src/runtime/session.js';
import { fastNormals } from './model.js';
import { layerMatrices, SCALE_SHAPE_NAMES, shapeDims, type ScaleShape } from './scaleShapes.js';
import { THREADS } from './settings.js';
import { now, summarize, type Summary } from './stats.js';

const { values: args } = parseArgs({
  options: {
    shape: { type: 'string', default: 'qwen2.5-0.5b' },
    layers: { type: 'string', default: '2' },
    head: { type: 'boolean', default: false },
    gather: { type: 'boolean', default: false },
    bits: { type: 'string', default: '4,8' },
    blocks: { type: 'string', default: '32,64,128' },
    acc: { type: 'string', default: '0,1,4' },
    sym: { type: 'string', default: 'both' },
    rounds: { type: 'string', default: '4' },
  },
});
if (!SCALE_SHAPE_NAMES.includes(args.shape as ScaleShape)) {
  console.error(`unknown --shape ${args.shape}; known: ${SCALE_SHAPE_NAMES.join(', ')}`);
  process.exit(2);
}
const shape = args.shape as ScaleShape;
const dims = shapeDims(shape);
const LAYERS = Number(args.layers);
const ROUNDS = Number(args.rounds);
const list = (s: string) => s.split(',').map(Number);

interface Matrix {
  name: string;
  N: number;
  K: number;
  w: Float32Array; // [N, K]
}

function weights(N: number, K: number, seed: number): Float32Array {
  const r = fastNormals(seed);
  const w = new Float32Array(N * K);
  for (let i = 0; i < w.length; i++) w[i] = 0.02 * r();
  for (let i = seed % 997; i < w.length; i += 1000) w[i] *= 10;
  return w;
}

function activations(M: number, K: number, seed: number): Float32Array {
  const r = fastNormals(seed);
  const a = new Float32Array(M * K);
  for (let i = 0; i < a.length; i++) a[i] = (i % K) % 100 === 7 ? 20 * r() : r(); // channels 7, 107, …: outliers
  return a;
}

function transposed(m: Matrix): Float32Array {
  const out = new Float32Array(m.N * m.K);
  for (let n = 0; n < m.N; n++) for (let k = 0; k < m.K; k++) out[k * m.N + n] = m.w[n * m.K + k];
  return out;
}

type Setting = { kind: 'fp32' } | ({ kind: 'nbits' } & NBitsOpOptions);
const label = (s: Setting) =>
  s.kind === 'fp32'
    ? 'fp32 MatMul'
    : `${s.bits}-bit b${s.blockSize} ${s.symmetric ? 'sym' : 'asym'} acc${s.accuracyLevel}`;

/** One graph: x [M, K_i] → y_i = x · W_iᵀ for every matrix, float32 MatMul or MatMulNBits. */
async function session(mats: Matrix[], s: Setting, dir: string): Promise<ort.InferenceSession> {
  const g = new GraphBuilder('probe');
  const inputs = new Map<number, string>();
  mats.forEach((m, i) => {
    if (!inputs.has(m.K)) inputs.set(m.K, g.input(`x${m.K}`, 'float32', ['M', m.K]));
    const x = inputs.get(m.K)!;
    let y: string;
    if (s.kind === 'fp32') {
      const w = g.lazyInitializer(`w${i}`, 'float32', [m.K, m.N], () => new Uint8Array(transposed(m).buffer));
      y = g.op('MatMul', [x, w]);
    } else {
      const init = nbitsInitializers(
        g,
        `w${i}`,
        [m.N, m.K],
        () => tensorRows({ dtype: 'float32', shape: [m.N, m.K], data: m.w }),
        s,
      );
      y = matMulNBits(g, x, init, s);
    }
    g.output(y, `y${i}`, 'float32', ['M', m.N]);
  });
  const model = join(dir, 'model.onnx');
  writeFileSync(model, g.serialize({ externalPath: join(dir, 'weights.bin'), externalName: 'weights.bin' }));
  return ort.InferenceSession.create(model, sessionOptions(THREADS));
}

function feeds(mats: Matrix[], M: number, seed: number): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const K of new Set(mats.map((m) => m.K)))
    out[`x${K}`] = new ort.Tensor('float32', activations(M, K, seed + K), [M, K]);
  return out;
}

/** `n` timed runs after one untimed (ms each). */
async function timeRuns(s: ort.InferenceSession, f: Record<string, ort.Tensor>, n: number): Promise<number[]> {
  await s.run(f);
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = now();
    await s.run(f);
    ts.push(now() - t);
  }
  return ts;
}

/** ‖a − b‖ / ‖b‖ over all outputs. */
function relErr(a: Float32Array[], b: Float32Array[]): number {
  let num = 0;
  let den = 0;
  a.forEach((x, i) => {
    for (let j = 0; j < x.length; j++) {
      num += (x[j] - b[i][j]) ** 2;
      den += b[i][j] ** 2;
    }
  });
  return Math.sqrt(num / den);
}

async function outputs(s: ort.InferenceSession, f: Record<string, ort.Tensor>, n: number): Promise<Float32Array[]> {
  const out = await s.run(f);
  return Array.from({ length: n }, (_, i) => out[`y${i}`].data as Float32Array);
}

function settings(): Setting[] {
  const out: Setting[] = [{ kind: 'fp32' }];
  const syms = args.sym === 'both' ? [true, false] : [args.sym === 'sym'];
  for (const bits of list(args.bits) as QuantBits[])
    for (const blockSize of list(args.blocks))
      for (const symmetric of syms)
        for (const accuracyLevel of list(args.acc) as (0 | 1 | 4)[])
          out.push({ kind: 'nbits', bits, blockSize, symmetric, accuracyLevel });
  return out;
}

interface Row {
  setting: string;
  b1: Summary;
  b25: Summary;
  outErr: number;
  weightErr: number;
  bytes: number;
}

/**
 * All settings' sessions are opened first, then timed in interleaved rounds (each round runs every session), so
 * a neighbour's load on the shared machine hits every setting alike; the summaries pool all rounds.
 */
async function probeBody(tmp: string): Promise<Row[]> {
  const mats: Matrix[] = [];
  for (let l = 0; l < LAYERS; l++)
    for (const m of layerMatrices(dims))
      mats.push({ ...m, name: `${l}.${m.name}`, w: weights(m.N, m.K, 100 * l + m.N) });
  const f1 = feeds(mats, 1, 1);
  const f25 = feeds(mats, 25, 2);
  const all = settings();
  const sessions: ort.InferenceSession[] = [];
  const outs: Float32Array[][] = [];
  for (const s of all) {
    const dir = mkdtempSync(join(tmp, 'g-'));
    const sess = await session(mats, s, dir);
    sessions.push(sess);
    outs.push(await outputs(sess, f25, mats.length));
  }
  const times1: number[][] = all.map(() => []);
  const times25: number[][] = all.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < all.length; i++) {
      times1[i].push(...(await timeRuns(sessions[i], f1, 5)));
      times25[i].push(...(await timeRuns(sessions[i], f25, 2)));
    }
    console.error(`  round ${round + 1}/${ROUNDS} (load avg ${loadavg()[0].toFixed(1)})`);
  }
  for (const s of sessions) await s.release();
  const weightErrs = new Map<string, number>();
  return all.map((s, i) => {
    let weightErr = 0;
    let bytes = mats.reduce((n, m) => n + 4 * m.N * m.K, 0);
    if (s.kind === 'nbits') {
      // Weight error on the first layer (the same rule on every matrix), shared by the accuracy levels.
      const key = `${s.bits}/${s.blockSize}/${s.symmetric}`;
      if (!weightErrs.has(key)) {
        let num = 0;
        let den = 0;
        for (const m of mats.slice(0, 4)) {
          const deq = dequantize(quantizeRows(tensorRows({ dtype: 'float32', shape: [m.N, m.K], data: m.w }), s));
          for (let j = 0; j < deq.length; j++) {
            num += (deq[j] - m.w[j]) ** 2;
            den += m.w[j] ** 2;
          }
        }
        weightErrs.set(key, Math.sqrt(num / den));
      }
      weightErr = weightErrs.get(key)!;
      const perBlock = (s.blockSize * s.bits) / 8 + 4 + (s.symmetric ? 0 : s.bits / 8);
      bytes = mats.reduce((n, m) => n + m.N * Math.ceil(m.K / s.blockSize) * perBlock, 0);
    }
    return {
      setting: label(s),
      b1: summarize(times1[i], 'ms'),
      b25: summarize(times25[i], 'ms'),
      outErr: i === 0 ? 0 : relErr(outs[i], outs[0]),
      weightErr,
      bytes,
    };
  });
}

interface HeadRow {
  setting: string;
  b1: Summary;
  logitErr: number;
  steerErr: number;
  /** The steering term as its own row through the same head: head(h) + head(Δh), error of head(Δh). */
  splitSteerErr: number;
}

/** The LM head [V, d]: time at 1 row, and how well a quantized head keeps the steering effect. */
async function probeHead(tmp: string): Promise<HeadRow[]> {
  const { vocab: V, d } = dims;
  const E: Matrix = { name: 'head', N: V, K: d, w: weights(V, d, 4242) };
  const rows = 4;
  const h = activations(rows, d, 77);
  const r = fastNormals(5);
  const delta = new Float32Array(rows * d);
  for (let i = 0; i < rows; i++) {
    let hn = 0;
    let dn = 0;
    for (let k = 0; k < d; k++) {
      delta[i * d + k] = r();
      hn += h[i * d + k] ** 2;
      dn += delta[i * d + k] ** 2;
    }
    const s = (0.05 * Math.sqrt(hn)) / Math.sqrt(dn);
    for (let k = 0; k < d; k++) delta[i * d + k] *= s;
  }
  const steered = h.map((v, i) => v + delta[i]);
  const feed = (x: Float32Array) => ({ [`x${d}`]: new ort.Tensor('float32', x, [rows, d]) });
  const out: HeadRow[] = [];
  let refPlain: Float32Array | undefined;
  let refEffect: Float32Array | undefined;
  const wanted = settings().filter((s) => s.kind === 'fp32' || (s.blockSize === 32 && s.accuracyLevel !== 0));
  for (const s of wanted) {
    const dir = mkdtempSync(join(tmp, 'h-'));
    const sess = await session([E], s, dir);
    const b1 = summarize(
      await timeRuns(sess, { [`x${d}`]: new ort.Tensor('float32', h.subarray(0, d), [1, d]) }, 4 * ROUNDS),
      'ms',
    );
    const plain = (await outputs(sess, feed(h), 1))[0];
    const st = (await outputs(sess, feed(steered), 1))[0];
    const split = (await outputs(sess, feed(delta), 1))[0];
    await sess.release();
    rmSync(dir, { recursive: true, force: true });
    const effect = st.map((v, i) => v - plain[i]);
    if (s.kind === 'fp32') {
      refPlain = plain;
      refEffect = effect;
    }
    const row = {
      setting: label(s),
      b1,
      logitErr: relErr([plain], [refPlain!]),
      steerErr: relErr([effect], [refEffect!]),
      splitSteerErr: relErr([split], [refEffect!]),
    };
    out.push(row);
    console.error(
      `  head ${row.setting.padEnd(24)} 1 row ${b1.median.toFixed(2)} ms, logits err ${row.logitErr.toExponential(2)}, steer effect err ${row.steerErr.toExponential(2)} (split ${row.splitSteerErr.toExponential(2)})`,
    );
  }
  return out;
}

interface GatherRow {
  setting: string;
  one: Summary;
  prefill: Summary;
  mb: number;
}

/**
 * The embedding lookup [V, d]: float32 Gather (rows of E, and columns of Eᵀ as tied graphs read it) against
 * GatherBlockQuantized on 8- and 4-bit blocks of 32, for 1 id (a decode step) and 25 × 200 ids (a prefill).
 */
async function probeGather(tmp: string): Promise<GatherRow[]> {
  const { vocab: V, d } = dims;
  const E: Matrix = { name: 'embed', N: V, K: d, w: weights(V, d, 99) };
  const ids = (n: number) =>
    new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 7919) % V)),
      [1, n],
    );
  const variants: { setting: string; build: (g: GraphBuilder, ids: string) => string; mb: number }[] = [
    {
      setting: 'fp32 Gather on E [V, d]',
      build: (g, x) =>
        g.op('Gather', [g.lazyInitializer('e', 'float32', [V, d], () => new Uint8Array(E.w.buffer)), x], { axis: 0 }),
      mb: (4 * V * d) / 1e6,
    },
    {
      setting: 'fp32 Gather on Eᵀ [d, V], axis 1',
      build: (g, x) =>
        g.op(
          'Transpose',
          [
            g.op(
              'Gather',
              [g.lazyInitializer('et', 'float32', [d, V], () => new Uint8Array(transposed(E).buffer)), x],
              { axis: 1 },
            ),
          ],
          {
            perm: [1, 2, 0],
          },
        ),
      mb: (4 * V * d) / 1e6,
    },
  ];
  for (const bits of [8, 4] as QuantBits[]) {
    const opts = { bits, blockSize: 32, symmetric: true };
    variants.push({
      setting: `GatherBlockQuantized ${bits}-bit b32 sym`,
      build: (g, x) => {
        const [data, scales] = g.lazyInitializers(
          [
            { name: `q${bits}`, dtype: 'uint8', dims: [V, (d * bits) / 8] },
            { name: `s${bits}`, dtype: 'float32', dims: [V, d / 32] },
          ],
          () => {
            const q = quantizeRows(tensorRows({ dtype: 'float32', shape: [V, d], data: E.w }), opts);
            return [q.b, new Uint8Array(q.scales.buffer)];
          },
        );
        return g.op(
          'GatherBlockQuantized',
          [data, x, scales],
          { gather_axis: 0, quantize_axis: 1, block_size: 32, bits },
          { domain: MS_DOMAIN },
        );
      },
      mb: (V * d * (bits / 8 + 4 / 32)) / 1e6,
    });
  }
  const out: GatherRow[] = [];
  for (const v of variants) {
    const g = new GraphBuilder('gather');
    const x = g.input('ids', 'int64', [1, 'n']);
    g.output(v.build(g, x), 'y', 'float32', [1, 'n', d]);
    const dir = mkdtempSync(join(tmp, 'e-'));
    writeFileSync(join(dir, 'model.onnx'), g.serialize({ externalPath: join(dir, 'w.bin'), externalName: 'w.bin' }));
    const sess = await ort.InferenceSession.create(join(dir, 'model.onnx'), sessionOptions(THREADS));
    const one = summarize(await timeRuns(sess, { ids: ids(1) }, 20 * ROUNDS), 'ms');
    const prefill = summarize(await timeRuns(sess, { ids: ids(5000) }, 3 * ROUNDS), 'ms');
    await sess.release();
    rmSync(dir, { recursive: true, force: true });
    out.push({ setting: v.setting, one, prefill, mb: v.mb });
    console.error(`  ${v.setting}: 1 id ${one.median.toFixed(3)} ms, 5000 ids ${prefill.median.toFixed(2)} ms`);
  }
  return out;
}

/** The 10th percentile of a summary's samples. */
const p10 = (s: Summary) => [...s.samples].sort((a, b) => a - b)[Math.floor(0.1 * (s.samples.length - 1))];
const fmt = (s: Summary) => `${s.median.toFixed(2)} (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'lmsteer-quant-'));
  const load = loadavg();
  console.error(`quantization probe: ${shape}, ${LAYERS} layers, ${THREADS} threads on ${cpus()[0]?.model}`);
  try {
    const body = await probeBody(tmp);
    const head = args.head ? await probeHead(tmp) : [];
    const gather = args.gather ? await probeGather(tmp) : [];
    const fp32 = body[0];
    console.log(
      `\n${shape}: ${LAYERS} layers' weight products per decode step (ms, median (min–max)), ${THREADS} threads`,
    );
    console.log('| setting | 1 row | p10 | ×fp32 | 25 rows | p10 | ×fp32 | output rel. err | weight rel. err | MB |');
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const r of body)
      console.log(
        `| ${r.setting} | ${fmt(r.b1)} | ${p10(r.b1).toFixed(2)} | ${(p10(fp32.b1) / p10(r.b1)).toFixed(2)} | ${fmt(r.b25)} | ${p10(r.b25).toFixed(2)} | ${(p10(fp32.b25) / p10(r.b25)).toFixed(2)} | ${r.outErr.toExponential(2)} | ${r.weightErr.toExponential(2)} | ${(r.bytes / 1e6).toFixed(1)} |`,
      );
    console.log('(×fp32: ratio of the 10th percentiles, the runs least disturbed by other work on the machine)');
    if (head.length) {
      console.log(`\nLM head [${dims.vocab}, ${dims.d}]: 1 row (ms), logits and steering-effect error vs fp32`);
      console.log('| setting | 1 row | ×fp32 | logits rel. err | steer effect rel. err | split: head(Δh) rel. err |');
      console.log('|---|---|---|---|---|---|');
      for (const r of head)
        console.log(
          `| ${r.setting} | ${fmt(r.b1)} | ${(head[0].b1.median / r.b1.median).toFixed(2)} | ${r.logitErr.toExponential(2)} | ${r.steerErr.toExponential(2)} | ${r.splitSteerErr.toExponential(2)} |`,
        );
    }
    if (gather.length) {
      console.log(
        `\nEmbedding lookup [${dims.vocab}, ${dims.d}] (ms): 1 id (decode) and 5000 ids (a 25 × 200 prefill)`,
      );
      console.log('| setting | 1 id | 5000 ids | MB |');
      console.log('|---|---|---|---|');
      for (const r of gather) console.log(`| ${r.setting} | ${fmt(r.one)} | ${fmt(r.prefill)} | ${r.mb.toFixed(0)} |`);
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `quant-${shape}-${stamp}.json`);
    writeFileSync(
      file,
      JSON.stringify(
        {
          shape,
          layers: LAYERS,
          threads: THREADS,
          cpu: cpus()[0]?.model,
          loadavg: [load, loadavg()],
          body,
          head,
          gather,
        },
        null,
        2,
      ),
    );
    console.log(
      `\nwrote ${file} (load avg ${load.map((l) => l.toFixed(1)).join(' ')} → ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')})`,
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
