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
import { stackRows, storeRows } from '../../graph/rowSource.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import { activation, applyRope, cachedAttention, concat1d, declareInputs, ropeTables, steeredHead } from '../common.js';
import { vocabularyEnds } from '../embeddings.js';
import { headWeightName } from './config.js';

export function buildLlamaGraph(cfg: DecoderConfig, w: WeightStore, build: GraphBuildOptions): GraphBuilder {
  const g = new GraphBuilder(cfg.modelType);
  const inp = declareInputs(g, cfg);
  const { vocabSize: V, hiddenSize: d, numHeads: H, numKvHeads: kvH, headDim: hd, intermediateSize: I } = cfg;
  const rope = cfg.rope!;
  const { cos, sin } = ropeTables(g, cfg, inp.positionIds);
  const rows =
    (...names: string[]) =>
    () =>
      stackRows(names.map((n) => storeRows(w, n)));
  const rmsnorm = (x: string, name: string) =>
    g.op('SimplifiedLayerNormalization', [x, g.weight(name, w.get(name))], { axis: -1, epsilon: cfg.normEps });

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
      ? g.weight(`${p}.qkv.bias`, concat1d(['q', 'k', 'v'].map((n) => w.get(`${a}.${n}_proj.bias`))))
      : undefined;
    const h = rmsnorm(x, `${p}.input_layernorm.weight`);
    const qkvRows = rows(`${a}.q_proj.weight`, `${a}.k_proj.weight`, `${a}.v_proj.weight`);
    const qkv = linearLayer(g, h, `${p}.qkv.weight`, [(H + 2 * kvH) * hd, d], qkvRows, build, qkvB);
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([H * hd, kvH * hd, kvH * hd])], { axis: -1 }, { outputs: 3 });
    const qr = applyRope(g, q, H, cos, sin, rope.rotaryDim, hd);
    const kr = applyRope(g, k, kvH, cos, sin, rope.rotaryDim, hd);
    const att = cachedAttention(g, cfg, i, inp, qr, kr, v);
    const oB = cfg.outBias ? g.weight(`${a}.o_proj.bias`, w.get(`${a}.o_proj.bias`)) : undefined;
    // o_proj: [d, H·hd]
    x = g.op('Add', [x, linearLayer(g, att, `${a}.o_proj.weight`, [d, H * hd], rows(`${a}.o_proj.weight`), build, oB)]);

    const h2 = rmsnorm(x, `${p}.post_attention_layernorm.weight`);
    const m = `${p}.mlp`;
    const guB = cfg.mlpBias
      ? g.weight(`${m}.gate_up.bias`, concat1d([w.get(`${m}.gate_proj.bias`), w.get(`${m}.up_proj.bias`)]))
      : undefined;
    // gate_proj and up_proj: [I, d] each, in one product
    const gu = linearLayer(
      g,
      h2,
      `${m}.gate_up.weight`,
      [2 * I, d],
      rows(`${m}.gate_proj.weight`, `${m}.up_proj.weight`),
      build,
      guB,
    );
    const [gate, up] = g.opN('Split', [gu, g.constI64([I, I])], { axis: -1 }, { outputs: 2 });
    const act = g.op('Mul', [activation(g, cfg.activation, gate), up]); // act(gate) * up
    const dB = cfg.mlpBias ? g.weight(`${m}.down_proj.bias`, w.get(`${m}.down_proj.bias`)) : undefined;
    // down_proj: [d, I]
    x = g.op('Add', [
      x,
      linearLayer(g, act, `${m}.down_proj.weight`, [d, I], rows(`${m}.down_proj.weight`), build, dB),
    ]);
  }

  steeredHead(g, cfg, inp, rmsnorm(x, 'model.norm.weight'), ends.head);
  return g;
}
