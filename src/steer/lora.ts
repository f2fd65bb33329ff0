/**
 * Export a steer at fixed values as a PEFT LoRA adapter on the LM head, so any PEFT/vLLM stack can run it.
 * With values fixed the steer is a low-rank change of the head:
 *   logits = h·Eᵀ + Σ_i eps·s_i (h·P1_i)(E·P2_i)ᵀ = h·Eᵀ + (h·Aᵀ)·Bᵀ
 *   A = [(eps·s_i·P1_i)ᵀ stacked over slots] : [R, d],   B = [E·P2_i side by side] : [V, R],   R = Σ r
 * and PEFT adds B·A·x·(lora_alpha / r), so lora_alpha = r makes the scaling exactly 1.
 * Slots whose value is 0 contribute nothing and are left out of A and B.
 */
import { makeDir } from '../formats/outDir.js';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../formats/atomicWrite.js';
import { writeSafetensors } from '../formats/safetensors.js';
import { LmSteerError } from '../util/errors.js';
import { firstNonFinite, tensor, type Tensor } from '../util/tensor.js';
import { embeddingFingerprint, validateSteer, type Steer } from './steer.js';
import { SteerSet } from './steerSet.js';

export interface LoraExportOptions {
  /** Written as base_model_name_or_path (a hub id PEFT can load). */
  baseModelId: string;
  /** The output-embedding module: 'lm_head' (GPT-2, Llama, GPT-Neo) or e.g. 'embed_out' (GPT-NeoX/Pythia). */
  targetModule?: string;
  /** Export even when E is not the steer's base model (fingerprints differ). */
  force?: boolean;
}

export interface LoraWeights {
  A: Tensor; // [R, d]
  B: Tensor; // [V, R]
  rank: number;
}

/**
 * A and B for `steer` at `values` (slot values in slot order, or value names as SteerSet takes them; defaults
 * apply to slots not named). E is the output embeddings [V, d].
 */
export function loraWeights(steer: Steer, values: readonly number[] | Record<string, number>, E: Tensor): LoraWeights {
  validateSteer(steer);
  const { eps, rank: r, slots } = steer.config;
  const v = Array.isArray(values)
    ? [...(values as readonly number[])]
    : SteerSet.of([steer]).values(values as Record<string, number>)[0]!;
  if (v.length !== slots.length || !v.every(Number.isFinite)) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `LoRA export needs ${slots.length} finite slot values (${slots.map((s) => s.name).join(', ')}), got [${v.join(', ')}]`,
    );
  }
  const [V, d] = E.shape as [number, number];
  if (E.shape.length !== 2 || d !== steer.p1.shape[1]) {
    throw new LmSteerError(
      'SHAPE_MISMATCH',
      `output embeddings have shape [${E.shape}], but the steer needs [vocab, ${steer.p1.shape[1]}]`,
    );
  }
  const active = slots.map((_, i) => i).filter((i) => v[i] !== 0);
  if (active.length === 0) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'every steer value is 0, so the adapter would change nothing',
      'give at least one slot a non-zero value',
    );
  }
  const R = active.length * r;
  const A = new Float32Array(R * d);
  const B = new Float32Array(V * R);
  const col = new Float64Array(d);
  active.forEach((i, a) => {
    const base = i * d * r;
    const c = eps * v[i]!;
    for (let j = 0; j < r; j++) {
      const row = a * r + j;
      for (let t = 0; t < d; t++) {
        A[row * d + t] = c * steer.p1.data[base + t * r + j]!;
        col[t] = steer.p2.data[base + t * r + j]!;
      }
      for (let w = 0; w < V; w++) {
        let acc = 0;
        for (let t = 0; t < d; t++) acc += E.data[w * d + t]! * col[t]!;
        B[w * R + row] = acc;
      }
    }
  });
  // Checked before anything is written: an adapter of Inf/NaN would load in PEFT and wreck every logit.
  for (const [name, t] of [
    ['lora_A', A],
    ['lora_B', B],
  ] as const) {
    const bad = firstNonFinite(t);
    if (bad >= 0)
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `the adapter's ${name} would hold ${t[bad]} (at flat index ${bad}): eps × values × projectors overflow float32`,
        'export with smaller steer values',
      );
  }
  return { A: tensor([R, d], A), B: tensor([V, R], B), rank: R };
}

/** Write adapter_config.json, adapter_model.safetensors and README.md into `outDir`. */
export function exportLora(
  steer: Steer,
  values: readonly number[] | Record<string, number>,
  E: Tensor,
  outDir: string,
  opts: LoraExportOptions,
): { rank: number; values: number[] } {
  const target = opts.targetModule ?? 'lm_head';
  if (!/^[A-Za-z_][\w.]*$/.test(target))
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `target module "${target}" is not a module name`,
      'use e.g. lm_head or embed_out',
    );
  const fp = embeddingFingerprint(E);
  const base = steer.config.baseModel;
  if (fp !== base.embeddingFingerprint && !opts.force) {
    throw new LmSteerError(
      'MODEL_MISMATCH',
      `the steer was trained for ${base.id} (embeddings ${base.embeddingFingerprint}), but the embeddings given are ${fp}`,
      'export with the base model the steer was trained for, or pass --force',
    );
  }
  const v = Array.isArray(values)
    ? [...(values as readonly number[])]
    : SteerSet.of([steer]).values(values as Record<string, number>)[0]!;
  const { A, B, rank } = loraWeights(steer, v, E);
  makeDir(outDir, 'adapter folder');
  const slotValues = steer.config.slots.map((s, i) => `${s.name}=${v[i]}`).join(', ');
  writeSafetensors(
    join(outDir, 'adapter_model.safetensors'),
    { [`base_model.model.${target}.lora_A.weight`]: A, [`base_model.model.${target}.lora_B.weight`]: B },
    { metadata: { format: 'pt', lmsteer_values: slotValues, lmsteer_eps: String(steer.config.eps) } },
  );
  // Only fields PEFT's LoraConfig knows: older PEFT versions reject unknown keys.
  writeJsonAtomic(join(outDir, 'adapter_config.json'), {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: opts.baseModelId,
    r: rank,
    lora_alpha: rank,
    lora_dropout: 0,
    target_modules: [target],
    fan_in_fan_out: false,
    bias: 'none',
    inference_mode: true,
    modules_to_save: null,
  });
  writeFileAtomic(join(outDir, 'README.md'), readme(steer, slotValues, rank, target, opts.baseModelId));
  return { rank, values: v };
}

function readme(steer: Steer, slotValues: string, rank: number, target: string, baseModelId: string): string {
  const name = steer.config.name ?? 'steer';
  return `# LM-Steer "${name}" as a LoRA adapter

Exported by lmsteer from an LM-Steer steer (Han et al., "Word Embeddings Are Steers for Language Models",
ACL 2024) at fixed values: ${slotValues} (eps = ${steer.config.eps}).

Base model: \`${baseModelId}\`. Target module: \`${target}\` (the LM head). LoRA rank r = ${rank}, lora_alpha = ${rank},
so PEFT's scaling lora_alpha / r is 1.

## The math
LM-Steer changes the final hidden state h before the LM head E (vocab × d):

    h' = h + eps · Σ_i s_i (h·P1_i)·P2_iᵀ,        logits = h'·Eᵀ

With the values s_i fixed this is a rank-R change of the head (R = Σ r over slots with s_i ≠ 0):

    logits = h·Eᵀ + (h·Aᵀ)·Bᵀ
    A = lora_A.weight = [(eps·s_i·P1_i)ᵀ stacked over slots]   shape [R, d]
    B = lora_B.weight = [E·P2_i side by side]                  shape [V, R]

which is exactly PEFT's LoRA on a Linear layer: y = x·Wᵀ + (x·Aᵀ)·Bᵀ · (lora_alpha / r).

## Use
\`\`\`python
from peft import PeftModel
from transformers import AutoModelForCausalLM
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("${baseModelId}"), "<this folder>")
\`\`\`
To change the steering strength, export again with other values (the adapter is linear in each value).
`;
}
