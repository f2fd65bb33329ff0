/**
 * GPT-J as an ONNX graph, following transformers' GPTJForCausalLM: one LayerNorm feeds attention and MLP in
 * parallel, q/k/v/out without biases, rotary on the first rotary_dim channels of each head, an untied head with a
 * bias:
 *   per layer:  h = ln_1(x);   x = x + out_proj(attn(rope(q), rope(k), v)) + fc_out(act(fc_in(h)))
 *   hidden = ln_f(x);  logits = steer(hidden)·lm_headᵀ + lm_head.bias
 * GPT-J pairs channels (2i, 2i+1) for its rotation (rotate_every_two); common.ts' applyRope pairs (i, i + r/2)
 * (rotate_half). Both rotate pair i by frequency i, so listing q's and k's rows of each head as [0, 2, 4, …, 1, 3,
 * 5, …] turns one layout into the other, and q·k is unchanged when both are reordered alike: a weight-layout fix
 * made while loading (as llama2.c → HF conversions do), exact, with no interleaving op in the graph. The
 * reference forward (reference.ts) does GPT-J's own interleaved rotation, so the graph test checks this.
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { GraphBuildOptions } from '../../graph/buildOptions.js';
import { linearLayer } from '../../graph/linear.js';
import { permutedRows, stackRows, storeRows } from '../../graph/rowSource.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  activation,
  declareInputs,
  layerNorm,
  ropeAttention,
  ropeTables,
  splitLast,
  steeredHead,
  weightRows,
} from '../common.js';
import { vocabularyEnds } from '../embeddings.js';
import { HEAD_BIAS, headWeightName } from './config.js';

/** Row order of a q or k projection [H·hd, d] that regroups each head's interleaved rotary pairs into halves. */
export function rotateHalfOrder(H: number, hd: number, rotaryDim: number): number[] {
  const order: number[] = [];
  for (let h = 0; h < H; h++) {
    const base = h * hd;
    for (let i = 0; i < rotaryDim; i += 2) order.push(base + i); // first of each pair → first half
    for (let i = 1; i < rotaryDim; i += 2) order.push(base + i); // second of each pair → second half
    for (let j = rotaryDim; j < hd; j++) order.push(base + j); // channels that do not rotate stay put
  }
  return order;
}

export function buildGptjGraph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder('gptj');
  const inp = declareInputs(g, cfg);
  const { hiddenSize: d, intermediateSize: I, numHeads: H, headDim: hd } = cfg;
  const rotaryDim = cfg.rope!.rotaryDim;
  const rope = ropeTables(g, cfg, inp.positionIds);
  const W = (name: string) => g.weight(name, w.get(name)); // norms and biases: float32 always
  const rows = (name: string) => weightRows(w, name);
  const ln = (x: string, p: string) => layerNorm(g, x, W(`${p}.weight`), W(`${p}.bias`), cfg.normEps);
  const order = rotateHalfOrder(H, hd, rotaryDim);
  // y = x·Wᵀ + b for the nn.Linear at `p` (W [out, in] = shape), in the build's precision.
  const linear = (x: string, p: string, shape: [number, number]) =>
    linearLayer(g, x, `${p}.weight`, shape, rows(`${p}.weight`), build, W(`${p}.bias`));

  const ends = vocabularyEnds(
    g,
    w,
    inp.inputIds,
    { tokens: 'transformer.wte.weight', head: headWeightName(cfg) },
    build,
  );
  let x = ends.tokens;
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `transformer.h.${i}`;
    const h = ln(x, `${p}.ln_1`);
    // q (rows reordered), k (rows reordered), v: [d, d] each, stacked into one [3d, d] weight.
    const qkvRows = () =>
      stackRows([
        permutedRows(storeRows(w, `${p}.attn.q_proj.weight`), order),
        permutedRows(storeRows(w, `${p}.attn.k_proj.weight`), order),
        storeRows(w, `${p}.attn.v_proj.weight`),
      ]);
    const qkv = linearLayer(g, h, `${p}.attn.qkv.weight`, [3 * d, d], qkvRows, build);
    const [q, k, v] = splitLast(g, qkv, [d, d, d]);
    const att = ropeAttention(g, cfg, i, inp, rope, q, k, v);
    const attOut = linearLayer(g, att, `${p}.attn.out_proj.weight`, [d, d], rows(`${p}.attn.out_proj.weight`), build);
    const fc = linear(h, `${p}.mlp.fc_in`, [I, d]);
    const mlp = linear(activation(g, cfg.activation, fc), `${p}.mlp.fc_out`, [d, I]);
    x = g.op('Add', [g.op('Add', [x, attOut]), mlp]);
  }
  steeredHead(g, cfg, inp, ln(x, 'transformer.ln_f'), ends.head, { bias: W(HEAD_BIAS) });
  return g;
}
