/**
 * A forward pass with an attention mask over right-padded rows, as transformers runs the reference's training
 * batches (`model(input_ids, attention_mask, labels=input_ids)`, pad = EOS): row b has `keyLengths[b]` real
 * tokens followed by pad tokens, and no query ever attends to a pad key — a pad query at position t sees the
 * real tokens 0..n−1 only (not even its own key), with position id t (positions keep counting).
 *
 * Why not the decoder contract (docs/ARCHITECTURE.md): there a new token always sees itself, so a pad position
 * run as a 1-token step over the real tokens' cache would attend to its own key, which transformers masks.
 * Measured on stories260K (first 32 SST-2 texts, one batch, 624 pad positions, float64): that shortcut moves
 * a pad state by 4.8 on average (L2) and the unsteered pad-target CE from 27.12 to 25.84 nats; copying the
 * last real state (lmsteer before) moves it by 6.6. Neither is the reference's loss. What transformers does:
 *   - Llama (eager and SDPA, 4.3x–4.5x): the 4-D mask is causal AND attention_mask[key]; a pad query keeps
 *     every real key, so no row is fully masked and `_unmask_unattended` / the SDPA fully-masked fix never
 *     touch it. Position ids default to arange(T) (`cache_position`), pads included.
 *   - GPT-2 (eager): causal `torch.where(…, finfo.min)` plus the additive `(1 − mask)·finfo.min`; the pad's
 *     own key gets score + finfo.min, exp(·) = 0 in float32. Same result; positions arange(T) as well.
 * Right padding is what the reference does: it supports GPT-2/GPT-Neo/GPT-J/Pythia only (get_model.py), whose
 * tokenizers pad on the right. (transformers' LlamaTokenizerFast defaults to padding_side "left"; the same
 * recipe run through HF on a Llama checkpoint would put the pads first, where every pad query is a fully masked
 * row — eager attention then averages all T keys uniformly, SDPA's `_unmask_unattended` attends to all of them,
 * future real tokens included — a version-dependent artefact, not the reference's loss, so not reproduced.)
 * Only a fully masked row differs between versions and here: a text with no tokens at all (possible without
 * BOS; refused) or, in sliding-window layers, a pad more than `window` positions past the last real token.
 *
 * How, without touching the model graphs: this module takes lmsteer's own decoder graph (buildDecoderGraph)
 * and adds one input, `key_lengths` int64 [batch], whose bias (−1e30 on new keys at index ≥ key_lengths[b])
 * is added to every mask of the call's new tokens (the one causal mask, and the sliding-window one where a
 * model has it). Rows run with an empty past. Real tokens see exactly what they see in the plain graph.
 * It is a second ORT session over the same weights (built in a temporary folder, weights in external data).
 * TODO(contract): a `key_lengths` (or attention-mask) input in the decoder contract would make this a plain
 * `forward(rows, {keyLengths})` and drop the rewrite; until then a test checks it against a float64 loop.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { decodeModel, encodeModel, ONNX_DTYPE } from '../graph/onnxProto.js';
import type { WeightStore } from '../formats/weights.js';
import type { DecoderConfig } from '../models/config.js';
import { buildDecoderGraph } from '../models/graphs.js';
import type { ModelDecoder } from '../runtime/decoder.js';
import { OnnxExportDecoder } from '../runtime/onnxExportDecoder.js';
import { sessionOptions } from '../runtime/session.js';
import { LmSteerError } from '../util/errors.js';
import { tensor, type Tensor } from '../util/tensor.js';

/** Bias of a masked key, as the model graphs use: finite, so sums of two stay finite in float32. */
const MASKED = -1e30;

interface Node {
  op_type: string;
  input: string[];
  output: string[];
  name?: string;
  domain?: string;
  attribute?: object[];
}

/**
 * Add the `key_lengths` input to a decoded lmsteer decoder ModelProto (in place). The new-token masks are
 * found from the causal comparison (the one LessOrEqual: key index ≤ query index) through Where/And to the
 * Unsqueeze that shapes each mask; every consumer of such a mask then reads mask + key bias instead.
 */
export function addKeyLengthsInput(model: Record<string, any>): void {
  const graph = model.graph as { node: Node[]; initializer: object[]; input: object[] };
  const nodes = graph.node;
  const fail = (why: string): never => {
    throw new Error(
      `internal: the decoder graph's attention mask is not laid out as maskedForward.ts expects (${why})`,
    );
  };
  const causal = nodes.filter((n) => n.op_type === 'LessOrEqual');
  if (causal.length !== 1) fail(`${causal.length} LessOrEqual nodes`);
  const consumers = (v: string) => nodes.filter((n) => n.input.includes(v));
  const masks: string[] = [];
  const frontier = [causal[0]!.output[0]!];
  while (frontier.length > 0) {
    for (const n of consumers(frontier.pop()!)) {
      if (n.op_type === 'Unsqueeze') masks.push(n.output[0]!);
      else if (n.op_type === 'Where' || n.op_type === 'And') frontier.push(n.output[0]!);
      else fail(`the causal mask feeds a ${n.op_type}`);
    }
  }
  if (masks.length === 0) fail('no mask reaches the scores');

  const init = (name: string, dtype: keyof typeof ONNX_DTYPE, dims: number[], data: BigInt64Array | Float32Array) =>
    graph.initializer.push({
      name,
      data_type: ONNX_DTYPE[dtype],
      dims,
      raw_data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    });
  const p = 'keylen.';
  init(`${p}zero`, 'int64', [], BigInt64Array.of(0n));
  init(`${p}one`, 'int64', [], BigInt64Array.of(1n));
  init(`${p}ax0`, 'int64', [1], BigInt64Array.of(0n));
  init(`${p}ax1`, 'int64', [1], BigInt64Array.of(1n));
  init(`${p}ax123`, 'int64', [3], BigInt64Array.of(1n, 2n, 3n));
  init(`${p}open`, 'float32', [], Float32Array.of(0));
  init(`${p}masked`, 'float32', [], Float32Array.of(MASKED));
  graph.input.push({
    name: 'key_lengths',
    type: { tensor_type: { elem_type: ONNX_DTYPE.int64, shape: { dim: [{ dim_param: 'batch' }] } } },
  });
  const node = (op_type: string, input: string[], output: string, attribute: object[] = []): Node => ({
    op_type,
    input,
    output: [output],
    name: `${p}${output}`,
    attribute,
  });
  // keyBias [B,1,1,1,T] = where(t < key_lengths[b], 0, MASKED), t over this call's new tokens.
  const head: Node[] = [
    node('Shape', ['input_ids'], `${p}shape_t`, [
      { name: 'start', type: 2, i: 1 },
      { name: 'end', type: 2, i: 2 },
    ]),
    node('Squeeze', [`${p}shape_t`, `${p}ax0`], `${p}T`),
    node('Range', [`${p}zero`, `${p}T`, `${p}one`], `${p}t`),
    node('Unsqueeze', [`${p}t`, `${p}ax0`], `${p}t_row`), // [1, T]
    node('Unsqueeze', ['key_lengths', `${p}ax1`], `${p}len_col`), // [B, 1]
    node('Less', [`${p}t_row`, `${p}len_col`], `${p}valid`), // [B, T]
    node('Where', [`${p}valid`, `${p}open`, `${p}masked`], `${p}bias2`),
    node('Unsqueeze', [`${p}bias2`, `${p}ax123`], `${p}bias`), // [B,1,1,1,T]
  ];
  const out: Node[] = [...head];
  for (const n of nodes) {
    out.push(n);
    const m = n.output.find((o) => masks.includes(o));
    if (m === undefined) continue;
    const masked = `${m}.keylen`;
    out.push(node('Add', [m, `${p}bias`], masked));
    for (const c of consumers(m)) c.input = c.input.map((i) => (i === m ? masked : i));
  }
  graph.node = out;
}

/** What the masked forward needs of a loaded model. */
export interface MaskedForwardModel {
  cfg: DecoderConfig;
  weights: WeightStore;
  decoder: ModelDecoder;
}

/** The final hidden states of right-padded rows under an attention mask (see the file comment). */
export class MaskedForward {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly cfg: DecoderConfig,
  ) {}

  static async open(model: MaskedForwardModel, opts: { threads?: number } = {}): Promise<MaskedForward> {
    if (model.decoder instanceof OnnxExportDecoder) {
      throw new LmSteerError(
        'UNSUPPORTED',
        'pad positions under the attention mask (--include-padding) need lmsteer’s own decoder graph, not an ONNX export',
        'load the model from its safetensors checkpoint or llama2.c file, or leave out --include-padding',
      );
    }
    const dir = mkdtempSync(join(tmpdir(), 'lmsteer-masked-'));
    try {
      const bytes = buildDecoderGraph(model.cfg, model.weights).serialize({
        externalPath: join(dir, 'weights.bin'),
        externalName: 'weights.bin',
      });
      const proto = decodeModel(bytes);
      addKeyLengthsInput(proto);
      const path = join(dir, 'model.onnx');
      writeFileSync(path, encodeModel(proto));
      return new MaskedForward(await ort.InferenceSession.create(path, sessionOptions(opts.threads)), model.cfg);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * Hidden states [B, T, d] of `rows` (all of length T: real tokens then pads) where row b's first
   * keyLengths[b] tokens are real. Position ids are 0..T−1 in every row.
   */
  async hidden(rows: readonly (readonly number[])[], keyLengths: readonly number[]): Promise<Tensor> {
    const B = rows.length;
    const T = rows[0]?.length ?? 0;
    const { numKvHeads: kvH, headDim: hd, hiddenSize: d } = this.cfg;
    if (B === 0 || T === 0) throw new Error('internal: MaskedForward.hidden needs at least one non-empty row');
    if (T > this.cfg.maxPositions) throw new Error(`internal: ${T} positions exceed the model's context`);
    const ids = new BigInt64Array(B * T);
    const pos = new BigInt64Array(B * T);
    rows.forEach((r, b) => {
      if (r.length !== T) throw new Error('internal: MaskedForward rows must all have the same length');
      if (!(keyLengths[b]! >= 1 && keyLengths[b]! <= T)) throw new Error(`internal: key length ${keyLengths[b]}`);
      for (let t = 0; t < T; t++) {
        ids[b * T + t] = BigInt(r[t]!);
        pos[b * T + t] = BigInt(t);
      }
    });
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [B, T]),
      position_ids: new ort.Tensor('int64', pos, [B, T]),
      past_lengths: new ort.Tensor('int64', new BigInt64Array(B), [B]),
      logits_index: new ort.Tensor('int64', new BigInt64Array(B), [B, 1]),
      key_lengths: new ort.Tensor(
        'int64',
        BigInt64Array.from(keyLengths, (n) => BigInt(n)),
        [B],
      ),
      steer_p1: new ort.Tensor('float32', new Float32Array(d), [d, 1]),
      steer_p2t: new ort.Tensor('float32', new Float32Array(d), [1, d]),
      steer_scale: new ort.Tensor('float32', new Float32Array(B), [B, 1]),
    };
    // An empty past: capacity 1, masked by past_lengths 0.
    const empty = new ort.Tensor('float32', new Float32Array(B * kvH * hd), [B, kvH, 1, hd]);
    for (let i = 0; i < this.cfg.numLayers; i++) feeds[`past.${i}.key`] = feeds[`past.${i}.value`] = empty;
    const out = await this.session.run(feeds, ['hidden']);
    const h = out.hidden as ort.Tensor;
    return tensor([B, T, d], h.data as Float32Array);
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
