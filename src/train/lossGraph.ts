/**
 * The training loss and its gradient as one ONNX graph, run with onnxruntime-node. The LM is frozen, so one
 * step needs only the cached final hidden states and this: the steered LM head, cross-entropy, and a
 * hand-derived backward pass through two projections and a softmax (no autograd, no backprop through the LM).
 *
 * Forward, for N token positions (rows n), packed steer columns c = 1..K (docs/ARCHITECTURE.md):
 *   a  = H·P1                 [N,K]   H = `hidden` [N,d], P1 = `p1` [d,K]
 *   b  = a ⊙ scale            [N,K]   scale[n,c] = eps · (steer value of row n for column c's slot)
 *   H' = H + b·P2t            [N,d]   P2t = `p2t` [K,d]
 *   z  = H'·Eᵀ (+ b)          [N,V]   b: the LM head's bias where the model has one (GPT-J), a constant;
 *                                     soft-capped models (Gemma 2): z = cap·tanh((H'·Eᵀ + b)/cap)
 *   L  = Σ_n w_n (logsumexp(z_n) − z_n[t_n])              (`loss_sum`; `count` = Σ_n w_n)
 * Backward (∂L/∂·):
 *   G   = w ⊙ (softmax(z) − onehot(t))                   [N,V]   (∂CE/∂z = p − y)
 *         soft-capped: G ⊙ (1 − (z/cap)²)                        (∂ cap·tanh(u/cap) / ∂u = 1 − tanh²)
 *   dH' = G·E                                             [N,d]
 *   dP2t = bᵀ·dH'                                         [K,d]   (H' is linear in P2t through b)
 *   db  = dH'·P2tᵀ                                        [N,K]
 *   dP1 = Hᵀ·(db ⊙ scale)                                 [d,K]   (a = H·P1, b = a ⊙ scale)
 * The mean over tokens and the regularizer reg·(‖P1‖²+‖P2‖²) are added in TS (trainLoop.ts).
 * `row_loss` [N] (logsumexp(z_n) − z_n[t_n], unweighted) serves held-out losses (steerLoss.ts), which fetch
 * only it, so ORT runs the forward half alone.
 *
 * Rows are fed in chunks so the N×V intermediates (z, log p, p, G) stay bounded for V ≈ 50k.
 * E is an initializer, not an input: measured on 2 CPU cores, per chunk, E as initializer vs as input:
 * V=8192 d=256 N=256 K=512: 11.2 vs 11.0 ms (same); V=50257 d=768 N=160 K=1536 (GPT-2 size): 101–106 vs
 * 117–132 ms — the initializer is ~15% faster at real sizes (ORT prepacks a constant Gemm operand), and one
 * copy of E lives in the session. A large E goes to an external-data file, so protobuf's 2 GiB limit never
 * applies (a 128k × 4096 vocabulary is 2 GiB in float32).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../util/ortTelemetryOff.js';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../graph/builder.js';
import { LmSteerError } from '../util/errors.js';
import { expectShape, type Tensor } from '../util/tensor.js';

/**
 * Build the loss/gradient graph for output embeddings E [V, d] (and the head's bias [V], where the model has one:
 * it shifts z but not ∂z/∂H', so the backward pass is the same). `embeddingsAsInput` makes E a graph input
 * named `E` instead of an initializer (kept for measuring the two; the session uses the initializer).
 * `softcap`: the model's final logit soft-capping (DecoderConfig.finalLogitSoftcap), so training sees the
 * logits the model gives.
 */
/** What the model's head adds after h'·Eᵀ: a bias (GPT-J) and a final soft-cap (Gemma 2). */
export interface LossHead {
  headBias?: Tensor;
  softcap?: number;
}

export function buildLossGraph(E: Tensor, opts: { embeddingsAsInput?: boolean } & LossHead = {}): GraphBuilder {
  expectShape('output embeddings E', E, [-1, -1]);
  const [V, d] = E.shape as [number, number];
  const g = new GraphBuilder('lmsteer_train_loss');
  const hidden = g.input('hidden', 'float32', ['N', d]);
  const targets = g.input('targets', 'int64', ['N']);
  const weight = g.input('weight', 'float32', ['N']);
  const scale = g.input('scale', 'float32', ['N', 'K']);
  const p1 = g.input('p1', 'float32', [d, 'K']);
  const p2t = g.input('p2t', 'float32', ['K', d]);
  const emb = opts.embeddingsAsInput ? g.input('E', 'float32', [V, d]) : g.weight('E', E);
  const axis0 = g.constI64([0]);
  const axis1 = g.constI64([1]);

  // Forward.
  const a = g.op('MatMul', [hidden, p1]);
  const b = g.op('Mul', [a, scale]);
  const hs = g.op('Add', [hidden, g.op('MatMul', [b, p2t])]);
  if (opts.headBias) expectShape('LM head bias', opts.headBias, [V]);
  const cap = opts.softcap;
  const u = g.op('Gemm', opts.headBias ? [hs, emb, g.weight('b', opts.headBias)] : [hs, emb], { transB: 1 }); // [N,V]
  const z =
    cap === undefined
      ? u
      : g.op('Mul', [g.op('Tanh', [g.op('Div', [u, g.constF32([cap], [])])]), g.constF32([cap], [])]);
  const logp = g.op('LogSoftmax', [z], { axis: -1 });
  const tcol = g.op('Unsqueeze', [targets, axis1]); // [N,1]
  const logpT = g.op('Squeeze', [g.op('GatherElements', [logp, tcol], { axis: 1 }), axis1]); // [N]
  const lossSum = g.op('Neg', [g.op('ReduceSum', [g.op('Mul', [logpT, weight]), axis0], { keepdims: 0 })]);
  const count = g.op('ReduceSum', [weight, axis0], { keepdims: 0 });

  // Backward: G = w·softmax − w·onehot, the onehot part scattered into the target column.
  const wcol = g.op('Unsqueeze', [weight, axis1]); // [N,1]
  const gw = g.op('Mul', [g.op('Exp', [logp]), wcol]);
  const Gz = g.op('ScatterElements', [gw, tcol, g.op('Neg', [wcol])], { axis: 1, reduction: 'add' });
  const zOverCap = cap === undefined ? undefined : g.op('Div', [z, g.constF32([cap], [])]);
  const G = zOverCap
    ? g.op('Mul', [Gz, g.op('Sub', [g.constF32([1], []), g.op('Mul', [zOverCap, zOverCap])])]) // ⊙ (1 − tanh²)
    : Gz;
  const dhs = g.op('MatMul', [G, emb]); // [N,d]
  const gradP2t = g.op('Gemm', [b, dhs], { transA: 1 }); // [K,d]
  const db = g.op('Gemm', [dhs, p2t], { transB: 1 }); // [N,K]
  const gradP1 = g.op('Gemm', [hidden, g.op('Mul', [db, scale])], { transA: 1 }); // [d,K]

  g.output(g.op('Neg', [logpT]), 'row_loss', 'float32', ['N']);
  g.output(lossSum, 'loss_sum', 'float32', []);
  g.output(count, 'count', 'float32', []);
  g.output(gradP1, 'grad_p1', 'float32', [d, 'K']);
  g.output(gradP2t, 'grad_p2t', 'float32', ['K', d]);
  return g;
}

/** Token positions of one batch: the rows fed to the loss graph. */
export interface LossBatch {
  hidden: Tensor; // [M, d]
  targets: Int32Array | number[]; // [M] next-token ids
  weight: Float32Array; // [M] 1 in the loss, 0 not
  scale: Tensor; // [M, K]
}

export interface LossResult {
  lossSum: number;
  count: number;
  gradP1: Float32Array; // [d, K]
  gradP2t: Float32Array; // [K, d]
}

export interface LossSessionOptions {
  /** Rows per graph call; default keeps one N×V float tensor near 64 MiB. */
  chunkRows?: number;
  intraOpNumThreads?: number;
  /** E larger than this many bytes goes to an external-data file; default 512 MiB. */
  inlineLimitBytes?: number;
  executionProviders?: ort.InferenceSession.SessionOptions['executionProviders'];
  /** The LM head's bias [V] (logits = h'·Eᵀ + b), where the model has one (GPT-J). */
  headBias?: Tensor;
  /** The model's final logit soft-capping (Gemma 2); absent: none. */
  softcap?: number;
}

/** Inline E up to this size; above it, E goes to an external-data file (protobuf caps a message at 2 GiB). */
const INLINE_E_BYTES = 512 * 1024 * 1024;

/** A loss/gradient evaluator over a fixed E. Call `close()` when done. */
export class LossSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly vocabSize: number,
    readonly hiddenSize: number,
    readonly chunkRows: number,
  ) {}

  static async create(E: Tensor, opts: LossSessionOptions = {}): Promise<LossSession> {
    const [V, d] = E.shape as [number, number];
    const g = buildLossGraph(E, { headBias: opts.headBias, softcap: opts.softcap });
    const sessionOpts: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };
    if (opts.intraOpNumThreads !== undefined) sessionOpts.intraOpNumThreads = opts.intraOpNumThreads;
    if (opts.executionProviders !== undefined) sessionOpts.executionProviders = opts.executionProviders;
    let session: ort.InferenceSession;
    if (E.data.byteLength <= (opts.inlineLimitBytes ?? INLINE_E_BYTES)) {
      session = await ort.InferenceSession.create(g.serialize({ inlineLimit: Infinity }), sessionOpts);
    } else {
      const dir = mkdtempSync(join(tmpdir(), 'lmsteer-loss-'));
      try {
        const modelPath = join(dir, 'loss.onnx');
        writeFileSync(modelPath, g.serialize({ externalPath: join(dir, 'loss.bin'), externalName: 'loss.bin' }));
        session = await ort.InferenceSession.create(modelPath, sessionOpts);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const chunkRows = opts.chunkRows ?? Math.max(1, Math.floor((64 * 1024 * 1024) / (4 * V)));
    return new LossSession(session, V, d, chunkRows);
  }

  /** Summed loss, weight count and summed gradients over all rows of `batch`, chunk by chunk. */
  async run(batch: LossBatch, p1: Tensor, p2t: Tensor): Promise<LossResult> {
    const gradP1 = new Float64Array(p1.data.length);
    const gradP2t = new Float64Array(p2t.data.length);
    let lossSum = 0;
    let count = 0;
    await this.chunks(batch, p1, p2t, ['loss_sum', 'count', 'grad_p1', 'grad_p2t'], (out) => {
      lossSum += Number((out.loss_sum!.data as Float32Array)[0]);
      count += Number((out.count!.data as Float32Array)[0]);
      addInto(gradP1, out.grad_p1!.data as Float32Array);
      addInto(gradP2t, out.grad_p2t!.data as Float32Array);
    });
    return { lossSum, count, gradP1: Float32Array.from(gradP1), gradP2t: Float32Array.from(gradP2t) };
  }

  /** The cross-entropy of every row of `batch` (weights ignored), forward only. */
  async rowLosses(batch: LossBatch, p1: Tensor, p2t: Tensor): Promise<Float64Array> {
    const out = new Float64Array(batch.weight.length);
    let at = 0;
    await this.chunks(batch, p1, p2t, ['row_loss'], (o) => {
      const r = o.row_loss!.data as Float32Array;
      out.set(r, at);
      at += r.length;
    });
    return out;
  }

  private async chunks(
    batch: LossBatch,
    p1: Tensor,
    p2t: Tensor,
    fetches: string[],
    each: (out: ort.InferenceSession.OnnxValueMapType) => void,
  ): Promise<void> {
    const d = this.hiddenSize;
    const M = batch.weight.length;
    expectShape('hidden', batch.hidden, [M, d]);
    expectShape('p1', p1, [d, -1]);
    const K = p1.shape[1]!;
    expectShape('p2t', p2t, [K, d]);
    expectShape('scale', batch.scale, [M, K]);
    if (batch.targets.length !== M) throw new Error(`internal: ${batch.targets.length} targets for ${M} rows`);
    const p1T = new ort.Tensor('float32', p1.data, [d, K]);
    const p2tT = new ort.Tensor('float32', p2t.data, [K, d]);
    for (let start = 0; start < M; start += this.chunkRows) {
      const end = Math.min(M, start + this.chunkRows);
      const n = end - start;
      const targets = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        const t = batch.targets[start + i]!;
        if (!(Number.isInteger(t) && t >= 0 && t < this.vocabSize)) {
          throw new LmSteerError(
            'BAD_DATA',
            `token id ${t} at position ${start + i} is outside the vocabulary (0..${this.vocabSize - 1})`,
            'the tokenizer and the output embeddings belong to different models',
          );
        }
        targets[i] = BigInt(t);
      }
      const out = await this.session.run(
        {
          hidden: new ort.Tensor('float32', batch.hidden.data.subarray(start * d, end * d), [n, d]),
          targets: new ort.Tensor('int64', targets, [n]),
          weight: new ort.Tensor('float32', batch.weight.subarray(start, end), [n]),
          scale: new ort.Tensor('float32', batch.scale.data.subarray(start * K, end * K), [n, K]),
          p1: p1T,
          p2t: p2tT,
        },
        fetches,
      );
      each(out);
    }
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

function addInto(acc: Float64Array, x: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i]! += x[i]!;
}

/**
 * Plain-TS float64 reference of `loss_sum` (no gradients): what the graph is tested against, and what the
 * finite-difference gradient checks differentiate.
 */
export function referenceLossSum(E: Tensor, batch: LossBatch, p1: Tensor, p2t: Tensor, head: LossHead = {}): number {
  const { headBias, softcap } = head;
  const [V, d] = E.shape as [number, number];
  const K = p1.shape[1]!;
  const M = batch.weight.length;
  let total = 0;
  const hs = new Float64Array(d);
  const b = new Float64Array(K);
  const z = new Float64Array(V);
  for (let n = 0; n < M; n++) {
    const w = batch.weight[n]!;
    if (w === 0) continue;
    const h = batch.hidden.data.subarray(n * d, (n + 1) * d);
    b.fill(0);
    for (let i = 0; i < d; i++) for (let c = 0; c < K; c++) b[c]! += h[i]! * p1.data[i * K + c]!;
    for (let c = 0; c < K; c++) b[c]! *= batch.scale.data[n * K + c]!;
    for (let i = 0; i < d; i++) {
      let s = h[i]!;
      for (let c = 0; c < K; c++) s += b[c]! * p2t.data[c * d + i]!;
      hs[i] = s;
    }
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      let s = headBias ? headBias.data[v]! : 0;
      for (let i = 0; i < d; i++) s += hs[i]! * E.data[v * d + i]!;
      if (softcap !== undefined) s = softcap * Math.tanh(s / softcap);
      z[v] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(z[v]! - max);
    total += w * (max + Math.log(sum) - z[Number(batch.targets[n])]!);
  }
  return total;
}
