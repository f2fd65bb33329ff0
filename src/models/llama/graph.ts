/**
 * Llama-family decoder (llama, mistral, qwen2) as an ONNX graph, following transformers' LlamaForCausalLM:
 *   x = embed(ids)
 *   per layer:  x += o_proj(attn(rope(q), rope(k), v))  on rmsnorm(x);   x += down(silu(gate(·)) * up(·)) on rmsnorm(x)
 *   hidden = rmsnorm(x);  logits = steer(hidden)·Eᵀ
 * Weights are read a band of rows at a time when the graph is serialized (src/graph/linear.ts), in the precision
 * of `build`; norms and biases stay float32.
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { GraphBuildOptions } from '../../graph/buildOptions.js';
import { linearLayer } from '../../graph/linear.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  declareInputs,
  gatedMlp,
  rmsNorm,
  ropeAttention,
  ropeTables,
  splitLast,
  stackedBias,
  steeredHead,
  weightRows,
} from '../common.js';
import { vocabularyEnds } from '../embeddings.js';
import { headWeightName } from './config.js';

export function buildLlamaGraph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder(cfg.modelType);
  const inp = declareInputs(g, cfg);
  const { hiddenSize: d, numHeads: H, numKvHeads: kvH, headDim: hd } = cfg;
  const rope = ropeTables(g, cfg, inp.positionIds);
  const rmsnorm = (x: string, name: string) => rmsNorm(g, x, g.weight(name, w.get(name)), cfg.normEps);

  // embed_tokens [V, d] and lm_head [V, d] (embed_tokens when tied)
  const ends = vocabularyEnds(
    g,
    w,
    inp.inputIds,
    { tokens: 'model.embed_tokens.weight', head: headWeightName(cfg) },
    build,
  );
  let x = ends.tokens;

  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const a = `${p}.self_attn`;
    // q_proj [H·hd, d], k_proj and v_proj [kvH·hd, d] in one product: one pass over the input instead of three.
    const qkvB = cfg.qkvBias
      ? stackedBias(
          g,
          w,
          `${p}.qkv.bias`,
          ['q', 'k', 'v'].map((n) => `${a}.${n}_proj.bias`),
        )
      : undefined;
    const h = rmsnorm(x, `${p}.input_layernorm.weight`);
    const qkvRows = weightRows(w, `${a}.q_proj.weight`, `${a}.k_proj.weight`, `${a}.v_proj.weight`);
    const qkv = linearLayer(g, h, `${p}.qkv.weight`, [(H + 2 * kvH) * hd, d], qkvRows, build, qkvB);
    const [q, k, v] = splitLast(g, qkv, [H * hd, kvH * hd, kvH * hd]);
    const att = ropeAttention(g, cfg, i, inp, rope, q, k, v);
    const oB = cfg.outBias ? g.weight(`${a}.o_proj.bias`, w.get(`${a}.o_proj.bias`)) : undefined;
    // o_proj: [d, H·hd]
    const oRows = weightRows(w, `${a}.o_proj.weight`);
    x = g.op('Add', [x, linearLayer(g, att, `${a}.o_proj.weight`, [d, H * hd], oRows, build, oB)]);

    // gate_proj and up_proj [I, d] in one product, down_proj [d, I]: down(act(gate) · up)
    x = g.op('Add', [x, gatedMlp(g, cfg, w, build, `${p}.mlp`, rmsnorm(x, `${p}.post_attention_layernorm.weight`))]);
  }

  steeredHead(g, cfg, inp, rmsnorm(x, 'model.norm.weight'), ends.head);
  return g;
}
