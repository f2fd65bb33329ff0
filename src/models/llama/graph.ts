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
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  declareInputs,
  fusedQkv,
  gatedMlp,
  outProjection,
  qkvNames,
  rmsNorm,
  ropeAttention,
  ropeTables,
  stackedBias,
  steeredHead,
} from '../common.js';
import { vocabularyEnds } from '../embeddings.js';
import { headWeightName } from './config.js';

export function buildLlamaGraph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder(cfg.modelType);
  const inp = declareInputs(g, cfg);
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
    // q_proj [H·hd, d], k_proj and v_proj [kvH·hd, d] in one product; o_proj [d, H·hd]
    const qkvB = cfg.qkvBias ? stackedBias(g, w, `${p}.qkv.bias`, qkvNames(a, 'bias')) : undefined;
    const h = rmsnorm(x, `${p}.input_layernorm.weight`);
    const [q, k, v] = fusedQkv(g, cfg, w, build, a, `${p}.qkv`, h, qkvB);
    const att = ropeAttention(g, cfg, i, inp, rope, q, k, v);
    x = g.op('Add', [x, outProjection(g, cfg, w, build, a, att)]);

    // gate_proj and up_proj [I, d] in one product, down_proj [d, I]: down(act(gate) · up)
    x = g.op('Add', [x, gatedMlp(g, cfg, w, build, `${p}.mlp`, rmsnorm(x, `${p}.post_attention_layernorm.weight`))]);
  }

  steeredHead(g, cfg, inp, rmsnorm(x, 'model.norm.weight'), ends.head);
  return g;
}
