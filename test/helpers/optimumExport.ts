/**
 * "optimum-style" ONNX exports of the tiny random checkpoints, built with plain ONNX ops the way
 * torch.onnx.export lays out a transformers decoder: inputs input_ids [B,S], attention_mask [B,P+S],
 * position_ids [B,S] (optional), past_key_values.{i}.key|value [B,kvH,P,hd]; outputs logits [B,S,V] and
 * present.{i}.key|value (past and new keys concatenated). The mask is additive (0 / −1e9) from attention_mask
 * and causality; llama's RoPE is done by ops; GQA repeats KV heads by Expand. `merged` wraps a with-past and a
 * no-past body in an If on use_cache_branch, as optimum's decoder_model_merged.onnx does.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, OPSET } from '../../src/graph/builder.js';
import { decodeModel, encodeModel, ONNX_DTYPE } from '../../src/graph/onnxProto.js';
import type { WeightStore } from '../../src/formats/weights.js';
import { applyRope, ropeTables, transpose2d } from '../../src/models/common.js';
import type { DecoderConfig } from '../../src/models/config.js';
import { canonicalWeights, outputEmbeddings, parseDecoderConfig } from '../../src/models/registry.js';
import type { Tensor } from '../../src/util/tensor.js';
import { tinyCheckpoint, type TinyKind, type TinyOptions } from './tinyModels.js';

export interface ExportOptions {
  /** How the logits are computed: MatMul with Eᵀ [d,V], MatMul(h, Transpose(E)), Gemm(transB=1) between Reshapes, or an op we do not recognize after the MatMul. */
  head?: 'matmul' | 'transpose' | 'gemm' | 'scaled';
  positionIds?: boolean;
  merged?: boolean;
  /** Weights in model.onnx_data beside model.onnx. */
  external?: boolean;
}

export interface TinyExport {
  dir: string;
  modelPath: string;
  cfg: DecoderConfig;
  weights: WeightStore;
}

function body(
  g: GraphBuilder,
  cfg: DecoderConfig,
  weights: WeightStore,
  o: ExportOptions,
  withPast: boolean,
): { logits: string; present: string[] } {
  const w = (n: string) => weights.get(n);
  const registered = new Set<string>();
  const W = (n: string, t?: Tensor) => {
    if (!registered.has(n)) g.weight(n, t ?? w(n));
    registered.add(n);
    return n;
  };
  const { hiddenSize: d, numHeads: H, numKvHeads: kvH, headDim: hd, vocabSize: V } = cfg;
  const llama = cfg.arch === 'llama';
  const scalar = (i: number) => g.constI64([i], []);
  const maskShape = g.op('Shape', ['attention_mask']);
  const L = g.op('Gather', [maskShape, scalar(1)], { axis: 0 });
  const S = g.op('Gather', [g.op('Shape', ['input_ids']), scalar(1)], { axis: 0 });
  const P = g.op('Sub', [L, S]);
  const pos =
    o.positionIds === false ? g.op('Unsqueeze', [g.op('Range', [P, L, scalar(1)]), g.constI64([0])]) : 'position_ids';

  // additive mask [B,1,S,L]: key j visible to query i iff j ≤ P+i and attention_mask[b,j] = 1
  const causal = g.op('LessOrEqual', [
    g.op('Unsqueeze', [g.op('Range', [scalar(0), L, scalar(1)]), g.constI64([0])]),
    g.op('Unsqueeze', [g.op('Range', [P, L, scalar(1)]), g.constI64([1])]),
  ]);
  const pad = g.op('Cast', [g.op('Unsqueeze', ['attention_mask', g.constI64([1, 2])])], { to: ONNX_DTYPE.bool });
  const bias = g.op('Where', [g.op('And', [causal, pad]), g.constF32([0], []), g.constF32([-1e9], [])]);

  const norm = (x: string, p: string) => {
    if (!llama)
      return g.op('LayerNormalization', [x, W(`${p}.weight`), W(`${p}.bias`)], {
        axis: -1,
        epsilon: { float: cfg.normEps },
      });
    const ms = g.op('ReduceMean', [g.op('Mul', [x, x]), g.constI64([-1])], { keepdims: 1 });
    return g.op('Mul', [
      g.op('Div', [x, g.op('Sqrt', [g.op('Add', [ms, g.constF32([cfg.normEps], [])])])]),
      W(`${p}.weight`),
    ]);
  };
  const lin = (x: string, p: string, hasBias: boolean) => {
    const y = g.op('MatMul', [x, llama ? W(`${p}.weight.T`, transpose2d(w(`${p}.weight`))) : W(`${p}.weight`)]);
    return hasBias ? g.op('Add', [y, W(`${p}.bias`)]) : y;
  };
  const heads = (x: string, n: number) =>
    g.op('Transpose', [g.op('Reshape', [x, g.constI64([0, 0, n, hd])])], { perm: [0, 2, 1, 3] });

  let x = llama
    ? g.op('Gather', [W('model.embed_tokens.weight'), 'input_ids'], { axis: 0 })
    : g.op('Add', [
        g.op('Gather', [W('wte.weight'), 'input_ids'], { axis: 0 }),
        g.op('Gather', [W('wpe.weight'), pos], { axis: 0 }),
      ]);
  const rope = llama ? ropeTables(g, cfg, pos) : undefined;
  const present: string[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = llama ? `model.layers.${i}` : `h.${i}`;
    const h = norm(x, llama ? `${p}.input_layernorm` : `${p}.ln_1`);
    let q: string, k: string, v: string;
    if (llama) {
      q = applyRope(g, lin(h, `${p}.self_attn.q_proj`, cfg.qkvBias), H, rope!.cos, rope!.sin, cfg.rope!.rotaryDim, hd);
      k = applyRope(
        g,
        lin(h, `${p}.self_attn.k_proj`, cfg.qkvBias),
        kvH,
        rope!.cos,
        rope!.sin,
        cfg.rope!.rotaryDim,
        hd,
      );
      v = lin(h, `${p}.self_attn.v_proj`, cfg.qkvBias);
    } else {
      [q, k, v] = g.opN(
        'Split',
        [lin(h, `${p}.attn.c_attn`, true), g.constI64([d, d, d])],
        { axis: -1 },
        { outputs: 3 },
      ) as [string, string, string];
    }
    let kAll = heads(k, kvH);
    let vAll = heads(v, kvH);
    if (withPast) {
      kAll = g.op('Concat', [`past_key_values.${i}.key`, kAll], { axis: 2 });
      vAll = g.op('Concat', [`past_key_values.${i}.value`, vAll], { axis: 2 });
    }
    present.push(kAll, vAll);
    const repeat = (t: string) =>
      kvH === H
        ? t
        : g.op('Reshape', [
            g.op('Expand', [g.op('Unsqueeze', [t, g.constI64([2])]), g.constI64([1, 1, H / kvH, 1, 1])]),
            g.constI64([0, H, -1, hd]),
          ]);
    const scores = g.op('Mul', [
      g.op('MatMul', [heads(q, H), g.op('Transpose', [repeat(kAll)], { perm: [0, 1, 3, 2] })]),
      g.constF32([1 / Math.sqrt(hd)], []),
    ]);
    const probs = g.op('Softmax', [g.op('Add', [scores, bias])], { axis: -1 });
    const att = g.op('Reshape', [
      g.op('Transpose', [g.op('MatMul', [probs, repeat(vAll)])], { perm: [0, 2, 1, 3] }),
      g.constI64([0, 0, H * hd]),
    ]);
    x = g.op('Add', [x, lin(att, llama ? `${p}.self_attn.o_proj` : `${p}.attn.c_proj`, llama ? cfg.outBias : true)]);

    const h2 = norm(x, llama ? `${p}.post_attention_layernorm` : `${p}.ln_2`);
    let mlp: string;
    if (llama) {
      const gate = lin(h2, `${p}.mlp.gate_proj`, cfg.mlpBias);
      mlp = lin(
        g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), lin(h2, `${p}.mlp.up_proj`, cfg.mlpBias)]),
        `${p}.mlp.down_proj`,
        cfg.mlpBias,
      );
    } else {
      const a = lin(h2, `${p}.mlp.c_fc`, true); // gelu_new, the tanh approximation
      const cube = g.op('Mul', [g.op('Mul', [a, a]), a]);
      const inner = g.op('Mul', [
        g.op('Add', [a, g.op('Mul', [cube, g.constF32([0.044715], [])])]),
        g.constF32([Math.sqrt(2 / Math.PI)], []),
      ]);
      mlp = lin(
        g.op('Mul', [
          g.op('Mul', [a, g.constF32([0.5], [])]),
          g.op('Add', [g.op('Tanh', [inner]), g.constF32([1], [])]),
        ]),
        `${p}.mlp.c_proj`,
        true,
      );
    }
    x = g.op('Add', [x, mlp]);
  }
  const hidden = norm(x, llama ? 'model.norm' : 'ln_f');
  const E = outputEmbeddings(cfg, weights);
  // The tied matrix is the same initializer as the token embedding (wte / embed_tokens), as in torch exports.
  const eName = cfg.tiedEmbeddings ? (llama ? 'model.embed_tokens.weight' : 'wte.weight') : 'lm_head.weight';
  let logits: string;
  switch (o.head ?? 'matmul') {
    case 'matmul':
      logits = g.op('MatMul', [hidden, W('lm_head.T', transpose2d(E))], {}, { name: '/lm_head/MatMul' });
      break;
    case 'transpose':
      logits = g.op(
        'MatMul',
        [hidden, g.op('Transpose', [W(eName, E)], { perm: [1, 0] })],
        {},
        { name: '/lm_head/MatMul' },
      );
      break;
    case 'gemm': {
      const flat = g.op('Reshape', [hidden, g.constI64([-1, d])]);
      const bs = g.op('Gather', [g.op('Shape', [hidden]), g.constI64([0, 1])], { axis: 0 });
      logits = g.op('Reshape', [
        g.op('Gemm', [flat, W(eName, E)], { transB: 1 }),
        g.op('Concat', [bs, g.constI64([V])], { axis: 0 }),
      ]);
      break;
    }
    case 'scaled':
      logits = g.op(
        'Mul',
        [g.op('MatMul', [hidden, W('lm_head.T', transpose2d(E))]), g.constF32([1], [])],
        {},
        { name: '/lm_head/softcap' },
      );
      break;
  }
  return { logits, present };
}

function declareInputs(g: GraphBuilder, cfg: DecoderConfig, o: ExportOptions): void {
  g.input('input_ids', 'int64', ['batch', 'seq']);
  g.input('attention_mask', 'int64', ['batch', 'total']);
  if (o.positionIds !== false) g.input('position_ids', 'int64', ['batch', 'seq']);
  for (let i = 0; i < cfg.numLayers; i++) {
    g.input(`past_key_values.${i}.key`, 'float32', ['batch', cfg.numKvHeads, 'past', cfg.headDim]);
    g.input(`past_key_values.${i}.value`, 'float32', ['batch', cfg.numKvHeads, 'past', cfg.headDim]);
  }
}

function declareOutputs(
  g: GraphBuilder,
  cfg: DecoderConfig,
  out: { logits: string; present: string[] },
  prefix = '',
): void {
  g.output(out.logits, `${prefix}logits`, 'float32', ['batch', 'seq', cfg.vocabSize]);
  out.present.forEach((v, j) =>
    g.output(v, `${prefix}present.${j >> 1}.${j % 2 ? 'value' : 'key'}`, 'float32', [
      'batch',
      cfg.numKvHeads,
      'total',
      cfg.headDim,
    ]),
  );
}

/** The export's ModelProto bytes (weights inline unless `externalPath`). */
export function buildExport(
  cfg: DecoderConfig,
  weights: WeightStore,
  o: ExportOptions = {},
  externalPath?: string,
): Uint8Array {
  if (!o.merged) {
    const g = new GraphBuilder('optimum-style');
    declareInputs(g, cfg, o);
    declareOutputs(g, cfg, body(g, cfg, weights, o, true));
    return g.serialize(externalPath ? { externalPath, externalName: 'model.onnx_data' } : {});
  }
  // Merged: each branch built alone, then its initializers hoisted to the outer graph and its values renamed
  // so no name shadows the outer scope.
  const branch = (withPast: boolean, prefix: string) => {
    const g = new GraphBuilder(prefix);
    declareOutputs(g, cfg, body(g, cfg, weights, o, withPast), prefix);
    return decodeModel(g.serialize()).graph;
  };
  const outer = new GraphBuilder('merged');
  declareInputs(outer, cfg, o);
  outer.input('use_cache_branch', 'bool', [1]);
  const top = decodeModel(outer.serialize()).graph;
  const inits = new Map<string, unknown>();
  const branches = [branch(true, 'then/'), branch(false, 'else/')].map((b, bi) => {
    const prefix = bi === 0 ? 'then/' : 'else/';
    const inner = new Set<string>();
    for (const n of b.node) for (const out of n.output) inner.add(out);
    // the builder's small constants (c_i64_N, c_f32_N) differ between the branches: keep them apart
    for (const t of b.initializer ?? []) if (/^c_(i64|f32)_/.test(t.name)) inner.add(t.name);
    const rn = (s: string) => (inner.has(s) && !s.startsWith(prefix) ? `${prefix}${s}` : s);
    for (const t of b.initializer ?? []) inits.set(rn(t.name), { ...t, name: rn(t.name) });
    for (const n of b.node) {
      n.input = n.input.map(rn);
      n.output = n.output.map(rn);
      n.name = `${bi}/${n.name}`;
    }
    b.initializer = [];
    return b;
  });
  const names = [
    'logits',
    ...Array.from({ length: 2 * cfg.numLayers }, (_, j) => `present.${j >> 1}.${j % 2 ? 'value' : 'key'}`),
  ];
  top.initializer = [...inits.values()];
  top.node = [
    {
      op_type: 'If',
      name: 'optimum::if',
      input: ['use_cache_branch'],
      output: names,
      attribute: [
        { name: 'then_branch', type: 5, g: branches[0] },
        { name: 'else_branch', type: 5, g: branches[1] },
      ],
    },
  ];
  top.output = branches[0].output.map((v: { name: string }, j: number) => ({ ...v, name: names[j] }));
  return encodeModel({
    ir_version: 10,
    producer_name: 'lmsteer-test',
    opset_import: [{ domain: '', version: OPSET }],
    graph: top,
  });
}

/** A word-level tokenizer.json with exactly `V` tokens (w0 … w{V-1}). */
export function tinyTokenizerJson(V: number): string {
  const vocab: Record<string, number> = {};
  for (let i = 0; i < V; i++) vocab[`w${i}`] = i;
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
    model: { type: 'WordLevel', vocab, unk_token: 'w0' },
  });
}

/** Write a tiny export as `dir/onnx/model.onnx` (+ config.json, tokenizer.json in `dir`). */
export function writeTinyExport(
  dir: string,
  kind: TinyKind,
  o: ExportOptions & TinyOptions & { file?: string } = {},
): TinyExport {
  const ck = tinyCheckpoint(kind, o);
  const cfg = parseDecoderConfig(ck.config, `tiny ${kind}`);
  const weights = canonicalWeights(cfg, ck.weights);
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  const modelPath = join(dir, 'onnx', o.file ?? 'model.onnx');
  writeFileSync(modelPath, buildExport(cfg, weights, o, o.external ? join(dir, 'onnx', 'model.onnx_data') : undefined));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(ck.config));
  writeFileSync(join(dir, 'tokenizer.json'), tinyTokenizerJson(cfg.vocabSize));
  return { dir, modelPath, cfg, weights };
}
