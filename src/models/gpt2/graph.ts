/**
 * GPT-2 as an ONNX graph, following transformers' GPT2LMHeadModel (pre-LayerNorm, learned positions,
 * Conv1D weights stored [in, out], gelu_new = tanh-approximated GELU, head tied to wte):
 *   x = wte(ids) + wpe(pos)
 *   per layer:  x += c_proj(attn(split(c_attn(ln_1(x)))));   x += mlp(ln_2(x))
 *   hidden = ln_f(x);  logits = steer(hidden)·wteᵀ
 * Weights are read when the graph is serialized (src/graph/linear.ts), in the precision of `build`; LayerNorms,
 * biases and the position table stay float32.
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { GraphBuildOptions } from '../../graph/buildOptions.js';
import { linearLayer } from '../../graph/linear.js';
import { transposedRows } from '../../graph/rowSource.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import { headWeightName } from './config.js';
import { activation, cachedAttention, declareInputs, layerNorm, splitLast, steeredHead } from '../common.js';
import { vocabularyEnds } from '../embeddings.js';

export function buildGpt2Graph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder('gpt2');
  const W = (name: string) => g.weight(name, w.get(name)); // canonical names: no `transformer.` prefix
  const inp = declareInputs(g, cfg);
  const { hiddenSize: d, intermediateSize: I } = cfg;
  const ln = (x: string, p: string) => layerNorm(g, x, W(`${p}.weight`), W(`${p}.bias`), cfg.normEps);
  // Conv1D: y = x·W + b with W stored [in, out]; linearLayer takes [out, in] rows (the fp32 MatMul gets W as stored).
  const conv1d = (x: string, name: string, out: number, inp: number) =>
    linearLayer(
      g,
      x,
      `${name}.weight`,
      [out, inp],
      () => transposedRows(w.get(`${name}.weight`)),
      build,
      W(`${name}.bias`),
    );

  // wte [V, d]: the head's E; when tied (always, in released GPT-2s) also the token lookup table.
  const ends = vocabularyEnds(g, w, inp.inputIds, { tokens: 'wte.weight', head: headWeightName(cfg) }, build);
  let x = g.op('Add', [ends.tokens, g.op('Gather', [W('wpe.weight'), inp.positionIds], { axis: 0 })]); // wpe [n_positions, d]

  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `h.${i}`;
    const qkv = conv1d(ln(x, `${p}.ln_1`), `${p}.attn.c_attn`, 3 * d, d); // c_attn: [d, 3d]
    const [q, k, v] = splitLast(g, qkv, [d, d, d]);
    const att = cachedAttention(g, cfg, i, inp, q, k, v);
    x = g.op('Add', [x, conv1d(att, `${p}.attn.c_proj`, d, d)]); // c_proj: [d, d]
    const fc = conv1d(ln(x, `${p}.ln_2`), `${p}.mlp.c_fc`, I, d); // c_fc: [d, I]
    x = g.op('Add', [x, conv1d(activation(g, cfg.activation, fc), `${p}.mlp.c_proj`, d, I)]); // c_proj: [I, d]
  }
  steeredHead(g, cfg, inp, ln(x, 'ln_f'), ends.head);
  return g;
}
