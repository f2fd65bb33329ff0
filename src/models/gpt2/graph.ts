/**
 * GPT-2 as an ONNX graph, following transformers' GPT2LMHeadModel (pre-LayerNorm, learned positions,
 * Conv1D weights stored [in, out], gelu_new = tanh-approximated GELU, head tied to wte):
 *   x = wte(ids) + wpe(pos)
 *   per layer:  x += c_proj(attn(split(c_attn(ln_1(x)))));   x += mlp(ln_2(x))
 *   hidden = ln_f(x);  logits = steer(hidden)·wteᵀ
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import { headWeightName } from './config.js';
import {
  activation,
  cachedAttention,
  declareInputs,
  embedFromTransposed,
  linear,
  steeredHead,
  transpose2d,
} from '../common.js';

export function buildGpt2Graph(cfg: DecoderConfig, w: WeightStore): GraphBuilder {
  const g = new GraphBuilder('gpt2');
  const W = (name: string) => g.weight(name, w.get(name)); // canonical names: no `transformer.` prefix
  const inp = declareInputs(g, cfg);
  const d = cfg.hiddenSize;
  const layerNorm = (x: string, p: string) =>
    g.op('LayerNormalization', [x, W(`${p}.weight`), W(`${p}.bias`)], { axis: -1, epsilon: cfg.normEps });

  // Eᵀ for the head; when tied (always, in released GPT-2s) also the token lookup table.
  const headT = g.weight('lm_head.weight_t', transpose2d(w.get(headWeightName(cfg))));
  const tokens = cfg.tiedEmbeddings
    ? embedFromTransposed(g, headT, inp.inputIds)
    : g.op('Gather', [W('wte.weight'), inp.inputIds], { axis: 0 });
  let x = g.op('Add', [tokens, g.op('Gather', [W('wpe.weight'), inp.positionIds], { axis: 0 })]);

  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `h.${i}`;
    const qkv = linear(g, layerNorm(x, `${p}.ln_1`), W(`${p}.attn.c_attn.weight`), W(`${p}.attn.c_attn.bias`));
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([d, d, d])], { axis: -1 }, { outputs: 3 });
    const att = cachedAttention(g, cfg, i, inp, q, k, v);
    x = g.op('Add', [x, linear(g, att, W(`${p}.attn.c_proj.weight`), W(`${p}.attn.c_proj.bias`))]);
    const fc = linear(g, layerNorm(x, `${p}.ln_2`), W(`${p}.mlp.c_fc.weight`), W(`${p}.mlp.c_fc.bias`));
    const act = activation(g, cfg.activation, fc);
    x = g.op('Add', [x, linear(g, act, W(`${p}.mlp.c_proj.weight`), W(`${p}.mlp.c_proj.bias`))]);
  }
  steeredHead(g, cfg, inp, layerNorm(x, 'ln_f'), headT);
  return g;
}
