/**
 * OPT as an ONNX graph, following transformers' OPTForCausalLM (config.ts lists the quirks):
 *   x = project_in(embed_tokens(ids)) + embed_positions(pos + 2)
 *   per layer, pre-norm (do_layer_norm_before):  x += out_proj(attn(ln_a(x)));  x += fc2(relu(fc1(ln_f(x))))
 *              post-norm (OPT-350m):              x = ln_a(x + out_proj(attn(x)));  x = ln_f(x + fc2(relu(fc1(x))))
 *   hidden = project_out(final_layer_norm(x));  logits = steer(hidden)·embed_tokensᵀ
 * (project_in/out only where word_embed_proj_dim ≠ hidden_size; final_layer_norm only where the config has one).
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { GraphBuildOptions } from '../../graph/buildOptions.js';
import { embeddingLookup, linearLayer } from '../../graph/linear.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  activation,
  cachedAttention,
  declareInputs,
  qkvNames,
  splitLast,
  stackedBias,
  steeredHead,
  weightRows,
} from '../common.js';
import { vocabularyEnds } from '../embeddings.js';
import { headWeightName, modelWidth, POSITION_OFFSET } from './config.js';

const P = 'model.decoder.';

export function buildOptGraph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder('opt');
  const inp = declareInputs(g, cfg);
  const { hiddenSize: e, intermediateSize: I } = cfg;
  const d = modelWidth(cfg);
  const W = (name: string) => g.weight(name, w.get(name)); // norms and biases: float32 always
  const rows = (name: string) => weightRows(w, name);
  const ones = cfg.normAffine === false ? g.constF32(new Array<number>(d).fill(1), [d]) : undefined;
  // layer_norm_elementwise_affine false: gain 1, no bias.
  const layerNorm = (x: string, p: string) =>
    g.op('LayerNormalization', ones ? [x, ones] : [x, W(`${p}.weight`), W(`${p}.bias`)], {
      axis: -1,
      epsilon: cfg.normEps,
    });
  const linear = (x: string, name: string, shape: [number, number], bias: boolean) =>
    linearLayer(g, x, `${name}.weight`, shape, rows(`${name}.weight`), build, bias ? W(`${name}.bias`) : undefined);

  const ends = vocabularyEnds(
    g,
    w,
    inp.inputIds,
    { tokens: `${P}embed_tokens.weight`, head: headWeightName(cfg) },
    build,
  );
  const tokens = e === d ? ends.tokens : linear(ends.tokens, `${P}project_in`, [d, e], false); // [d, e]
  const positions = embeddingLookup(
    g,
    g.op('Add', [inp.positionIds, g.constI64([POSITION_OFFSET], [])]),
    `${P}embed_positions.weight`,
    [cfg.maxPositions + POSITION_OFFSET, d],
    rows(`${P}embed_positions.weight`),
    build,
  );
  let x = g.op('Add', [tokens, positions]);

  const pre = !cfg.postNorm;
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `${P}layers.${i}`;
    const a = `${p}.self_attn`;
    const qkvRows = weightRows(w, ...qkvNames(a, 'weight'));
    const qkvBias = cfg.qkvBias ? stackedBias(g, w, `${a}.qkv.bias`, qkvNames(a, 'bias')) : undefined;
    const h = pre ? layerNorm(x, `${p}.self_attn_layer_norm`) : x;
    const qkv = linearLayer(g, h, `${a}.qkv.weight`, [3 * d, d], qkvRows, build, qkvBias); // [3d, d]
    const [q, k, v] = splitLast(g, qkv, [d, d, d]);
    const att = cachedAttention(g, cfg, i, inp, q, k, v); // q·kᵀ/√head_dim (OPT scales q by head_dim^−½)
    x = g.op('Add', [x, linear(att, `${a}.out_proj`, [d, d], cfg.outBias)]);
    if (!pre) x = layerNorm(x, `${p}.self_attn_layer_norm`);

    const f = pre ? layerNorm(x, `${p}.final_layer_norm`) : x;
    const fc = linear(f, `${p}.fc1`, [I, d], cfg.mlpBias); // [I, d]
    x = g.op('Add', [x, linear(activation(g, cfg.activation, fc), `${p}.fc2`, [d, I], cfg.mlpBias)]); // [d, I]
    if (!pre) x = layerNorm(x, `${p}.final_layer_norm`);
  }
  if (cfg.finalNorm !== false) x = layerNorm(x, `${P}final_layer_norm`);
  const hidden = e === d ? x : linear(x, `${P}project_out`, [e, d], false); // [e, d]
  steeredHead(g, cfg, inp, hidden, ends.head);
  return g;
}
