/**
 * The weight precision of a load: loadModel({ dtype, head }), the default and its reason, what the graph cache
 * holds for each build (no float32 copy of a weight the build quantizes), and the loads it refuses; and the
 * order of a load (session, then tokenizer) with what it means for a bad tokenizer.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { MapWeightStore } from '../../src/formats/weights.js';
import { decodeModel } from '../../src/graph/onnxProto.js';
import { gpt2Weights } from '../../src/models/gpt2/config.js';
import { defaultBuild, loadModel } from '../../src/runtime/loadModel.js';
import { extractionFingerprint } from '../../src/train/extract.js';
import { LmSteerError } from '../../src/util/errors.js';
import type { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { tensor, type Tensor } from '../../src/util/tensor.js';
import { tinyTokenizerJson, writeTinyExport } from '../helpers/optimumExport.js';
import { tinyCheckpoint, type TinyKind } from '../helpers/tinyModels.js';

const root = mkdtempSync(join(tmpdir(), 'lmsteer-precision-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A tiny checkpoint as a Hugging Face folder (config.json, model.safetensors, tokenizer.json). */
function tinyFolder(kind: TinyKind, extra: Record<string, Tensor> = {}, config: Record<string, unknown> = {}): string {
  const dir = join(root, `m${n++}`);
  mkdirSync(dir);
  const ck = tinyCheckpoint(kind, { seed: 2 });
  const tensors: Record<string, Tensor> = { ...extra };
  for (const name of ck.weights.names()) tensors[name] = ck.weights.get(name);
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...ck.config, ...config }));
  writeFileSync(join(dir, 'tokenizer.json'), tinyTokenizerJson(ck.config.vocab_size as number));
  return dir;
}

/** The initializers of the one graph in a cache folder: name → [dtype code, dims]. */
function cachedInitializers(cacheDir: string): Map<string, { type: number; dims: number[] }> {
  const graphs = join(cacheDir, 'graphs');
  const [key] = readdirSync(graphs);
  const m = decodeModel(readFileSync(join(graphs, key, 'model.onnx')));
  return new Map(
    (m.graph.initializer as { name: string; data_type: number; dims?: number[] }[]).map((t) => [
      t.name,
      { type: t.data_type, dims: t.dims ?? [] },
    ]),
  );
}

const FLOAT = 1;

test('the default precision: fp32 when the float32 weights take ≤ 25% of memory, else q8 if ≤ 40%, else q4', () => {
  const small = defaultBuild(250e6, 16 * 2 ** 30); // 1 GB of float32 in 16 GiB
  assert.deepEqual(small.build, { dtype: 'fp32', head: 'fp32' });
  assert.match(small.why, /float32 weights \(954 MiB\) fit in 25% of this machine's 16\.0 GiB/);
  const big = defaultBuild(8e9, 24 * 2 ** 30); // Llama-3.1-8B on 24 GiB: 32 GB of float32, 9 GB in q8
  assert.deepEqual(big.build, { dtype: 'q8', head: 'q8' }, 'a quantized body gets the 8-bit head');
  assert.match(big.why, /would take more than 25% of this machine's 24\.0 GiB$/);
  const bigger = defaultBuild(8e9, 16 * 2 ** 30); // the same on 16 GiB: q8 would take 52%
  assert.deepEqual(bigger.build, { dtype: 'q4', head: 'q8' });
  assert.match(bigger.why, /its 8-bit weights \(8\.4 GiB\) more than 40% of this machine's 16\.0 GiB/);
  // The limits themselves: just under and just over each.
  const G = 2 ** 30;
  assert.equal(defaultBuild(G, 16 * G).build.dtype, 'fp32');
  assert.equal(defaultBuild(G + 1, 16 * G).build.dtype, 'q8');
  assert.equal(defaultBuild((0.4 * 16 * G) / 1.125, 16 * G).build.dtype, 'q8');
  assert.equal(defaultBuild((0.4 * 16 * G) / 1.125 + 1, 16 * G).build.dtype, 'q4');
});

test('loadModel: a quantized dtype without --head gets the 8-bit head, and says so; --head fp32 keeps float32', async () => {
  const dir = tinyFolder('llama');
  const cacheDir = join(root, 'cache-h');
  const q = await loadModel(dir, { cacheDir, threads: 1, dtype: 'q4' });
  assert.deepEqual(q.build, { dtype: 'q4', head: 'q8' });
  assert.match(
    q.buildNote ?? '',
    /^LM head in q8, the default for a q4 body: .*--head fp32 for the exact float32 head/,
  );
  q.close();
  const f = await loadModel(dir, { cacheDir, threads: 1, dtype: 'q8', head: 'fp32' });
  assert.deepEqual(f.build, { dtype: 'q8', head: 'fp32' });
  assert.equal(f.buildNote, undefined, 'nothing chosen, nothing told');
  f.close();
});

test('loadModel({ dtype, head }): the build asked for, no default note; without: the default and its note', async () => {
  const dir = tinyFolder('llama');
  const cacheDir = join(root, 'cache-a');
  const q = await loadModel(dir, { cacheDir, threads: 1, dtype: 'q4', head: 'q8' });
  assert.deepEqual(q.build, { dtype: 'q4', head: 'q8' });
  assert.equal(q.buildNote, undefined);
  const ids = q.tokenizer.encode('w1 w2 w3');
  // A stand-in tokenizer for the fingerprint's probe texts (the tiny word-level one knows none of their words).
  const tokenizer = { ...q.tokenizer, encode: (text: string) => [text.length % 64] } as Tokenizer;
  const fq = extractionFingerprint({ ...q, tokenizer });
  q.close();
  const d = await loadModel(dir, { cacheDir, threads: 1 });
  assert.deepEqual(d.build, { dtype: 'fp32', head: 'fp32' });
  assert.match(
    d.buildNote ?? '',
    /^weights in fp32: its float32 weights .* \(--dtype fp32 \| q8 \| q4 and --head fp32 \| q8 \| q4 to choose\)$/,
  );
  assert.equal((await d.decoder.forward([ids])).logits.shape[2], 64);
  // Hidden states depend on the body's dtype, not on the head's: the training cache is keyed so.
  assert.notEqual(extractionFingerprint({ ...d, tokenizer }), fq);
  assert.equal(extractionFingerprint({ ...d, tokenizer, build: { dtype: 'q4', head: 'fp32' } }), fq);
  d.close();
});

test('the graph cache holds the build: q8 body blocks, fp32 head Eᵀ only; with the 8-bit head no float32 E at all', async () => {
  // qwen2 tiny is tied: E is the head and the input lookup.
  const dir = tinyFolder('qwen2');
  const V = 64;
  const d = 32;
  const isE = (i: { dims: number[] }) => i.dims.length === 2 && i.dims[0] * i.dims[1] === V * d;
  const floatsE = (inits: Map<string, { type: number; dims: number[] }>) =>
    [...inits].filter(([, i]) => i.type === FLOAT && isE(i)).map(([name]) => name);

  const cacheA = join(root, 'cache-b');
  (await loadModel(dir, { cacheDir: cacheA, threads: 1, dtype: 'q8', head: 'fp32' })).close();
  const a = cachedInitializers(cacheA);
  assert.deepEqual(floatsE(a), ['lm_head.weight_t'], 'the float32 head is the only float32 E');
  assert.deepEqual(a.get('lm_head.weight_t')?.dims, [d, V]);
  assert.deepEqual(a.get('model.embed_tokens.weight.q')?.dims, [V, d], 'an 8-bit lookup table for the input side');
  assert.deepEqual(a.get('model.layers.0.qkv.weight.q')?.dims, [64, 1, 32], 'q/k/v: 32 + 16 + 16 rows, 8-bit');
  assert.ok(![...a.keys()].some((k) => /layers\.\d+\.(qkv|mlp\.gate_up|mlp\.down_proj)\.weight$/.test(k)));

  const cacheB = join(root, 'cache-c');
  (await loadModel(dir, { cacheDir: cacheB, threads: 1, dtype: 'q8', head: 'q8' })).close();
  const b = cachedInitializers(cacheB);
  assert.deepEqual(floatsE(b), [], 'no float32 E: an 8-bit head and an 8-bit lookup table');
  assert.deepEqual(b.get('lm_head.weight.q')?.dims, [V, 1, 32]);
  // Its own table, not the head's blocks: ORT keeps a prepacked initializer's pages resident when another node
  // reads it (src/models/embeddings.ts).
  assert.deepEqual(b.get('model.embed_tokens.weight.q')?.dims, [V, d]);

  // A 4-bit head: 16 bytes of codes a block of 32, its own 8-bit lookup table beside it (the body is q8); asked
  // for, so the load says what it costs the steer.
  const cacheC = join(root, 'cache-d');
  const m = await loadModel(dir, { cacheDir: cacheC, threads: 1, dtype: 'q8', head: 'q4' });
  assert.deepEqual(m.build, { dtype: 'q8', head: 'q4' });
  assert.match(m.buildNote ?? '', /^LM head in q4, as asked: the steering effect within ~10%/);
  m.close();
  const c = cachedInitializers(cacheC);
  assert.deepEqual(floatsE(c), [], 'no float32 E: a 4-bit head and an 8-bit lookup table');
  assert.deepEqual(c.get('lm_head.weight.q')?.dims, [V, 1, 16]);
  assert.deepEqual(c.get('model.embed_tokens.weight.q')?.dims, [V, d]);
});

test('prepack: false (fp32 only): the same logits from weights left in the mapped file, the same cached graph', async () => {
  const dir = tinyFolder('llama');
  const cacheDir = join(root, 'cache-p');
  const logits = async (prepack: boolean | undefined) => {
    const m = await loadModel(dir, { cacheDir, threads: 1, dtype: 'fp32', prepack });
    const ids = m.tokenizer.encode('w1 w2 w3 w4');
    // One row (ORT's GEMV path) and two (a GEMM, which packs unpacked weights on every call).
    const one = (await m.decoder.forward([ids])).logits.data as Float32Array;
    const two = (await m.decoder.forward([ids, ids.slice().reverse()])).logits.data as Float32Array;
    m.close();
    return [one, two];
  };
  const packed = await logits(undefined);
  const unpacked = await logits(false);
  for (const [i, a] of packed.entries()) {
    const b = unpacked[i];
    assert.equal(a.length, b.length);
    const scale = Math.max(...a.map(Math.abs));
    a.forEach((x, j) => assert.ok(Math.abs(x - b[j]) <= 1e-5 * scale, `row set ${i}, logit ${j}: ${x} vs ${b[j]}`));
  }
  assert.equal(readdirSync(join(cacheDir, 'graphs')).length, 1, 'prepacking belongs to the session, not to the graph');
  for (const o of [
    { dtype: 'q8' as const },
    { dtype: 'q4' as const },
    { dtype: 'fp32' as const, head: 'q8' as const },
  ]) {
    await assert.rejects(
      loadModel(dir, { cacheDir, threads: 1, prepack: false, ...o }),
      (e: unknown) =>
        e instanceof LmSteerError &&
        e.code === 'BAD_ARGUMENT' &&
        /--no-prepack is for float32 graphs; .* would load in (q8|q4|fp32 \(q8 head\))/.test(e.message),
      JSON.stringify(o),
    );
  }
});

test('refused: a pre-quantized (GPTQ) checkpoint at load, and a dtype for an ONNX export', async () => {
  const gptq = tinyFolder(
    'llama',
    { 'model.layers.0.self_attn.q_proj.qweight': tensor([4, 32]) },
    { quantization_config: { quant_method: 'gptq', bits: 4 } },
  );
  await assert.rejects(
    loadModel(gptq, { cacheDir: false, threads: 1 }),
    (e: unknown) =>
      e instanceof LmSteerError &&
      e.code === 'UNSUPPORTED' &&
      /already-quantized weights \(quantization_config\.quant_method "gptq", tensor "model\.layers\.0\.self_attn\.q_proj\.qweight"\)/.test(
        e.message,
      ) &&
      /--dtype q8 or q4/.test(e.hint ?? ''),
  );
  const ex = writeTinyExport(join(root, `export${n++}`), 'llama');
  for (const o of [{ dtype: 'q8' as const }, { head: 'q8' as const }, { prepack: false }]) {
    await assert.rejects(
      loadModel(ex.dir, { cacheDir: join(root, 'cache-x'), threads: 1, ...o }),
      (e: unknown) =>
        e instanceof LmSteerError && e.code === 'UNSUPPORTED' && /ONNX export, which runs as exported/.test(e.message),
    );
  }
});

test('the tokenizer after the session: a missing tokenizer.json is refused before any build, a bad one after it (kept)', async () => {
  const cacheDir = join(root, `cache-tok${n++}`);
  const graphs = () => readdirSync(join(cacheDir, 'graphs'), { withFileTypes: true }).filter((d) => d.isDirectory());
  const dir = tinyFolder('llama');
  const good = readFileSync(join(dir, 'tokenizer.json'), 'utf8');
  rmSync(join(dir, 'tokenizer.json'));
  await assert.rejects(
    loadModel(dir, { cacheDir, threads: 1, dtype: 'q8' }),
    (e: unknown) => e instanceof LmSteerError && e.code === 'NOT_FOUND' && /no tokenizer\.json in /.test(e.message),
  );
  assert.throws(graphs, /ENOENT/, 'nothing was built for a model without a tokenizer');
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE' } }));
  await assert.rejects(
    loadModel(dir, { cacheDir, threads: 1, dtype: 'q8' }),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE' && /has no "model" section/.test(e.message),
  );
  assert.equal(graphs().length, 1, 'the graph built before the tokenizer failed stays in the cache');
  writeFileSync(join(dir, 'tokenizer.json'), good);
  const hits: boolean[] = [];
  const m = await loadModel(dir, { cacheDir, threads: 1, dtype: 'q8', onLoaded: (i) => hits.push(i.cacheHit) });
  assert.deepEqual(hits, [true], 'the fixed tokenizer loads over the cached graph');
  assert.ok(m.tokenizer.vocabSize > 0);
  m.close();
});

test("GPT-2's prefixed names keep the store's row reads and file identity", () => {
  const t = tensor([2, 3], Float32Array.from([1, 2, 3, 4, 5, 6]));
  const inner = new MapWeightStore(
    new Map([
      ['transformer.wte.weight', t],
      ['lm_head.weight', t],
    ]),
  );
  Object.assign(inner, { identity: () => 'file-id' });
  const w = gpt2Weights(inner);
  assert.equal(w.identity?.(), 'file-id');
  assert.deepEqual([...w.readRows!('wte.weight', 1, 1).data], [4, 5, 6]);
});
