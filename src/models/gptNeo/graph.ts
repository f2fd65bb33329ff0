/**
 * GPT-Neo as an ONNX graph, following transformers' GPTNeoForCausalLM (pre-LayerNorm, learned positions,
 * nn.Linear weights [out, in], q/k/v without biases, head tied to wte):
 *   x = wte(ids) + wpe(pos)
 *   per layer:  x += out_proj(attn(q, k, v) on ln_1(x));   x += c_proj(act(c_fc(ln_2(x))))
 *   hidden = ln_f(x);  logits = steer(hidden)·wteᵀ
 * Attention scores are NOT divided by √head_dim (GPTNeoSelfAttention._attn has no scaling), and local layers see
 * only the last window_size positions (cfg.slidingWindow, config.ts).
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { GraphBuildOptions } from '../../graph/buildOptions.js';
import { linearLayer, embeddingLookup } from '../../graph/linear.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  activation,
  cachedAttention,
  declareInputs,
  qkvNames,
  layerNorm,
  splitLast,
  steeredHead,
  weightRows,
} from '../common.js';
import { vocabularyEnds } from '../embeddings.js';
import { headWeightName } from './config.js';

export function buildGptNeoGraph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder('gpt_neo');
  const inp = declareInputs(g, cfg);
  const { hiddenSize: d, intermediateSize: I } = cfg;
  const W = (name: string) => g.weight(name, w.get(name)); // norms and biases: float32 always
  const rows = (name: string) => weightRows(w, name);
  const ln = (x: string, p: string) => layerNorm(g, x, W(`${p}.weight`), W(`${p}.bias`), cfg.normEps);

  // y = x·Wᵀ + b for the nn.Linear at `p` (W [out, in] = shape), in the build's precision.
  const linear = (x: string, p: string, shape: [number, number]) =>
    linearLayer(g, x, `${p}.weight`, shape, rows(`${p}.weight`), build, W(`${p}.bias`));

  const wte = { tokens: 'transformer.wte.weight', head: headWeightName(cfg) };
  const ends = vocabularyEnds(g, w, inp.inputIds, wte, build);
  const wpe = 'transformer.wpe.weight'; // [maxPositions, d]
  let x = g.op('Add', [ends.tokens, embeddingLookup(g, inp.positionIds, wpe, [cfg.maxPositions, d], rows(wpe), build)]);

  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `transformer.h.${i}`;
    const a = `${p}.attn.attention`;
    // q, k, v [d, d] each (no biases), stacked into one [3d, d] weight: one pass over the input instead of three.
    const qkvRows = weightRows(w, ...qkvNames(a, 'weight'));
    const qkv = linearLayer(g, ln(x, `${p}.ln_1`), `${a}.qkv.weight`, [3 * d, d], qkvRows, build);
    const [q, k, v] = splitLast(g, qkv, [d, d, d]);
    const att = cachedAttention(g, cfg, i, inp, q, k, v, { scale: 1 }); // unscaled scores
    x = g.op('Add', [x, linear(att, `${a}.out_proj`, [d, d])]);
    const fc = linear(ln(x, `${p}.ln_2`), `${p}.mlp.c_fc`, [I, d]);
    x = g.op('Add', [x, linear(activation(g, cfg.activation, fc), `${p}.mlp.c_proj`, [d, I])]);
  }
  steeredHead(g, cfg, inp, ln(x, 'transformer.ln_f'), ends.head);
  return g;
}
