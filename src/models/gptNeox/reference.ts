/**
 * GPT-NeoX forward in plain TypeScript, float64, following transformers' GPTNeoXForCausalLM for one sequence:
 *   x = embed_in(ids)
 *   per layer:  a = dense(attn(rope(q), rope(k), v))  with q, k, v from query_key_value(ln1(x)), per head [q | k | v]
 *     parallel:    x = x + a + mlp(ln2(x))
 *     sequential:  y = x + a;  x = y + mlp(ln2(y))
 *   hidden = final_layer_norm(x);  logits = hidden · embed_outᵀ
 * RoPE rotates only the first rotaryDim channels of each head (rotary_pct).
 */
import type { WeightStore } from '../../formats/weights.js';
import type { DecoderConfig } from '../config.js';
import { ropeCosSin } from '../rope.js';
import {
  activate,
  add,
  checkIds,
  embed,
  layerNorm,
  linear,
  mat,
  positions,
  ropeAttention,
  toTensor,
  type Mat,
  type ReferenceOutput,
} from '../referenceOps.js';
import { headWeightName } from './config.js';

/** Split query_key_value's output [T, H·3·hd] (per head: q | k | v) into q, k, v [T, H·hd]. */
function splitQkv(qkv: Mat, H: number, hd: number): [Mat, Mat, Mat] {
  const parts: [Mat, Mat, Mat] = [mat(qkv.rows, H * hd), mat(qkv.rows, H * hd), mat(qkv.rows, H * hd)];
  for (let t = 0; t < qkv.rows; t++)
    for (let h = 0; h < H; h++)
      for (let part = 0; part < 3; part++)
        for (let j = 0; j < hd; j++)
          parts[part].data[t * H * hd + h * hd + j] = qkv.data[t * qkv.cols + (h * 3 + part) * hd + j];
  return parts;
}

export function referenceForward(cfg: DecoderConfig, weights: WeightStore, ids: number[]): ReferenceOutput {
  checkIds(cfg, ids);
  const w = (name: string) => weights.get(name);
  const bias = (name: string, present: boolean) => (present ? w(name) : undefined);
  const ln = (x: Mat, p: string) => layerNorm(x, w(p + '.weight'), w(p + '.bias'), cfg.normEps);
  const { numHeads: H, headDim: hd } = cfg;
  const cs = ropeCosSin(cfg, positions(ids));

  let x = embed(w('gpt_neox.embed_in.weight'), ids);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `gpt_neox.layers.${i}`;

    const qkv = linear(
      ln(x, `${p}.input_layernorm`),
      w(`${p}.attention.query_key_value.weight`),
      bias(`${p}.attention.query_key_value.bias`, cfg.qkvBias),
    );
    const [q, k, v] = splitQkv(qkv, H, hd);
    const att = ropeAttention(cfg, i, q, k, v, cs);
    const a = linear(att, w(`${p}.attention.dense.weight`), bias(`${p}.attention.dense.bias`, cfg.outBias));

    const mlp = (y: Mat) => {
      const fc = linear(
        ln(y, `${p}.post_attention_layernorm`),
        w(`${p}.mlp.dense_h_to_4h.weight`),
        w(`${p}.mlp.dense_h_to_4h.bias`),
      );
      return linear(activate(cfg.activation, fc), w(`${p}.mlp.dense_4h_to_h.weight`), w(`${p}.mlp.dense_4h_to_h.bias`));
    };
    if (cfg.parallelResidual) {
      x = add(x, a, mlp(x));
    } else {
      const y = add(x, a);
      x = add(y, mlp(y));
    }
  }

  const hidden = ln(x, 'gpt_neox.final_layer_norm');
  const logits = linear(hidden, weights.get(headWeightName(cfg)));
  return { logits: toTensor(logits), hidden: toTensor(hidden) };
}
