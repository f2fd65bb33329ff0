/**
 * OPT reference forward: pre-norm OPT is GPT-2 with ReLU and positions read 2 rows down the table (checked
 * against the GPT-2 reference); a hand-computed 1-layer post-norm model with project_in/out (OPT-350m's layout);
 * and checkpoints saved from OPTModel (names without `model.`) load as the same model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyCheckpoint } from '../../helpers/tinyModels.js';
import { MapWeightStore } from '../../../src/formats/weights.js';
import { checkWeights, parseDecoderConfig, referenceForward } from '../../../src/models/registry.js';
import { concat1d, concatCols, transpose2d } from '../../../src/models/common.js';
import { tensor, type Tensor } from '../../../src/util/tensor.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('pre-norm OPT = GPT-2 with ReLU whose wpe is embed_positions from row 2 on', () => {
  const ck = tinyCheckpoint('opt', { seed: 8 });
  const opt = parseDecoderConfig(ck.config, 'opt');
  const d = opt.hiddenSize;
  const w = (n: string) => ck.weights.get(`model.decoder.${n}`);
  const pos = w('embed_positions.weight');
  const m = new Map<string, Tensor>([
    ['wte.weight', w('embed_tokens.weight')],
    ['wpe.weight', tensor([opt.maxPositions, d], pos.data.slice(2 * d))],
    ['ln_f.weight', w('final_layer_norm.weight')],
    ['ln_f.bias', w('final_layer_norm.bias')],
  ]);
  for (let i = 0; i < opt.numLayers; i++) {
    const p = `layers.${i}`;
    const a = `${p}.self_attn`;
    for (const [from, to] of [
      ['self_attn_layer_norm', 'ln_1'],
      ['final_layer_norm', 'ln_2'],
    ]) {
      m.set(`h.${i}.${to}.weight`, w(`${p}.${from}.weight`));
      m.set(`h.${i}.${to}.bias`, w(`${p}.${from}.bias`));
    }
    m.set(`h.${i}.attn.c_attn.weight`, concatCols(['q', 'k', 'v'].map((n) => transpose2d(w(`${a}.${n}_proj.weight`)))));
    m.set(`h.${i}.attn.c_attn.bias`, concat1d(['q', 'k', 'v'].map((n) => w(`${a}.${n}_proj.bias`))));
    m.set(`h.${i}.attn.c_proj.weight`, transpose2d(w(`${a}.out_proj.weight`)));
    m.set(`h.${i}.attn.c_proj.bias`, w(`${a}.out_proj.bias`));
    m.set(`h.${i}.mlp.c_fc.weight`, transpose2d(w(`${p}.fc1.weight`)));
    m.set(`h.${i}.mlp.c_fc.bias`, w(`${p}.fc1.bias`));
    m.set(`h.${i}.mlp.c_proj.weight`, transpose2d(w(`${p}.fc2.weight`)));
    m.set(`h.${i}.mlp.c_proj.bias`, w(`${p}.fc2.bias`));
  }
  const gpt2 = parseDecoderConfig(
    {
      model_type: 'gpt2',
      vocab_size: opt.vocabSize,
      n_embd: d,
      n_layer: opt.numLayers,
      n_head: opt.numHeads,
      n_inner: opt.intermediateSize,
      n_positions: opt.maxPositions,
      activation_function: 'relu',
    },
    'gpt2',
  );
  const ids = [3, 1, 4, 1, 5, 9, 2, 6];
  const a = referenceForward(opt, ck.weights, ids).logits.data;
  const b = referenceForward(gpt2, new MapWeightStore(m), ids).logits.data;
  assert.ok(maxAbsDiff(a, b) < 1e-5, `|Δ| = ${maxAbsDiff(a, b)}`);
  // Rows 0 and 1 of embed_positions are never read; row 2 is position 0's.
  for (const r of [0, 1, 2]) {
    pos.data.fill(7, r * d, (r + 1) * d);
    const c = referenceForward(opt, ck.weights, ids).logits.data;
    if (r < 2) assert.equal(maxAbsDiff(a, c), 0, `row ${r} is read`);
    else assert.ok(maxAbsDiff(a, c) > 1e-3, 'row 2 is not read');
  }
});

test('hand-checked 1-layer post-norm model with project_in/out (OPT-350m layout)', () => {
  // e = 2 (word_embed_proj_dim), d = 4, one head; q = k = 0, so attention over one token returns v = x.
  const cfg = parseDecoderConfig(
    {
      model_type: 'opt',
      vocab_size: 3,
      hidden_size: 4,
      word_embed_proj_dim: 2,
      num_hidden_layers: 1,
      num_attention_heads: 1,
      ffn_dim: 4,
      max_position_embeddings: 4,
      do_layer_norm_before: false,
      enable_bias: false,
      layer_norm_elementwise_affine: false,
    },
    'hand',
  );
  const t = (shape: number[], v: number[]) => tensor(shape, Float32Array.from(v));
  const eye = (n: number) =>
    t(
      [n, n],
      Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)),
    );
  const p = 'model.decoder.layers.0';
  const weights = new MapWeightStore(
    new Map<string, Tensor>([
      ['model.decoder.embed_tokens.weight', t([3, 2], [1, 0, 0, 1, 2, -1])],
      ['model.decoder.embed_positions.weight', t([6, 4], [...Array(8).fill(9), 0.5, 0, -0.5, 1, ...Array(12).fill(9)])],
      ['model.decoder.project_in.weight', t([4, 2], [1, 0, 0, 1, 1, 1, 0, -2])], // [d, e]
      ['model.decoder.project_out.weight', t([2, 4], [1, 0, 0, 0, 0, 0, 1, 1])], // [e, d]
      [`${p}.self_attn.q_proj.weight`, tensor([4, 4])],
      [`${p}.self_attn.k_proj.weight`, tensor([4, 4])],
      [`${p}.self_attn.v_proj.weight`, eye(4)],
      [`${p}.self_attn.out_proj.weight`, eye(4)],
      [`${p}.fc1.weight`, eye(4)],
      [`${p}.fc2.weight`, eye(4)],
    ]),
  );
  checkWeights(cfg, weights);
  const norm = (x: number[]) => {
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const sd = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length + 1e-5);
    return x.map((v) => (v - mean) / sd);
  };
  const token = [2, -1]; // id 2
  const x0 = [token[0], token[1], token[0] + token[1], -2 * token[1]].map((v, i) => v + [0.5, 0, -0.5, 1][i]!);
  const x1 = norm(x0.map((v) => 2 * v)); // x + attn(x), attn(x) = v = x; then self_attn_layer_norm
  const x2 = norm(x1.map((v) => v + Math.max(v, 0))); // x + fc2(relu(fc1(x))); then final_layer_norm
  const hidden = [x2[0]!, x2[2]! + x2[3]!]; // project_out; no decoder-level final norm in post-norm OPT
  const out = referenceForward(cfg, weights, [2]);
  assert.ok(maxAbsDiff(out.hidden.data, hidden) < 1e-6, `${[...out.hidden.data]} vs ${hidden}`);
  const logits = [hidden[0]!, hidden[1]!, 2 * hidden[0]! - hidden[1]!]; // tied to embed_tokens
  assert.ok(maxAbsDiff(out.logits.data, logits) < 1e-6);
});

test('a checkpoint saved from OPTModel (decoder.… names) is the same model', () => {
  const a = tinyCheckpoint('opt-350m', { seed: 2 });
  const b = tinyCheckpoint('opt-350m', { seed: 2, bareNames: true });
  assert.ok(b.weights.has('decoder.embed_tokens.weight') && !b.weights.has('model.decoder.embed_tokens.weight'));
  const cfg = parseDecoderConfig(a.config, 'opt');
  checkWeights(cfg, b.weights);
  const ids = [5, 6, 7];
  assert.deepEqual(
    referenceForward(cfg, b.weights, ids).logits.data,
    referenceForward(cfg, a.weights, ids).logits.data,
  );
});
