/**
 * Llama-family decoder (llama, mistral, qwen2) as an ONNX graph, following transformers' LlamaForCausalLM:
 *   x = embed(ids)
 *   per layer:  x += o_proj(attn(rope(q), rope(k), v))  on rmsnorm(x);   x += down(silu(gate(·)) * up(·)) on rmsnorm(x)
 *   hidden = rmsnorm(x);  logits = steer(hidden)·Eᵀ
 */
import { GraphBuilder } from '../../graph/builder.js';
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import {
  activation,
  applyRope,
  cachedAttention,
  concat1d,
  concatCols,
  declareInputs,
  embedFromTransposed,
  linear,
  ropeTables,
  steeredHead,
  transpose2d,
} from '../common.js';

export function buildLlamaGraph(cfg: DecoderConfig, w: WeightStore): GraphBuilder {
  const g = new GraphBuilder(cfg.modelType);
  const inp = declareInputs(g, cfg);
  const { numHeads: H, numKvHeads: kvH, headDim: hd } = cfg;
  const rope = cfg.rope!;
  const { cos, sin } = ropeTables(g, cfg, inp.positionIds);
  const rmsnorm = (x: string, name: string) =>
    g.op('SimplifiedLayerNormalization', [x, g.weight(name, w.get(name))], { axis: -1, epsilon: cfg.normEps });

  // The LM head wants Eᵀ [d, V]; a tied model looks its input embeddings up in that same matrix.
  const head = g.weight(
    'lm_head.weight_t',
    transpose2d(w.get(cfg.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')),
  );
  let x = cfg.tiedEmbeddings
    ? embedFromTransposed(g, head, inp.inputIds)
    : g.op('Gather', [g.weight('model.embed_tokens.weight', w.get('model.embed_tokens.weight')), inp.inputIds], {
        axis: 0,
      });

  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    // q, k, v in one MatMul: one pass over the input instead of three.
    const qkvW = concatCols(['q', 'k', 'v'].map((n) => transpose2d(w.get(`${p}.self_attn.${n}_proj.weight`))));
    const qkvB = cfg.qkvBias
      ? g.weight(`${p}.qkv.bias`, concat1d(['q', 'k', 'v'].map((n) => w.get(`${p}.self_attn.${n}_proj.bias`))))
      : undefined;
    const h = rmsnorm(x, `${p}.input_layernorm.weight`);
    const qkv = linear(g, h, g.weight(`${p}.qkv.weight`, qkvW), qkvB);
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([H * hd, kvH * hd, kvH * hd])], { axis: -1 }, { outputs: 3 });
    const qr = applyRope(g, q, H, cos, sin, rope.rotaryDim, hd);
    const kr = applyRope(g, k, kvH, cos, sin, rope.rotaryDim, hd);
    const att = cachedAttention(g, cfg, i, inp, qr, kr, v);
    const oB = cfg.outBias ? g.weight(`${p}.self_attn.o_proj.bias`, w.get(`${p}.self_attn.o_proj.bias`)) : undefined;
    x = g.op('Add', [
      x,
      linear(g, att, g.weight(`${p}.self_attn.o_proj.weight`, transpose2d(w.get(`${p}.self_attn.o_proj.weight`))), oB),
    ]);

    const h2 = rmsnorm(x, `${p}.post_attention_layernorm.weight`);
    const I = cfg.intermediateSize;
    const guW = concatCols([
      transpose2d(w.get(`${p}.mlp.gate_proj.weight`)),
      transpose2d(w.get(`${p}.mlp.up_proj.weight`)),
    ]);
    const guB = cfg.mlpBias
      ? g.weight(`${p}.mlp.gate_up.bias`, concat1d([w.get(`${p}.mlp.gate_proj.bias`), w.get(`${p}.mlp.up_proj.bias`)]))
      : undefined;
    const [gate, up] = g.opN(
      'Split',
      [linear(g, h2, g.weight(`${p}.mlp.gate_up.weight`, guW), guB), g.constI64([I, I])],
      { axis: -1 },
      { outputs: 2 },
    );
    const act = g.op('Mul', [activation(g, cfg.activation, gate), up]); // act(gate) * up
    const dB = cfg.mlpBias ? g.weight(`${p}.mlp.down_proj.bias`, w.get(`${p}.mlp.down_proj.bias`)) : undefined;
    x = g.op('Add', [
      x,
      linear(g, act, g.weight(`${p}.mlp.down_proj.weight`, transpose2d(w.get(`${p}.mlp.down_proj.weight`))), dB),
    ]);
  }

  steeredHead(g, cfg, inp, rmsnorm(x, 'model.norm.weight'), head);
  return g;
}
