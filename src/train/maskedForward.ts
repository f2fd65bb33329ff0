/**
 * A forward pass with an attention mask over right-padded rows, as transformers runs the reference's training
 * batches (`model(input_ids, attention_mask, labels=input_ids)`, pad = EOS): row b has `keyLengths[b]` real
 * tokens followed by pad tokens, and no query ever attends to a pad key — a pad query at position t sees the
 * real tokens 0..n−1 only (not even its own key), with position id t (positions keep counting).
 *
 * Why not 1-token steps over the real tokens' cache: there a new token always sees itself, and transformers
 * masks a pad's own key.
 * Measured on stories260K (first 32 SST-2 texts, one batch, 624 pad positions, float64): that shortcut moves
 * a pad state by 4.8 on average (L2) and the unsteered pad-target CE from 27.12 to 25.84 nats; copying the
 * last real state (lmsteer before) moves it by 6.6. Neither is the reference's loss. What transformers does:
 *   - Llama (eager and SDPA, 4.3x–4.5x): the 4-D mask is causal AND attention_mask[key]; a pad query keeps
 *     every real key, so no row is fully masked and `_unmask_unattended` / the SDPA fully-masked fix never
 *     touch it. Position ids default to arange(T) (`cache_position`), pads included.
 *   - GPT-2 (eager): causal `torch.where(…, finfo.min)` plus the additive `(1 − mask)·finfo.min`; the pad's
 *     own key gets score + finfo.min, exp(·) = 0 in float32. Same result; positions arange(T) as well.
 * Right padding is what the reference does: it supports GPT-2/GPT-Neo/GPT-J/Pythia only (get_model.py), whose
 * tokenizers pad on the right. (transformers' LlamaTokenizerFast defaults to padding_side "left"; the same
 * recipe run through HF on a Llama checkpoint would put the pads first, where every pad query is a fully masked
 * row — eager attention then averages all T keys uniformly, SDPA's `_unmask_unattended` attends to all of them,
 * future real tokens included — a version-dependent artefact, not the reference's loss, so not reproduced.)
 * Only a fully masked row differs between versions and here: a text with no tokens at all (possible without
 * BOS; refused) or, in sliding-window layers, a pad more than `window` positions past the last real token.
 *
 * How: the decoder contract's `key_lengths` input (docs/ARCHITECTURE.md) masks every key at or past a row's
 * real length for every query, so one `Decoder.forward(rows, { keyLengths })` gives real and pad states
 * together — lmsteer's graphs and ONNX exports (their attention_mask) alike.
 */
import type { Decoder } from '../runtime/decoder.js';
import { tensor, type Tensor } from '../util/tensor.js';

/** What the masked forward needs of a loaded model. */
export interface MaskedForwardModel {
  decoder: Decoder;
}

/** The final hidden states of right-padded rows under an attention mask (see the file comment). */
export class MaskedForward {
  private constructor(private readonly decoder: Decoder) {}

  static async open(model: MaskedForwardModel): Promise<MaskedForward> {
    return new MaskedForward(model.decoder);
  }

  /**
   * Hidden states [B, T, d] of `rows` (all of length T: real tokens then pads) where row b's first
   * keyLengths[b] tokens are real. Position ids are 0..T−1 in every row.
   */
  async hidden(rows: readonly (readonly number[])[], keyLengths: readonly number[]): Promise<Tensor> {
    const T = rows[0]?.length ?? 0;
    if (rows.length === 0 || T === 0)
      throw new Error('internal: MaskedForward.hidden needs at least one non-empty row');
    if (rows.some((r) => r.length !== T)) throw new Error('internal: MaskedForward rows must all have the same length');
    const out = await this.decoder.forward(
      rows.map((r) => [...r]),
      { keyLengths: [...keyLengths], hiddenOnly: true },
    );
    return tensor(out.hidden.shape, out.hidden.data as Float32Array);
  }

  async close(): Promise<void> {}
}
