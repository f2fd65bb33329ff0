/**
 * Graph pieces every decoder shares: the inputs of the graph contract (docs/ARCHITECTURE.md), the attention
 * mask, RoPE, attention over a KV cache, and the steered LM head. Each architecture file composes these.
 */
import { GraphBuilder, MS_DOMAIN } from '../graph/builder.js';
import type { GraphBuildOptions } from '../graph/buildOptions.js';
import { CONTRACT, newKey, newValue, pastKey, pastValue } from '../graph/contract.js';
import { linearLayer, type LmHead } from '../graph/linear.js';
import { matMulNBits } from '../graph/nbitsOps.js';
import { stackRows, storeRows, type RowSource } from '../graph/rowSource.js';
import type { WeightStore } from '../formats/weights.js';
import type { DecoderConfig } from './config.js';
import type { Tensor } from '../util/tensor.js';
import { ropeCosSin } from './rope.js';

export interface ContractInputs {
  inputIds: string; // int64 [B, T]
  positionIds: string; // int64 [B, T]
  pastLengths: string; // int64 [B]: valid positions of each row's cache
  logitsIndex: string; // int64 [B, n]
  past: { key: string; value: string }[]; // keys and values [B, kvH, cap, hd]
  /** [B,1,1,1,cap]: 0 for a row's valid cache positions, MASKED beyond (built once, shared by all layers). */
  maskPast: string;
  /** [B,1,1,T,T]: causal mask among this call's tokens, padding keys (key_lengths) masked. */
  maskNew: string;
  /** The same two masks for sliding-window layers (cfg.slidingWindow): [B,1,1,T,cap] and [B,1,1,T,T]. */
  window?: { maskPast: string; maskNew: string };
}

/** Masked attention logits get this bias: finite, so a fully masked row (a pad query) gives no NaN. */
const MASKED = -1e30;

export function declareInputs(g: GraphBuilder, cfg: DecoderConfig): ContractInputs {
  const { numKvHeads: kvH, headDim: hd } = cfg;
  const past = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    past.push({
      key: g.input(pastKey(i), 'float32', ['batch', kvH, 'capacity', hd]),
      value: g.input(pastValue(i), 'float32', ['batch', kvH, 'capacity', hd]),
    });
  }
  const inputIds = g.input(CONTRACT.inputIds, 'int64', ['batch', 'seq']);
  const pastLengths = g.input(CONTRACT.pastLengths, 'int64', ['batch']);
  const zero = g.constI64([0], []);
  const one = g.constI64([1], []);
  const bias = (allowed: string, axes: number[]) =>
    g.op('Unsqueeze', [g.op('Where', [allowed, g.constF32([0], []), g.constF32([MASKED], [])]), g.constI64(axes)]);
  const cap = g.op('Squeeze', [
    g.op('Slice', [g.op('Shape', [past[0].value]), g.constI64([2]), g.constI64([3])]),
    g.constI64([0]),
  ]);
  const capIdx = g.op('Unsqueeze', [g.op('Range', [zero, cap, one]), g.constI64([0])]); // [1, cap]
  const maskPast = bias(g.op('Less', [capIdx, g.op('Unsqueeze', [pastLengths, g.constI64([1])])]), [1, 2, 3]); // [B,1,1,1,cap]
  const T = g.op('Squeeze', [
    g.op('Slice', [g.op('Shape', [inputIds]), g.constI64([1]), g.constI64([2])]),
    g.constI64([0]),
  ]);
  const tIdx = g.op('Range', [zero, T, one]);
  const causal = g.op('LessOrEqual', [
    g.op('Unsqueeze', [tIdx, g.constI64([0])]),
    g.op('Unsqueeze', [tIdx, g.constI64([1])]),
  ]); // key ≤ query
  // This call's keys at index ≥ key_lengths[b] are padding: no query sees them (its own key included), as
  // transformers' attention mask does; a row's real queries never see them anyway (they come after).
  const keyLengths = g.input(CONTRACT.keyLengths, 'int64', ['batch']);
  const keyReal = g.op('Unsqueeze', [
    g.op('Less', [g.op('Unsqueeze', [tIdx, g.constI64([0])]), g.op('Unsqueeze', [keyLengths, g.constI64([1])])]),
    g.constI64([1]),
  ]); // [B,1,T]
  const maskNew = bias(g.op('And', [g.op('Unsqueeze', [causal, g.constI64([0])]), keyReal]), [1, 2]); // [B,1,1,T,T]
  const positionIds = g.input(CONTRACT.positionIds, 'int64', ['batch', 'seq']);
  let window: ContractInputs['window'];
  if (cfg.slidingWindow) {
    // Query t (at position p) sees key s when p − s < W: a row's cache index is the key's position.
    const W = g.constI64([cfg.slidingWindow.size], []);
    const valid = g.op('Less', [capIdx, g.op('Unsqueeze', [pastLengths, g.constI64([1])])]); // [B, cap]
    const back = g.op('Sub', [
      g.op('Unsqueeze', [positionIds, g.constI64([2])]),
      g.op('Unsqueeze', [capIdx, g.constI64([0])]),
    ]); // [B,T,cap]
    const inPast = g.op('And', [g.op('Unsqueeze', [valid, g.constI64([1])]), g.op('Less', [back, W])]);
    const gap = g.op('Sub', [g.op('Unsqueeze', [tIdx, g.constI64([1])]), g.op('Unsqueeze', [tIdx, g.constI64([0])])]); // [T,T] query − key
    window = {
      maskPast: bias(inPast, [1, 2]),
      maskNew: bias(
        g.op('And', [g.op('Unsqueeze', [g.op('And', [causal, g.op('Less', [gap, W])]), g.constI64([0])]), keyReal]),
        [1, 2],
      ),
    };
  }
  return {
    inputIds,
    positionIds,
    pastLengths,
    logitsIndex: g.input(CONTRACT.logitsIndex, 'int64', ['batch', 'n_logits']),
    past,
    maskPast,
    maskNew,
    window,
  };
}

/**
 * cos, sin tables [B, T, 1, rot/2] for the given positions, gathered from [maxPositions, rot/2] tables that
 * rope.ts computes in float64 (scaling and yarn's attention factor included). `opts`: another RoPE than
 * cfg.rope (Gemma 3's local layers), the initializers' name prefix (default "rope"), and the sequence length the
 * frequencies are computed for (longrope's short and long tables; default maxPositions).
 */
export function ropeTables(
  g: GraphBuilder,
  cfg: DecoderConfig,
  positionIds: string,
  opts: { rope?: DecoderConfig['rope']; name?: string; seqLen?: number } = {},
): { cos: string; sin: string } {
  const table = ropeCosSin(
    opts.rope ? { ...cfg, rope: opts.rope } : cfg,
    Array.from({ length: cfg.maxPositions }, (_, p) => p),
    opts.seqLen,
  );
  const name = opts.name ?? 'rope';
  const cosT = g.weight(`${name}.cos`, { dtype: 'float32', shape: table.shape, data: Float32Array.from(table.cos) });
  const sinT = g.weight(`${name}.sin`, { dtype: 'float32', shape: table.shape, data: Float32Array.from(table.sin) });
  const axes = g.constI64([2]);
  return {
    cos: g.op('Unsqueeze', [g.op('Gather', [cosT, positionIds], { axis: 0 }), axes]),
    sin: g.op('Unsqueeze', [g.op('Gather', [sinT, positionIds], { axis: 0 }), axes]),
  };
}

/**
 * HF rotate_half RoPE on x [B, T, N*hd] over the first `rotaryDim` channels of each head (partial rotary keeps
 * the rest): with x1, x2 the two halves of the rotated part, out = [x1·cos − x2·sin, x2·cos + x1·sin, x_pass].
 */
export function applyRope(
  g: GraphBuilder,
  x: string,
  n: number,
  cos: string,
  sin: string,
  rotaryDim: number,
  headDim: number,
): string {
  const half = rotaryDim / 2;
  const heads = g.op('Reshape', [x, g.constI64([0, 0, n, headDim])]); // [B,T,N,hd]
  const parts = rotaryDim < headDim ? [half, half, headDim - rotaryDim] : [half, half];
  const [x1, x2, pass] = g.opN('Split', [heads, g.constI64(parts)], { axis: -1 }, { outputs: parts.length });
  const r1 = g.op('Sub', [g.op('Mul', [x1, cos]), g.op('Mul', [x2, sin])]);
  const r2 = g.op('Add', [g.op('Mul', [x2, cos]), g.op('Mul', [x1, sin])]);
  const rotated = g.op('Concat', pass ? [r1, r2, pass] : [r1, r2], { axis: -1 });
  return g.op('Reshape', [rotated, g.constI64([0, 0, n * headDim])]);
}

/**
 * Causal attention over the KV cache, GQA included: q [B,T,H*hd], k, v [B,T,kvH*hd] (RoPE applied) → [B,T,H*hd].
 * The cache is the runtime's buffers, read in place:
 *   scores = [q·K_pastᵀ + maskPast | q·k_newᵀ + causal],  p = softmax(scores),  out = p_past·V_past + p_new·v_new
 * Query heads are grouped [B, kvH, g, T, hd] so each KV head serves its g query heads by broadcasting
 * (transformers' repeat_kv: query head h uses KV head h // g) without copying the cache.
 * The cache keeps keys in the values' layout, so the runtime appends a position as one contiguous run (a
 * transposed key cache made that hd scattered floats: 4–13 ms a step at 25 rows); q·K_pastᵀ is ORT's
 * FusedMatMul with transB, which reads K in that layout (measured at 25 rows × 212 positions: 0.8–1.0 ms a
 * layer, vs 1.1–1.4 for q·K over transposed keys and 1.2–1.6 for K·qᵀ plus a transpose of the scores).
 * The new keys/values leave as `new.{i}.*` [B, kvH, T, hd]; the runtime writes them into its buffers.
 * Why not ORT's fused GroupQueryAttention: in place it needs the cache bound as a preallocated output,
 * which onnxruntime-node copies back after every run, and otherwise it copies past → present itself;
 * either way the whole cache moves each step (measured, 25 rows × 328 positions, GPT-2 layer shape:
 * 16 ms per layer, vs 2–4 ms for these plain ops that only read it).
 */
/** Soft-capping cap·tanh(x/cap) elementwise (Gemma 2's attention and final logits); x itself when cap is absent. */
export function softcap(g: GraphBuilder, x: string, cap: number | undefined): string {
  if (cap === undefined) return x;
  return g.op('Mul', [g.op('Tanh', [g.op('Mul', [x, g.constF32([1 / cap], [])])]), g.constF32([cap], [])]);
}

export interface AttentionOptions {
  /** Score scale (default 1/√head_dim; GPT-Neo: 1, Gemma: query_pre_attn_scalar^−½). */
  scale?: number;
  /** Soft-capping of the scores, cap·tanh(s/cap), before masking (Gemma 2's attn_logit_softcapping). */
  softcap?: number;
}

export function cachedAttention(
  g: GraphBuilder,
  cfg: DecoderConfig,
  layer: number,
  inp: ContractInputs,
  q: string,
  k: string,
  v: string,
  opts: AttentionOptions = {},
): string {
  const { numHeads: H, numKvHeads: kvH, headDim: hd } = cfg;
  const groups = H / kvH;
  const masks = cfg.slidingWindow?.layers.includes(layer) ? inp.window! : inp;
  const heads = (x: string, n: number, perm: number[]) =>
    g.op('Transpose', [g.op('Reshape', [x, g.constI64([0, 0, n, hd])])], { perm });
  const ax2 = g.constI64([2]);
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  const qScaled = scale === 1 ? q : g.op('Mul', [q, g.constF32([scale], [])]);
  const q5 = g.op('Transpose', [g.op('Reshape', [qScaled, g.constI64([0, 0, kvH, groups, hd])])], {
    perm: [0, 2, 3, 1, 4],
  }); // [B,kvH,g,T,hd]
  const kNew = heads(k, kvH, [0, 2, 1, 3]); // [B,kvH,T,hd]
  const vNew = heads(v, kvH, [0, 2, 1, 3]);
  const qkT = (keys: string) =>
    g.op('FusedMatMul', [q5, g.op('Unsqueeze', [keys, ax2])], { transB: 1 }, { domain: MS_DOMAIN }); // keys [B,kvH,n,hd] → [B,kvH,g,T,n]
  const sPast = g.op('Add', [softcap(g, qkT(inp.past[layer].key), opts.softcap), masks.maskPast]); // [B,kvH,g,T,cap]
  const sNew = g.op('Add', [softcap(g, qkT(kNew), opts.softcap), masks.maskNew]); // [B,kvH,g,T,T]
  const p = g.op('Softmax', [g.op('Concat', [sPast, sNew], { axis: -1 })], { axis: -1 });
  const lens = g.op('Concat', [g.op('Shape', [sPast], { start: 4 }), g.op('Shape', [sNew], { start: 4 })], { axis: 0 });
  const [pPast, pNew] = g.opN('Split', [p, lens], { axis: -1 }, { outputs: 2 });
  const ctx = g.op('Add', [
    g.op('MatMul', [pPast, g.op('Unsqueeze', [inp.past[layer].value, ax2])]),
    g.op('MatMul', [pNew, g.op('Unsqueeze', [vNew, ax2])]),
  ]); // [B,kvH,g,T,hd]
  const shape = ['batch', kvH, 'seq', hd];
  g.output(kNew, newKey(layer), 'float32', shape);
  g.output(vNew, newValue(layer), 'float32', shape);
  return g.op('Reshape', [g.op('Transpose', [ctx], { perm: [0, 3, 1, 2, 4] }), g.constI64([0, 0, H * hd])]);
}

/** Transpose a [rows, cols] weight to [cols, rows] (HF Linear stores [out, in]; MatMul wants [in, out]). */
export function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return { dtype: 'float32', shape: [c, r], data: out };
}

/** Concatenate [in, out_i] matrices along the output axis (fused QKV / gate-up projections). */
export function concatCols(ts: Tensor[]): Tensor {
  const rows = ts[0].shape[0];
  const cols = ts.reduce((n, t) => n + t.shape[1], 0);
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    let off = i * cols;
    for (const t of ts) {
      const c = t.shape[1];
      out.set(t.data.subarray(i * c, (i + 1) * c), off);
      off += c;
    }
  }
  return { dtype: 'float32', shape: [rows, cols], data: out };
}

export function concat1d(ts: Tensor[]): Tensor {
  const n = ts.reduce((s, t) => s + t.data.length, 0);
  const out = new Float32Array(n);
  let off = 0;
  for (const t of ts) {
    out.set(t.data, off);
    off += t.data.length;
  }
  return { dtype: 'float32', shape: [n], data: out };
}

/**
 * The MLP activation config.json names (DecoderConfig.activation), as ONNX ops: gelu_new is the tanh
 * approximation (ONNX Gelu, approximate "tanh"), gelu the exact erf form, silu x·σ(x), relu max(x, 0).
 * referenceOps.activate is the same table in float64.
 */
export function activation(g: GraphBuilder, kind: DecoderConfig['activation'], x: string): string {
  switch (kind) {
    case 'gelu_new':
      return g.op('Gelu', [x], { approximate: 'tanh' });
    case 'gelu':
      return g.op('Gelu', [x]);
    case 'silu':
      return g.op('Mul', [x, g.op('Sigmoid', [x])]);
    case 'relu':
      return g.op('Relu', [x]);
  }
}

/**
 * The end of every decoder: emits `hidden` (final normed state, unsteered), then at each row's
 * `logits_index` positions applies the packed steer h' = h + ((h·P1)⊙scale)·P2ᵀ (docs/ARCHITECTURE.md) and
 * the LM head logits = h'·Eᵀ. `head` is an LmHead (src/graph/linear.ts, from vocabularyEnds):
 *   fp32  logits = (h + Δh)·Eᵀ: MatMul over [in, out] reads it ~3× faster than Gemm with transB at batch 1
 *         (measured: 4.6 vs 15.6 ms for GPT-2's head, bench in docs/PERFORMANCE.md)
 *   q8/q4 logits = head(h) + head(Δh), h and Δh as two rows of one MatMulNBits: with int8 activations a head over
 *         h + Δh rounds the small Δh away on h's scale (a third of the steering effect lost, measured); as its own
 *         row Δh keeps its own scale (effect within ~1%). No steer: Δh = 0 and head(0) = 0, so the base model's
 *         logits are head(h) bit for bit. At decode the extra row is about free (the product is memory-bound).
 *         A head in pieces (row ranges of E) concatenates their logits: each logit is the same product.
 * `opts.bias` [V], where the model's head has one (GPT-J): logits = h'·Eᵀ + b. `opts.softcap` (Gemma 2's
 * final_logit_softcapping): logits = cap·tanh(z / cap) of those, as transformers caps the head's output.
 */
export function steeredHead(
  g: GraphBuilder,
  cfg: DecoderConfig,
  inp: ContractInputs,
  hidden: string,
  head: LmHead,
  opts: { bias?: string; softcap?: number } = {},
): void {
  const d = cfg.hiddenSize;
  g.output(hidden, CONTRACT.hidden, 'float32', ['batch', 'seq', d]);
  const p1 = g.input(CONTRACT.steerP1, 'float32', [d, 'steer_k']);
  const p2t = g.input(CONTRACT.steerP2t, 'float32', ['steer_k', d]);
  const scale = g.input(CONTRACT.steerScale, 'float32', ['batch', 'steer_k']);
  // Row b's positions index the flattened [B*T, d] hidden at b*T + pos.
  const shape = g.op('Shape', [CONTRACT.hidden]);
  const B = g.op('Gather', [shape, g.constI64([0])], { axis: 0 }); // [1]
  const T = g.op('Gather', [shape, g.constI64([1])], { axis: 0 }); // [1]
  const rowStart = g.op('Mul', [g.op('Range', [g.constI64([0], []), g.op('Squeeze', [B]), g.constI64([1], [])]), T]); // [B]
  const flatIdx = g.op('Add', [inp.logitsIndex, g.op('Unsqueeze', [rowStart, g.constI64([1])])]); // [B, n]
  const flatHidden = g.op('Reshape', [CONTRACT.hidden, g.constI64([-1, d])]);
  const h = g.op('Gather', [flatHidden, flatIdx], { axis: 0 }); // [B, n, d]
  const coeff = g.op('Mul', [g.op('MatMul', [h, p1]), g.op('Unsqueeze', [scale, g.constI64([1])])]); // [B,n,K]
  const delta = g.op('MatMul', [coeff, p2t]); // Δh [B, n, d]
  let logits: string;
  if (head.kind === 'fp32') {
    logits = g.op('MatMul', [g.op('Add', [h, delta]), head.eT]);
  } else {
    const rows = g.op('Concat', [h, delta], { axis: 0 }); // [2B, n, d]
    const parts = head.pieces.map((w) => matMulNBits(g, rows, w, head.opts)); // [2B, n, V_i]
    const both = parts.length === 1 ? parts[0] : g.op('Concat', parts, { axis: -1 }); // [2B, n, V]
    const [base, steer] = g.opN('Split', [both], { axis: 0, num_outputs: 2 }, { outputs: 2 });
    logits = g.op('Add', [base, steer]);
  }
  const biased = opts.bias ? g.op('Add', [logits, opts.bias]) : logits;
  g.output(softcap(g, biased, opts.softcap), CONTRACT.logits, 'float32', ['batch', 'n_logits', cfg.vocabSize]);
}

/**
 * The input embedding lookup from the transposed table Eᵀ [d, V] (tied heads keep one copy of E, laid out
 * for the LM head): Gather along axis 1 gives [d, B, T] → [B, T, d].
 */
export function embedFromTransposed(g: GraphBuilder, embT: string, ids: string): string {
  return g.op('Transpose', [g.op('Gather', [embT, ids], { axis: 1 })], { perm: [1, 2, 0] });
}

/**
 * RMSNorm over each head of x [B, T, n·hd] with one gain [hd] shared by the heads (Qwen3's and Gemma 3's q_norm
 * and k_norm, applied before RoPE).
 */
export function perHeadRmsNorm(g: GraphBuilder, x: string, n: number, hd: number, gain: string, eps: number): string {
  const heads = g.op('Reshape', [x, g.constI64([0, 0, n, hd])]);
  const normed = g.op('SimplifiedLayerNormalization', [heads, gain], { axis: -1, epsilon: eps });
  return g.op('Reshape', [normed, g.constI64([0, 0, n * hd])]);
}

/** x [B, T, C] split along its last axis into parts of `sizes` (a fused q | k | v or gate | up output). */
export function splitLast(g: GraphBuilder, x: string, sizes: number[]): string[] {
  return g.opN('Split', [x, g.constI64(sizes)], { axis: -1 }, { outputs: sizes.length });
}

/** RMSNorm over the last axis, x / √(mean(x²) + eps) · gain: ORT's SimplifiedLayerNormalization. gain [d]. */
export function rmsNorm(g: GraphBuilder, x: string, gain: string, eps: number): string {
  return g.op('SimplifiedLayerNormalization', [x, gain], { axis: -1, epsilon: eps });
}

/** torch LayerNorm over the last axis, (x − mean)/√(var + eps) · gain + bias. gain, bias [d]. */
export function layerNorm(g: GraphBuilder, x: string, gain: string, bias: string, eps: number): string {
  return g.op('LayerNormalization', [x, gain, bias], { axis: -1, epsilon: eps });
}

/**
 * linearLayer's `rows` for checkpoint tensors `names`, each [out_i, in], stacked in order into one [Σ out_i, in]
 * weight (a fused q | k | v or gate | up projection: one pass over the input instead of several).
 */
export function weightRows(w: WeightStore, ...names: string[]): () => RowSource {
  return () => stackRows(names.map((n) => storeRows(w, n)));
}

/** `${a}.q_proj.${kind}`, `${a}.k_proj.${kind}`, `${a}.v_proj.${kind}`: an attention block's three projections. */
export function qkvNames(a: string, kind: 'weight' | 'bias'): string[] {
  return ['q', 'k', 'v'].map((n) => `${a}.${n}_proj.${kind}`);
}

/**
 * The q, k, v projections of a Llama-layout attention block `a` (`model.layers.i.self_attn`) as one product
 * `${name}.weight` [(H + 2·kvH)·hd, d], stacked from q_proj [H·hd, d], k_proj and v_proj [kvH·hd, d]: one pass over
 * h instead of three; `bias` (stackedBias of the three) where the model has them. h [B,T,d] → q [B,T,H·hd], k, v
 * [B,T,kvH·hd].
 */
export function fusedQkv(
  g: GraphBuilder,
  cfg: DecoderConfig,
  w: WeightStore,
  build: GraphBuildOptions,
  a: string,
  name: string,
  h: string,
  bias: string | undefined,
): string[] {
  const { hiddenSize: d, numHeads: H, numKvHeads: kvH, headDim: hd } = cfg;
  const rows = weightRows(w, ...qkvNames(a, 'weight'));
  const qkv = linearLayer(g, h, `${name}.weight`, [(H + 2 * kvH) * hd, d], rows, build, bias);
  return splitLast(g, qkv, [H * hd, kvH * hd, kvH * hd]);
}

/** o_proj [d, H·hd] of a Llama-layout attention block `a`, with its bias where cfg.outBias: [B,T,H·hd] → [B,T,d]. */
export function outProjection(
  g: GraphBuilder,
  cfg: DecoderConfig,
  w: WeightStore,
  build: GraphBuildOptions,
  a: string,
  att: string,
): string {
  const { hiddenSize: d, numHeads: H, headDim: hd } = cfg;
  const bias = cfg.outBias ? g.weight(`${a}.o_proj.bias`, w.get(`${a}.o_proj.bias`)) : undefined;
  return linearLayer(g, att, `${a}.o_proj.weight`, [d, H * hd], weightRows(w, `${a}.o_proj.weight`), build, bias);
}

/** The biases [out_i] of checkpoint tensors `names`, concatenated into one float32 initializer `name`. */
export function stackedBias(g: GraphBuilder, w: WeightStore, name: string, names: string[]): string {
  return g.weight(name, concat1d(names.map((n) => w.get(n))));
}

/**
 * Causal attention of `layer` over the KV cache with RoPE (rotate_half, cfg.rope's rotaryDim) on q [B,T,H·hd] and
 * k [B,T,kvH·hd] first; `cos`, `sin` from ropeTables. → [B,T,H·hd].
 */
export function ropeAttention(
  g: GraphBuilder,
  cfg: DecoderConfig,
  layer: number,
  inp: ContractInputs,
  { cos, sin }: { cos: string; sin: string },
  q: string,
  k: string,
  v: string,
  opts: AttentionOptions = {},
): string {
  const { numHeads: H, numKvHeads: kvH, headDim: hd } = cfg;
  const rotaryDim = cfg.rope!.rotaryDim;
  const qr = applyRope(g, q, H, cos, sin, rotaryDim, hd);
  const kr = applyRope(g, k, kvH, cos, sin, rotaryDim, hd);
  return cachedAttention(g, cfg, layer, inp, qr, kr, v, opts);
}

/**
 * The gated MLP of Llama-layout checkpoints, down(act(gate(h)) · up(h)) at `m` (e.g. "model.layers.0.mlp"):
 * gate_proj and up_proj [I, d] in one [2I, d] product `${m}.gate_up.weight`, down_proj [d, I]; biases where
 * cfg.mlpBias (Llama's mlp_bias). h [B, T, d] → [B, T, d].
 */
export function gatedMlp(
  g: GraphBuilder,
  cfg: DecoderConfig,
  w: WeightStore,
  build: GraphBuildOptions,
  m: string,
  h: string,
): string {
  const { hiddenSize: d, intermediateSize: I } = cfg;
  const guB = cfg.mlpBias
    ? stackedBias(g, w, `${m}.gate_up.bias`, [`${m}.gate_proj.bias`, `${m}.up_proj.bias`])
    : undefined;
  const guRows = weightRows(w, `${m}.gate_proj.weight`, `${m}.up_proj.weight`);
  const gu = linearLayer(g, h, `${m}.gate_up.weight`, [2 * I, d], guRows, build, guB);
  const [gate, up] = splitLast(g, gu, [I, I]);
  const act = g.op('Mul', [activation(g, cfg.activation, gate), up]); // act(gate) · up
  const dB = cfg.mlpBias ? g.weight(`${m}.down_proj.bias`, w.get(`${m}.down_proj.bias`)) : undefined;
  return linearLayer(g, act, `${m}.down_proj.weight`, [d, I], weightRows(w, `${m}.down_proj.weight`), build, dB);
}
