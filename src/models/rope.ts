/**
 * Rotary position embeddings, exactly as transformers' modeling_rope_utils.py computes them (default, linear,
 * llama3, yarn, longrope), in float64, and the config.json fields that choose them. Dynamic NTK is refused: its
 * base follows each call's sequence length, which a graph's table over every position cannot hold (a short
 * sequence would rotate as the longest one does), so lmsteer would run another model than transformers.
 *
 * Layout is HF's rotate_half: channel i pairs with channel i + rotaryDim/2 (not llama2.c's interleaved pairs),
 * and both halves share frequency i:  out_i = x_i·cos θ_i − x_{i+h}·sin θ_i,  out_{i+h} = x_{i+h}·cos θ_i + x_i·sin θ_i.
 */
import { LmSteerError } from '../util/errors.js';
import type { DecoderConfig, RopeScaling } from './config.js';
import type { ConfigReader } from './configFields.js';

export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'llama3', 'yarn'] as const;

/**
 * What a record's graph can honour beyond SUPPORTED_ROPE_TYPES. longrope switches its frequencies with the
 * sequence length, which only a graph that picks the table per row does (src/models/phi3/graph.ts); everywhere
 * else it stays refused. `originalMaxPositions`: the config's top-level original_max_position_embeddings (Phi-3).
 */
export interface RopeParseOptions {
  longrope?: boolean;
  originalMaxPositions?: number;
}

/**
 * rope_theta and the scaling from config.json. Older files write `rope_theta` + `rope_scaling` (`rope_type`, or the
 * legacy `type`); transformers ≥ 5 writes one `rope_parameters` object holding both. `thetaAliases` are older
 * names of rope_theta (GPT-NeoX: rotary_emb_base). `maxPositions` is the config's max_position_embeddings.
 */
export function parseRope(
  r: ConfigReader,
  defaultTheta: number,
  maxPositions: number,
  thetaAliases: string[] = [],
  opts: RopeParseOptions = {},
): { theta: number; scaling?: RopeScaling } {
  const params = r.object('rope_parameters');
  const thetaField = ['rope_theta', ...thetaAliases].find((f) => r.has(f));
  const theta = params?.has('rope_theta')
    ? params.positive('rope_theta')
    : thetaField
      ? r.positive(thetaField)
      : defaultTheta;
  const s = r.object('rope_scaling') ?? params;
  return { theta, scaling: s ? parseScaling(s, maxPositions, opts) : undefined };
}

/**
 * The longest sequence a RoPE model is meant for. Dynamic NTK configs keep the original context in
 * max_position_embeddings and grow the base past it, up to the `factor`-times longer context they were set for.
 */
export function ropeMaxPositions(maxPositionEmbeddings: number, scaling: RopeScaling | undefined): number {
  void scaling; // no supported scaling extends the context beyond max_position_embeddings
  return maxPositionEmbeddings;
}

/** One rope_scaling / rope_parameters object (`s`) → the scaling, or undefined for plain RoPE. */
export function parseScaling(
  s: ConfigReader,
  maxPositions: number,
  opts: RopeParseOptions = {},
): RopeScaling | undefined {
  const type = s.has('rope_type') ? s.str('rope_type', 'default') : s.str('type', 'default');
  switch (type) {
    case 'default':
      return undefined;
    case 'linear':
      return { type, factor: s.positive('factor') };
    case 'dynamic':
      throw unsupportedType(s, type, ': its base follows each call’s length, which a per-position table cannot hold');
    case 'llama3':
      return {
        type,
        factor: s.positive('factor'),
        lowFreqFactor: s.positive('low_freq_factor'),
        highFreqFactor: s.positive('high_freq_factor'),
        originalMaxPositions: s.int('original_max_position_embeddings'),
      };
    case 'yarn': {
      // These change yarn's cos/sin scale or ramp; DecoderConfig has no field to carry them yet.
      for (const f of ['attention_factor', 'mscale', 'mscale_all_dim']) {
        if (s.has(f))
          throw new LmSteerError(
            'UNSUPPORTED',
            `${s.source}: config field "${s.prefix}${f}" (yarn) is not supported yet`,
            'only yarn with factor, original_max_position_embeddings, beta_fast and beta_slow is supported',
          );
      }
      if (!s.bool('truncate', true))
        throw new LmSteerError(
          'UNSUPPORTED',
          `${s.source}: config field "${s.prefix}truncate": false (yarn) is not supported yet`,
          'only the default truncate: true is supported',
        );
      const original = s.int('original_max_position_embeddings', maxPositions);
      return {
        type,
        // transformers ≥ 4.5x: an explicit factor wins; without one it is the context-extension ratio.
        factor: s.positive('factor', maxPositions / original),
        originalMaxPositions: original,
        betaFast: s.positive('beta_fast', 32),
        betaSlow: s.positive('beta_slow', 1),
      };
    }
    case 'longrope':
    case 'su': // Phi-3's first name for it (transformers renames su and yarn to longrope for phi3)
      if (opts.longrope) return parseLongrope(s, maxPositions, opts.originalMaxPositions);
      throw unsupportedType(s, type, ' (for this architecture)');
    default:
      throw unsupportedType(s, type, '');
  }
}

function unsupportedType(s: ConfigReader, type: string, where: string): LmSteerError {
  return new LmSteerError(
    'UNSUPPORTED',
    `${s.source}: config field "${s.prefix}${s.has('rope_type') ? 'rope_type' : 'type'}" is "${type}", a RoPE scaling lmsteer does not support${where}`,
    `supported RoPE types: ${SUPPORTED_ROPE_TYPES.join(', ')}`,
  );
}

/**
 * LongRoPE (transformers' _compute_longrope_parameters): θ_i = 1 / (ext_i · base^(2i/dim)) with ext the
 * short_factor up to original_max_position_embeddings and the long_factor beyond; cos and sin scaled by
 * attention_factor, by default √(1 + ln(factor)/ln(original)) with factor = max_position_embeddings / original.
 * The factor lists' length (rotary dims / 2) is checked by the caller, which knows the head size.
 */
function parseLongrope(s: ConfigReader, maxPositions: number, originalMax?: number): RopeScaling {
  const list = (field: string): number[] => {
    const v = s.raw[field];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0))
      s.fail(field, 'must be a non-empty list of numbers > 0 (longrope)');
    return v as number[];
  };
  const original = s.int('original_max_position_embeddings', originalMax ?? maxPositions);
  const factor = s.positive('factor', maxPositions / original);
  const attentionFactor = s.positive(
    'attention_factor',
    factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original)),
  );
  return {
    type: 'longrope',
    factor,
    originalMaxPositions: original,
    shortFactor: list('short_factor'),
    longFactor: list('long_factor'),
    attentionFactor,
  };
}

function ropeOf(cfg: DecoderConfig): NonNullable<DecoderConfig['rope']> {
  if (!cfg.rope) throw new Error(`ropeInvFreq: ${cfg.modelType} has no rotary embedding`);
  return cfg.rope;
}

/** Plain RoPE: θ_i = base^(−2i/dim), i < dim/2. */
function defaultInvFreq(base: number, dim: number): Float64Array {
  const inv = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) inv[i] = 1 / Math.pow(base, (2 * i) / dim);
  return inv;
}

/**
 * Inverse frequencies [rotaryDim/2]. `seqLen` (max position + 1 of the current call) only matters for longrope,
 * which switches tables once seqLen exceeds the original context.
 */
export function ropeInvFreq(cfg: DecoderConfig, seqLen?: number): Float64Array {
  const { theta, rotaryDim: dim, scaling } = ropeOf(cfg);
  if (!scaling) return defaultInvFreq(theta, dim);
  const factor = scaling.factor;
  const original = scaling.originalMaxPositions ?? cfg.maxPositions;
  switch (scaling.type) {
    case 'linear':
      // Dividing the frequencies = dividing the positions by `factor` (position interpolation).
      return defaultInvFreq(theta, dim).map((f) => f / factor);

    case 'llama3': {
      // Llama 3.1: long wavelengths are interpolated by `factor`, short ones kept, the band between smoothed.
      const low = scaling.lowFreqFactor!;
      const high = scaling.highFreqFactor!;
      const lowFreqWavelen = original / low;
      const highFreqWavelen = original / high;
      return defaultInvFreq(theta, dim).map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highFreqWavelen) return f;
        if (wavelen > lowFreqWavelen) return f / factor;
        const smooth = (original / wavelen - low) / (high - low);
        return (1 - smooth) * (f / factor) + smooth * f;
      });
    }

    case 'yarn': {
      // YaRN: a linear ramp between extrapolation (high-frequency dims) and interpolation (low-frequency dims).
      const correctionDim = (rotations: number) =>
        (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
      const lo = Math.max(Math.floor(correctionDim(scaling.betaFast ?? 32)), 0);
      let hi = Math.min(Math.ceil(correctionDim(scaling.betaSlow ?? 1)), dim - 1);
      if (lo === hi) hi += 0.001; // as transformers: avoid a zero-width ramp
      return defaultInvFreq(theta, dim).map((extrapolation, i) => {
        const ramp = Math.min(Math.max((i - lo) / (hi - lo), 0), 1);
        const extrapolationFactor = 1 - ramp;
        return (extrapolation / factor) * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
      });
    }

    case 'longrope': {
      // transformers switches to the long factors once the sequence (max position + 1) passes the original context.
      const ext = (seqLen ?? 0) > original ? scaling.longFactor! : scaling.shortFactor!;
      return defaultInvFreq(theta, dim).map((f, i) => f / ext[i]!);
    }
  }
}

/** transformers' `attention_scaling`: multiplies cos and sin. 1 except yarn (0.1·ln(factor) + 1) and longrope. */
export function ropeAttentionScaling(cfg: DecoderConfig): number {
  const s = ropeOf(cfg).scaling;
  if (s?.type === 'longrope') return s.attentionFactor!;
  if (s?.type !== 'yarn') return 1;
  return s.factor <= 1 ? 1 : 0.1 * Math.log(s.factor) + 1;
}

/** cos and sin [positions.length, rotaryDim/2] (row-major), attention scaling applied. */
export interface CosSin {
  shape: [number, number];
  cos: Float64Array;
  sin: Float64Array;
}

/**
 * The rotation angles for `positions`; longrope sees seqLen = max position + 1, as transformers
 * does, unless `seqLen` is given (a graph's table for every position, chosen per call by sequence length).
 */
export function ropeCosSin(
  cfg: DecoderConfig,
  positions: readonly number[],
  seqLen = positions.reduce((m, p) => Math.max(m, p + 1), 0),
): CosSin {
  const inv = ropeInvFreq(cfg, seqLen);
  const scale = ropeAttentionScaling(cfg);
  const half = inv.length;
  const cos = new Float64Array(positions.length * half);
  const sin = new Float64Array(positions.length * half);
  positions.forEach((p, t) => {
    for (let i = 0; i < half; i++) {
      cos[t * half + i] = Math.cos(p * inv[i]) * scale;
      sin[t * half + i] = Math.sin(p * inv[i]) * scale;
    }
  });
  return { shape: [positions.length, half], cos, sin };
}
