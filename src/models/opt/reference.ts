/**
 * OPT forward in plain TypeScript, float64, following transformers' OPTForCausalLM (OPTDecoder, OPTDecoderLayer)
 * for one sequence:
 *   x = project_in(embed_tokens(ids)) + embed_positions[position + 2]
 *   per layer:  residual = x;  if pre-norm x = ln_a(x);  x = residual + out_proj(attn(x));  if post-norm x = ln_a(x)
 *               residual = x;  if pre-norm x = ln_f(x);  x = residual + fc2(act(fc1(x)));  if post-norm x = ln_f(x)
 *   hidden = project_out(final_layer_norm(x));  logits = hidden · embed_tokensᵀ
 */
import type { WeightStore } from '../../formats/weights.js';
import { tensor } from '../../util/tensor.js';
import type { DecoderConfig } from '../config.js';
import {
  activate,
  add,
  causalAttention,
  checkIds,
  embed,
  layerNorm,
  linear,
  toTensor,
  type Mat,
  type ReferenceOutput,
} from '../referenceOps.js';
import { headWeightName, modelWidth, POSITION_OFFSET } from './config.js';

const P = 'model.decoder.';

export function referenceForward(cfg: DecoderConfig, weights: WeightStore, ids: number[]): ReferenceOutput {
  checkIds(cfg, ids);
  const w = (name: string) => weights.get(name); // canonical names: `model.decoder.` (config.ts)
  const d = modelWidth(cfg);
  const e = cfg.hiddenSize;
  const H = cfg.numHeads;
  const ones = tensor([d], new Float32Array(d).fill(1));
  const zeros = tensor([d]);
  const ln = (x: Mat, p: string) =>
    cfg.normAffine === false
      ? layerNorm(x, ones, zeros, cfg.normEps)
      : layerNorm(x, w(`${p}.weight`), w(`${p}.bias`), cfg.normEps);
  const lin = (x: Mat, p: string, bias: boolean) => linear(x, w(`${p}.weight`), bias ? w(`${p}.bias`) : undefined);
  const pre = !cfg.postNorm;

  let tokens = embed(w(`${P}embed_tokens.weight`), ids);
  if (e !== d) tokens = lin(tokens, `${P}project_in`, false);
  let x = add(
    tokens,
    embed(
      w(`${P}embed_positions.weight`),
      ids.map((_, t) => t + POSITION_OFFSET),
    ),
  );
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `${P}layers.${i}`;
    const a = `${p}.self_attn`;
    let residual = x;
    let h = pre ? ln(x, `${p}.self_attn_layer_norm`) : x;
    h = causalAttention(
      lin(h, `${a}.q_proj`, cfg.qkvBias),
      lin(h, `${a}.k_proj`, cfg.qkvBias),
      lin(h, `${a}.v_proj`, cfg.qkvBias),
      H,
      H,
      cfg.headDim,
    );
    x = add(residual, lin(h, `${a}.out_proj`, cfg.outBias));
    if (!pre) x = ln(x, `${p}.self_attn_layer_norm`);

    residual = x;
    h = pre ? ln(x, `${p}.final_layer_norm`) : x;
    h = lin(activate(cfg.activation, lin(h, `${p}.fc1`, cfg.mlpBias)), `${p}.fc2`, cfg.mlpBias);
    x = add(residual, h);
    if (!pre) x = ln(x, `${p}.final_layer_norm`);
  }
  if (cfg.finalNorm !== false) x = ln(x, `${P}final_layer_norm`);
  const hidden = e !== d ? lin(x, `${P}project_out`, false) : x;
  const logits = linear(hidden, w(headWeightName(cfg)));
  return { logits: toTensor(logits), hidden: toTensor(hidden) };
}
