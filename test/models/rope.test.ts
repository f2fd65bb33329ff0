/** RoPE frequencies against hand-computed values of transformers' modeling_rope_utils, and config parsing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDecoderConfig } from '../../src/models/registry.js';
import { ropeAttentionScaling, ropeCosSin, ropeInvFreq } from '../../src/models/rope.js';
import { applyRope, mat } from '../../src/models/referenceOps.js';

/** A llama config with head_dim 8 (4 frequencies 1, 0.1, 0.01, 0.001 at theta 10000). */
function cfgWith(extra: Record<string, unknown>) {
  return parseDecoderConfig(
    {
      model_type: 'llama',
      vocab_size: 8,
      hidden_size: 16,
      intermediate_size: 8,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      max_position_embeddings: 32,
      rope_theta: 10000,
      ...extra,
    },
    'test config.json',
  );
}

function close(a: ArrayLike<number>, b: number[], tol = 1e-12) {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++)
    assert.ok(Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `[${i}] ${a[i]} vs ${b[i]}`);
}

test('default: θ_i = base^(−2i/dim)', () => {
  close(ropeInvFreq(cfgWith({})), [1, 0.1, 0.01, 0.001]);
  close(ropeInvFreq(cfgWith({ rope_theta: 500000 })), [1, 500000 ** -0.25, 500000 ** -0.5, 500000 ** -0.75]);
});

test('linear: frequencies divided by factor', () => {
  close(ropeInvFreq(cfgWith({ rope_scaling: { type: 'linear', factor: 4 } })), [0.25, 0.025, 0.0025, 0.00025]);
});

test('llama3: short wavelengths kept, long ones divided by factor, the band between smoothed', () => {
  // wavelengths 2π/θ: 6.28, 62.8, 628, 6283; original 64 → high-freq bound 64/4 = 16, low-freq bound 64/1 = 64.
  const cfg = cfgWith({
    rope_scaling: {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  });
  const smooth = (64 / (2 * Math.PI * 10) - 1) / (4 - 1);
  close(ropeInvFreq(cfg), [1, (1 - smooth) * (0.1 / 8) + smooth * 0.1, 0.01 / 8, 0.001 / 8]);
});

test('dynamic NTK is refused, naming the field (its base follows each call length)', () => {
  assert.throws(() => cfgWith({ rope_scaling: { type: 'dynamic', factor: 2 } }), /"dynamic".*per-position table/);
});

test('yarn: ramp between extrapolated and interpolated frequencies, cos/sin scaled by 0.1·ln(factor)+1', () => {
  // dim 8, original 32, beta 32/1: correction dims floor(−0.80)→0 and ceil(0.71)=1, so ramp = [0, 1, 1, 1]:
  // frequency 0 keeps its value, the rest are divided by factor.
  const cfg = cfgWith({ rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32 } });
  close(ropeInvFreq(cfg), [1, 0.1 / 4, 0.01 / 4, 0.001 / 4]);
  const scale = 0.1 * Math.log(4) + 1;
  assert.ok(Math.abs(ropeAttentionScaling(cfg) - scale) < 1e-15);
  const cs = ropeCosSin(cfg, [0, 3]);
  assert.deepEqual(cs.shape, [2, 4]);
  assert.ok(Math.abs(cs.cos[0] - scale) < 1e-15 && cs.sin[0] === 0);
  assert.ok(Math.abs(cs.sin[4 + 1] - scale * Math.sin(3 * 0.025)) < 1e-15);
});

test('rotate_half: channel i pairs with i + rotaryDim/2, scores depend only on the position difference', () => {
  const cfg = cfgWith({});
  const x = mat(1, 8);
  x.data.set([1, 0, 0, 0, 0, 0, 0, 0]);
  const cs = ropeCosSin(cfg, [1]);
  const r = applyRope(x, 1, 8, 8, cs).data;
  // (x_0, x_4) = (1, 0) rotated by angle 1: (cos 1, sin 1)
  close(r, [Math.cos(1), 0, 0, 0, Math.sin(1), 0, 0, 0], 1e-15);
  const q = mat(1, 8);
  const k = mat(1, 8);
  q.data.set([0.3, -1, 2, 0.5, 1, 0.2, -0.7, 0.1]);
  k.data.set([1, 0.4, -0.3, 2, -1, 0.6, 0.2, 0.9]);
  const dot = (pq: number, pk: number) => {
    const a = applyRope(q, 1, 8, 8, ropeCosSin(cfg, [pq])).data;
    const b = applyRope(k, 1, 8, 8, ropeCosSin(cfg, [pk])).data;
    return a.reduce((s, v, i) => s + v * b[i], 0);
  };
  assert.ok(Math.abs(dot(7, 3) - dot(14, 10)) < 1e-12);
  assert.ok(Math.abs(dot(7, 3) - dot(7, 4)) > 1e-3);
});

test('partial rotary: channels past rotaryDim pass through', () => {
  const x = mat(1, 8);
  x.data.set([1, 2, 3, 4, 5, 6, 7, 8]);
  const cs = { shape: [1, 2] as [number, number], cos: new Float64Array([0, 0]), sin: new Float64Array([1, 1]) }; // 90°
  assert.deepEqual([...applyRope(x, 1, 8, 4, cs).data], [-3, -4, 1, 2, 5, 6, 7, 8]);
});

test('rope parameters: transformers ≥ 5 rope_parameters, and errors naming the field', () => {
  const v5 = cfgWith({ rope_theta: undefined, rope_parameters: { rope_type: 'linear', rope_theta: 1000, factor: 2 } });
  assert.equal(v5.rope!.theta, 1000);
  assert.deepEqual(v5.rope!.scaling, { type: 'linear', factor: 2 });
  assert.equal(cfgWith({ rope_parameters: { rope_type: 'default', rope_theta: 10000 } }).rope!.scaling, undefined);
  assert.throws(
    () => cfgWith({ rope_scaling: { rope_type: 'longrope', factor: 2 } }),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === 'UNSUPPORTED' && /longrope/.test(e.message) && /llama3/.test(e.hint!),
  );
  assert.throws(
    () =>
      cfgWith({
        rope_scaling: { rope_type: 'llama3', factor: 8, high_freq_factor: 4, original_max_position_embeddings: 64 },
      }),
    (e: Error & { code?: string }) =>
      e.code === 'BAD_FILE' && /"rope_scaling\.low_freq_factor"/.test(e.message) && /test config\.json/.test(e.message),
  );
  assert.throws(() => cfgWith({ rope_scaling: { type: 'linear', factor: -1 } }), { code: 'BAD_FILE' });
  assert.throws(() => cfgWith({ rope_scaling: { rope_type: 'yarn', factor: 4, mscale: 0.7 } }), {
    code: 'UNSUPPORTED',
  });
});
