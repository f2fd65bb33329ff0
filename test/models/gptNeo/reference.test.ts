/**
 * GPT-Neo reference forward against the GPT-2 reference: with every layer global, GPT-Neo is GPT-2 with Linear
 * weights, no q/k/v biases and unscaled scores — so GPT-2 with c_attn = [√hd·W_q | W_k | W_v]ᵀ gives the same
 * logits. Local layers see exactly window_size positions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyCheckpoint } from '../../helpers/tinyModels.js';
import { MapWeightStore } from '../../../src/formats/weights.js';
import { parseDecoderConfig, referenceForward } from '../../../src/models/registry.js';
import { transpose2d, concatCols } from '../../../src/models/common.js';
import { tensor, type Tensor } from '../../../src/util/tensor.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const scaled = (t: Tensor, c: number) =>
  tensor(
    [...t.shape],
    t.data.map((v) => v * c),
  );

test('all-global GPT-Neo = GPT-2 with √head_dim folded into the query weights', () => {
  const ck = tinyCheckpoint('gpt_neo', { seed: 3 });
  ck.config.attention_types = [[['global'], 2]];
  const neo = parseDecoderConfig(ck.config, 'neo');
  const w = (n: string) => ck.weights.get(`transformer.${n}`);
  const gpt2w = new Map<string, Tensor>([
    ['wte.weight', w('wte.weight')],
    ['wpe.weight', w('wpe.weight')],
    ['ln_f.weight', w('ln_f.weight')],
    ['ln_f.bias', w('ln_f.bias')],
  ]);
  const d = neo.hiddenSize;
  for (let i = 0; i < neo.numLayers; i++) {
    const p = `h.${i}`;
    const a = `${p}.attn.attention`;
    for (const n of ['ln_1.weight', 'ln_1.bias', 'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.bias', 'mlp.c_proj.bias'])
      gpt2w.set(`${p}.${n}`, w(`${p}.${n}`));
    // Conv1D stores [in, out]: the transposes of GPT-Neo's Linear weights.
    gpt2w.set(
      `${p}.attn.c_attn.weight`,
      concatCols([
        transpose2d(scaled(w(`${a}.q_proj.weight`), Math.sqrt(neo.headDim))),
        transpose2d(w(`${a}.k_proj.weight`)),
        transpose2d(w(`${a}.v_proj.weight`)),
      ]),
    );
    gpt2w.set(`${p}.attn.c_attn.bias`, tensor([3 * d]));
    gpt2w.set(`${p}.attn.c_proj.weight`, transpose2d(w(`${a}.out_proj.weight`)));
    gpt2w.set(`${p}.attn.c_proj.bias`, w(`${a}.out_proj.bias`));
    gpt2w.set(`${p}.mlp.c_fc.weight`, transpose2d(w(`${p}.mlp.c_fc.weight`)));
    gpt2w.set(`${p}.mlp.c_proj.weight`, transpose2d(w(`${p}.mlp.c_proj.weight`)));
  }
  const gpt2 = parseDecoderConfig(
    {
      model_type: 'gpt2',
      vocab_size: neo.vocabSize,
      n_embd: d,
      n_layer: neo.numLayers,
      n_head: neo.numHeads,
      n_positions: neo.maxPositions,
      activation_function: 'gelu_new',
    },
    'gpt2',
  );
  const ids = [3, 1, 4, 1, 5, 9, 2, 6];
  const a = referenceForward(neo, ck.weights, ids).logits.data;
  const b = referenceForward(gpt2, new MapWeightStore(gpt2w), ids).logits.data;
  assert.ok(maxAbsDiff(a, b) < 1e-5, `|Δ| = ${maxAbsDiff(a, b)}`);
  // The scaling is what makes them agree: GPT-2 without the √hd fold differs.
  gpt2w.set(
    'h.0.attn.c_attn.weight',
    concatCols(['q', 'k', 'v'].map((n) => transpose2d(w(`h.0.attn.attention.${n}_proj.weight`)))),
  );
  const c = referenceForward(gpt2, new MapWeightStore(gpt2w), ids).logits.data;
  assert.ok(maxAbsDiff(a, c) > 1e-3);
});

test('a local layer sees its own position and the window_size − 1 before it, nothing further back', () => {
  const ck = tinyCheckpoint('gpt_neo', { seed: 4, layers: 1 });
  ck.config.attention_types = [[['local'], 1]]; // window_size 3
  const cfg = parseDecoderConfig(ck.config, 'neo-local');
  const V = cfg.vocabSize;
  const ids = [3, 1, 4, 1, 5, 9, 2, 6];
  const base = referenceForward(cfg, ck.weights, ids).logits.data;
  const last = (x: Float32Array) => x.subarray(7 * V, 8 * V);
  const changedAt = (pos: number) => {
    const other = ids.slice();
    other[pos] = 10;
    return maxAbsDiff(last(referenceForward(cfg, ck.weights, other).logits.data), last(base));
  };
  assert.equal(changedAt(4), 0, 'position 4 is 3 back from 7: outside the window');
  assert.ok(changedAt(5) > 1e-4, 'position 5 is 2 back from 7: inside the window');
});
