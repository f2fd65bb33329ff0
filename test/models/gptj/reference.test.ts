/**
 * GPT-J reference forward (its own interleaved rotate_every_two) against the GPT-NeoX reference (rotate_half):
 * GPT-NeoX with partial rotary, a parallel residual whose two LayerNorms are GPT-J's one, and q/k rows of each
 * head regrouped [0, 2, 4, …, 1, 3, 5, …] is GPT-J — the same regrouping the GPT-J graph does while loading.
 * Without the regrouping the two differ, so the interleaved layout is really what the reference computes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyCheckpoint } from '../../helpers/tinyModels.js';
import { MapWeightStore } from '../../../src/formats/weights.js';
import { checkWeights, parseDecoderConfig, referenceForward } from '../../../src/models/registry.js';
import { rotateHalfOrder } from '../../../src/models/gptj/graph.js';
import { tensor, type Tensor } from '../../../src/util/tensor.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** GPT-J weights as a GPT-NeoX checkpoint; `regroup` false keeps GPT-J's interleaved q/k rows. */
function asNeox(ck: ReturnType<typeof tinyCheckpoint>, regroup: boolean) {
  const j = parseDecoderConfig(ck.config, 'gptj');
  const { hiddenSize: d, numHeads: H, headDim: hd } = j;
  const w = (n: string) => ck.weights.get(n);
  const order = regroup ? rotateHalfOrder(H, hd, j.rope!.rotaryDim) : [...Array(d).keys()];
  const m = new Map<string, Tensor>([
    ['gpt_neox.embed_in.weight', w('transformer.wte.weight')],
    ['gpt_neox.final_layer_norm.weight', w('transformer.ln_f.weight')],
    ['gpt_neox.final_layer_norm.bias', w('transformer.ln_f.bias')],
    ['embed_out.weight', w('lm_head.weight')],
  ]);
  for (let i = 0; i < j.numLayers; i++) {
    const p = `transformer.h.${i}`;
    const q = `gpt_neox.layers.${i}`;
    for (const ln of ['input_layernorm', 'post_attention_layernorm']) {
      m.set(`${q}.${ln}.weight`, w(`${p}.ln_1.weight`));
      m.set(`${q}.${ln}.bias`, w(`${p}.ln_1.bias`));
    }
    // query_key_value rows per head: [q (hd) | k (hd) | v (hd)].
    const qkv = tensor([3 * d, d]);
    const parts = ['q', 'k', 'v'].map((n) => w(`${p}.attn.${n}_proj.weight`));
    for (let h = 0; h < H; h++)
      for (let part = 0; part < 3; part++)
        for (let c = 0; c < hd; c++) {
          const src = part < 2 ? order[h * hd + c]! : h * hd + c;
          qkv.data.set(parts[part]!.data.subarray(src * d, (src + 1) * d), ((h * 3 + part) * hd + c) * d);
        }
    m.set(`${q}.attention.query_key_value.weight`, qkv);
    m.set(`${q}.attention.query_key_value.bias`, tensor([3 * d]));
    m.set(`${q}.attention.dense.weight`, w(`${p}.attn.out_proj.weight`));
    m.set(`${q}.attention.dense.bias`, tensor([d]));
    m.set(`${q}.mlp.dense_h_to_4h.weight`, w(`${p}.mlp.fc_in.weight`));
    m.set(`${q}.mlp.dense_h_to_4h.bias`, w(`${p}.mlp.fc_in.bias`));
    m.set(`${q}.mlp.dense_4h_to_h.weight`, w(`${p}.mlp.fc_out.weight`));
    m.set(`${q}.mlp.dense_4h_to_h.bias`, w(`${p}.mlp.fc_out.bias`));
  }
  const cfg = parseDecoderConfig(
    {
      model_type: 'gpt_neox',
      vocab_size: j.vocabSize,
      hidden_size: d,
      intermediate_size: j.intermediateSize,
      num_hidden_layers: j.numLayers,
      num_attention_heads: H,
      max_position_embeddings: j.maxPositions,
      rotary_pct: j.rope!.rotaryDim / hd,
      rotary_emb_base: 10000,
      use_parallel_residual: true,
      hidden_act: 'gelu_new',
      layer_norm_eps: j.normEps,
    },
    'neox',
  );
  return { j, cfg, weights: new MapWeightStore(m) };
}

test('GPT-J = GPT-NeoX with regrouped q/k rows (hidden states; logits up to the head bias)', () => {
  const ck = tinyCheckpoint('gptj', { seed: 5 });
  const ids = [3, 1, 4, 1, 5, 9, 2, 6];
  const { j, cfg, weights } = asNeox(ck, true);
  const gj = referenceForward(j, ck.weights, ids);
  const nx = referenceForward(cfg, weights, ids);
  assert.ok(
    maxAbsDiff(gj.hidden.data, nx.hidden.data) < 1e-5,
    `hidden |Δ| = ${maxAbsDiff(gj.hidden.data, nx.hidden.data)}`,
  );
  const b = ck.weights.get('lm_head.bias').data;
  const V = j.vocabSize;
  const minusBias = gj.logits.data.map((v, i) => v - b[i % V]!);
  assert.ok(maxAbsDiff(minusBias, nx.logits.data) < 1e-5, 'logits = GPT-NeoX logits + lm_head.bias');
  assert.ok(maxAbsDiff(gj.logits.data, nx.logits.data) > 1e-3, 'the head bias is there');
  // Interleaved pairs are not rotate_half pairs: without the regrouping, the models differ.
  const plain = asNeox(ck, false);
  assert.ok(maxAbsDiff(gj.hidden.data, referenceForward(plain.cfg, plain.weights, ids).hidden.data) > 1e-3);
});

test('checkpoints saved from GPTJModel / GPTNeoModel (no `transformer.` prefix) are the same models', () => {
  for (const kind of ['gptj', 'gpt_neo'] as const) {
    const a = tinyCheckpoint(kind, { seed: 2 });
    const b = tinyCheckpoint(kind, { seed: 2, bareNames: true });
    assert.ok(b.weights.has('wte.weight') && !b.weights.has('transformer.wte.weight'));
    const cfg = parseDecoderConfig(a.config, kind);
    checkWeights(cfg, b.weights);
    const ids = [5, 6, 7];
    assert.deepEqual(
      referenceForward(cfg, b.weights, ids).logits.data,
      referenceForward(cfg, a.weights, ids).logits.data,
    );
  }
});
