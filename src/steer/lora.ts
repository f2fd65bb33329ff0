/**
 * Steers as PEFT LoRA adapters on the LM head, at the exact rank of the change they make.
 *
 * With values s fixed, a steer changes the head W = E [V, d] (logits = h·Wᵀ) by a low-rank matrix:
 *   logits = h'·Eᵀ = h·Eᵀ + Σ eps·s_i·(h·P1_i)·(E·P2_i)ᵀ = h·(E + ΔW)ᵀ,   ΔW = E·Σ_i eps·s_i·P2_i·P1_iᵀ  [V, d]
 * (Σ over every (steer, slot) term; eps is each steer's). PEFT's LoRA on a Linear layer computes
 * y = x·Wᵀ + (x·Aᵀ)·Bᵀ·(lora_alpha / r), so ΔW = B·A with lora_alpha = r. Stacking the slots' projectors gives
 * A and B of rank Σ r (the reference's two slots of rank r: 2r, more than d for small models); the exact
 * rank is that of ΔW, at most min(d, Σ r). headDelta finds it as an SVD: with Y = [P1_i…] (d×R) = Q_Y·R_Y and
 * Z = E·[eps·s_i·P2_i…] (V×R) = Q_Z·R_Z (Householder QRs), ΔW = Q_Z·(R_Z·R_Yᵀ)·Q_Yᵀ, and the SVD of the R×R
 * core C = R_Z·R_Yᵀ = U·Σ·Vᵀ gives ΔW = Σ_k σ_k·(Q_Z u_k)(Q_Y v_k)ᵀ. Components with σ ≤ 1e-7·σ_max are
 * float32 noise in the logits and count as zero (svdTop's floor). B = Q_Z·U·√Σ, A = √Σ·Vᵀ·Q_Yᵀ; keeping the
 * top r' of them is the best rank-r' approximation of ΔW itself (Eckart–Young), the logits' error, not W's.
 *
 * Adapters: one fixed-value adapter (the values baked in; several steers compose by summing their terms),
 * or one adapter per slot at value 1, which engines that scale adapters per request (llama.cpp server's
 * `lora: [{id, scale}]`, PEFT's set_adapter/add_weighted_adapter) turn into continuous steering: scale = value.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../formats/atomicWrite.js';
import { makeDir } from '../formats/outDir.js';
import { writeSafetensors } from '../formats/safetensors.js';
import { LmSteerError } from '../util/errors.js';
import { applyQ, mat, qrHouseholder, svdTop, type Mat } from '../util/linalg.js';
import { firstNonFinite, tensor, type Tensor } from '../util/tensor.js';
import { embeddingFingerprint, type Steer } from './steer.js';
import { SteerSet } from './steerSet.js';

/** Slot `slot` of `steer` at `value`: the term eps·value·P2[slot]·P1[slot]ᵀ of the head change. */
export interface SteerTerm {
  steer: Steer;
  slot: number;
  value: number;
}

export interface HeadDelta {
  A: Tensor; // [k, d]: lora_A.weight
  B: Tensor; // [V, k]: lora_B.weight
  /** k, the rank written. */
  rank: number;
  /** The rank of ΔW (components above 1e-7·σ_max). */
  exactRank: number;
  /** ΔW's singular values, descending (exactRank of them). */
  singularValues: number[];
  /** ‖ΔW − B·A‖_F / ‖ΔW‖_F: 0 at the exact rank, else what the truncation loses. */
  relativeError: number;
}

/** ΔW of `terms` for output embeddings E [V, d], as LoRA factors of rank `rank` (default: exact). */
export function headDelta(terms: readonly SteerTerm[], E: Tensor, opts: { rank?: number } = {}): HeadDelta {
  if (E.shape.length !== 2) throw new LmSteerError('SHAPE_MISMATCH', `output embeddings have shape [${E.shape}]`);
  const [V, d] = E.shape as [number, number];
  for (const t of terms) {
    if (!Number.isFinite(t.value))
      throw new LmSteerError('BAD_ARGUMENT', `a steer value is ${t.value}; LoRA export needs finite values`);
    if (t.steer.p1.shape[1] !== d)
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `output embeddings have shape [${E.shape}], but the steer needs [vocab, ${t.steer.p1.shape[1]}]`,
      );
  }
  const live = terms.filter((t) => t.value !== 0);
  if (live.length === 0) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'every steer value is 0, so the adapter would change nothing',
      'give at least one slot a non-zero value',
    );
  }
  // X = [eps·s·P2_i], Y = [P1_i], column by column (d×R, R = Σ r); ΔW = E·X·Yᵀ.
  const R = live.reduce((a, t) => a + t.steer.config.rank, 0);
  let X = mat(d, R);
  let Y: Mat | undefined = mat(d, R);
  let c0 = 0;
  for (const { steer, slot, value } of live) {
    const r = steer.config.rank;
    const c = steer.config.eps * value;
    const base = slot * d * r;
    for (let t = 0; t < d; t++)
      for (let j = 0; j < r; j++) {
        X.data[t * R + c0 + j] = c * steer.p2.data[base + t * r + j]!;
        Y.data[t * R + c0 + j] = steer.p1.data[base + t * r + j]!;
      }
    c0 += r;
  }
  // More columns than d: M = X·Yᵀ (d×d) says the same in fewer, with Y = I.
  if (R > d) {
    const M = mat(d, d);
    for (let a = 0; a < d; a++)
      for (let j = 0; j < R; j++) {
        const x = X.data[a * R + j]!;
        if (x === 0) continue;
        for (let b = 0; b < d; b++) M.data[a * d + b] += x * Y.data[b * R + j]!;
      }
    X = M;
    Y = undefined;
  }
  const n = X.cols;
  const qy = Y && qrHouseholder(Y);
  // Z = E·X (V×n) in float64: the V·d·n multiply-adds of the export.
  const Z = mat(V, n);
  for (let w = 0; w < V; w++) {
    const zr = w * n;
    for (let t = 0; t < d; t++) {
      const e = E.data[w * d + t]!;
      if (e === 0) continue;
      const xr = t * n;
      for (let j = 0; j < n; j++) Z.data[zr + j] += e * X.data[xr + j]!;
    }
  }
  const qz = qrHouseholder(Z);
  // C = R_Z·R_Yᵀ (R_Y = I when Y was folded into X); both upper triangular.
  const C = mat(n, n);
  if (qy) {
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let k = Math.max(i, j); k < n; k++) acc += qz.r.data[i * n + k]! * qy.r.data[j * n + k]!;
        C.data[i * n + j] = acc;
      }
  } else C.data.set(qz.r.data);
  if (!C.data.every(Number.isFinite))
    throw new LmSteerError(
      'BAD_ARGUMENT',
      "the adapter's weights would overflow float32 (eps × values × projectors × embeddings exceed even float64)",
      'export with smaller steer values',
    );
  const core = svdTop(C, n);
  const sigma = [...core.values];
  const exactRank = sigma.length;
  if (exactRank === 0)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'the steer changes no logit at these values (its head change is zero)',
      'check the steer and values',
    );
  const want = opts.rank ?? exactRank;
  if (!Number.isInteger(want) || want < 1)
    throw new LmSteerError('BAD_ARGUMENT', `rank ${want} must be an integer ≥ 1`, 'e.g. --rank 8');
  const k = Math.min(want, exactRank);
  const A = new Float32Array(k * d);
  const B = new Float32Array(V * k);
  for (let i = 0; i < k; i++) {
    const s = Math.sqrt(sigma[i]!);
    const left = applyQ(qz.reflectors, core.u[i]!); // V
    const right = qy ? applyQ(qy.reflectors, core.v[i]!) : core.v[i]!; // d
    for (let w = 0; w < V; w++) B[w * k + i] = s * left[w]!;
    for (let t = 0; t < d; t++) A[i * d + t] = s * right[t]!;
  }
  // Checked before anything is written: an adapter of Inf/NaN would load in PEFT and wreck every logit.
  for (const [name, arr] of [
    ['lora_A', A],
    ['lora_B', B],
  ] as const) {
    const bad = firstNonFinite(arr);
    if (bad >= 0)
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `the adapter's ${name} would hold ${arr[bad]} (at flat index ${bad}): eps × values × projectors overflow float32`,
        'export with smaller steer values',
      );
  }
  const total = sigma.reduce((a, s) => a + s * s, 0);
  const lost = sigma.slice(k).reduce((a, s) => a + s * s, 0);
  return {
    A: tensor([k, d], A),
    B: tensor([V, k], B),
    rank: k,
    exactRank,
    singularValues: sigma,
    relativeError: Math.sqrt(lost / total),
  };
}

/** Every slot of `set` at `values` (its defaults, overridden by the names given): the fixed-value adapter's terms. */
export function fixedTerms(set: SteerSet, values: Record<string, number> = {}): SteerTerm[] {
  const v = set.values(values);
  return set.entries.flatMap((e, k) =>
    e.steer.config.slots.map((_, s) => ({ steer: e.steer, slot: s, value: v[k]![s]! })),
  );
}

/** Kept for callers of lmsteer ≤ 0.1: one steer at slot values (in slot order, or by name) → A, B. */
export function loraWeights(
  steer: Steer,
  values: readonly number[] | Record<string, number>,
  E: Tensor,
): { A: Tensor; B: Tensor; rank: number } {
  const v = Array.isArray(values)
    ? [...(values as readonly number[])]
    : SteerSet.of([steer]).values(values as Record<string, number>)[0]!;
  if (v.length !== steer.config.slots.length)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `LoRA export needs ${steer.config.slots.length} slot values (${steer.config.slots.map((s) => s.name).join(', ')}), got [${v.join(', ')}]`,
    );
  const { A, B, rank } = headDelta(
    v.map((value, slot) => ({ steer, slot, value })),
    E,
  );
  return { A, B, rank };
}

// ---------------------------------------------------------------------------------------------------------
// Adapter folders

/** One adapter to write: a folder name (relative to the export's folder; '' = the folder itself) and its terms. */
export interface AdapterPlan {
  name: string;
  terms: SteerTerm[];
  /** What it holds, for README and messages: "sentiment=5, base=1" or "sentiment at 1 (…)". */
  description: string;
}

export interface LoraExportOptions {
  /** base_model_name_or_path: an absolute path or a hub id (PEFT loads the base from it). */
  baseModel: string;
  /** The hub revision of the base, when it has one. */
  revision?: string;
  /** The output-embedding module: 'lm_head' (GPT-2, Llama, Qwen2) or 'embed_out' (GPT-NeoX/Pythia). */
  targetModule?: string;
  /** Truncate each adapter to this rank (the relative error is reported); default: its exact rank. */
  rank?: number;
  /** The base model ties its LM head to the input embeddings (GPT-2, stories260K): README warns about merging. */
  tiedEmbeddings?: boolean;
  /** Also write `<target>.safetensors`, an untied copy of the head, for merging without touching the embeddings. */
  untieHead?: boolean;
  /** Write into a folder that is not empty (files of the same names are replaced). */
  overwrite?: boolean;
  /** Export even when E is not the steers' base model (fingerprints differ). */
  force?: boolean;
}

export interface WrittenAdapter {
  name: string;
  dir: string;
  description: string;
  rank: number;
  exactRank: number;
  relativeError: number;
}

/** Write the adapters of `plans` under `outDir` (each a PEFT folder), with a README; the head copy when asked. */
export function exportLora(
  plans: readonly AdapterPlan[],
  E: Tensor,
  outDir: string,
  opts: LoraExportOptions,
): WrittenAdapter[] {
  const target = opts.targetModule ?? 'lm_head';
  if (!/^[A-Za-z_][\w.]*$/.test(target))
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `target module "${target}" is not a module name`,
      'use e.g. lm_head or embed_out',
    );
  if (plans.length === 0) throw new Error('internal: no adapter to export');
  const fp = embeddingFingerprint(E);
  for (const t of plans.flatMap((p) => p.terms)) {
    const base = t.steer.config.baseModel;
    if (base.embeddingFingerprint !== fp && !opts.force)
      throw new LmSteerError(
        'MODEL_MISMATCH',
        `the steer ${t.steer.config.name ?? ''} was trained for ${base.id} (embeddings ${base.embeddingFingerprint}), but the embeddings given are ${fp}`,
        'export with the base model the steer was trained for, or pass --force',
      );
  }
  refuseNonEmpty(outDir, opts.overwrite);
  // Everything is computed before anything is written: a failure leaves no half export.
  const deltas = plans.map((p) => headDelta(p.terms, E, { rank: opts.rank }));
  makeDir(outDir, 'adapter folder');
  const written = plans.map((p, i): WrittenAdapter => {
    const dir = p.name ? join(outDir, p.name) : outDir;
    makeDir(dir, 'adapter folder');
    writeAdapter(dir, deltas[i]!, p, target, opts);
    const { rank, exactRank, relativeError } = deltas[i]!;
    return { name: p.name, dir, description: p.description, rank, exactRank, relativeError };
  });
  if (opts.untieHead)
    writeSafetensors(
      join(outDir, `${target}.safetensors`),
      { [`${target}.weight`]: E },
      { metadata: { format: 'pt' } },
    );
  writeFileAtomic(join(outDir, 'README.md'), readme(written, target, opts));
  return written;
}

function refuseNonEmpty(dir: string, overwrite: boolean | undefined): void {
  if (!existsSync(dir)) return;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    throw new LmSteerError('BAD_ARGUMENT', `${dir} exists and is not a folder`, 'give a new folder for the adapter');
  }
  if (entries.length > 0 && !overwrite)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${dir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''})`,
      'give a new folder, or pass --overwrite to replace the files it has of the same names',
    );
}

function writeAdapter(dir: string, delta: HeadDelta, plan: AdapterPlan, target: string, opts: LoraExportOptions): void {
  const eps = [...new Set(plan.terms.map((t) => t.steer.config.eps))].join(',');
  writeSafetensors(
    join(dir, 'adapter_model.safetensors'),
    {
      [`base_model.model.${target}.lora_A.weight`]: delta.A,
      [`base_model.model.${target}.lora_B.weight`]: delta.B,
    },
    {
      metadata: {
        format: 'pt',
        lmsteer_values: plan.description,
        lmsteer_eps: eps,
        lmsteer_exact_rank: String(delta.exactRank),
        lmsteer_relative_error: String(delta.relativeError),
      },
    },
  );
  // Only fields PEFT's LoraConfig knows: older PEFT versions reject unknown keys.
  writeJsonAtomic(join(dir, 'adapter_config.json'), {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: opts.baseModel,
    ...(opts.revision ? { revision: opts.revision } : {}),
    r: delta.rank,
    lora_alpha: delta.rank,
    lora_dropout: 0,
    target_modules: [target],
    fan_in_fan_out: false,
    bias: 'none',
    use_rslora: false,
    inference_mode: true,
    modules_to_save: null,
  });
}

function readme(adapters: WrittenAdapter[], target: string, opts: LoraExportOptions): string {
  const perSlot = adapters.length > 1 || adapters[0]!.name !== '';
  const list = adapters
    .map(
      (a) =>
        `- \`${a.name || '.'}\`: ${a.description}; rank ${a.rank}${a.rank < a.exactRank ? ` of ${a.exactRank} (relative error ${a.relativeError.toExponential(2)})` : ' (exact)'}`,
    )
    .join('\n');
  const base = opts.baseModel;
  const untie = opts.untieHead
    ? `\`${target}.safetensors\` holds an untied copy of the head. To merge without changing the input embeddings:

\`\`\`python
import torch
from safetensors.torch import load_file
base = AutoModelForCausalLM.from_pretrained("${base}", tie_word_embeddings=False)
head = load_file("<this folder>/${target}.safetensors")["${target}.weight"]
base.get_output_embeddings().weight = torch.nn.Parameter(head.to(base.dtype))
merged = PeftModel.from_pretrained(base, "<adapter folder>").merge_and_unload()
\`\`\`
`
    : 'Export with `--untie-head` for an untied copy of the head that merges safely.\n';
  const tied = opts.tiedEmbeddings
    ? `
## Tied embeddings: do not merge into the shared matrix
This model ties \`${target}\` to its input embeddings. Applied as an adapter (unmerged) the steer is exact,
but \`merge_and_unload()\` (or llama.cpp's export-lora) adds ΔW to the shared matrix, so the input embeddings
change too and the merged model is no longer the steered model. ${untie}`
    : '';
  return `# LM-Steer steer(s) as LoRA adapters

Exported by lmsteer (Han et al., "Word Embeddings Are Steers for Language Models", ACL 2024).
Base model: \`${base}\`${opts.revision ? ` (revision ${opts.revision})` : ''}. Target module: \`${target}\` (the LM head).

${list}

## The math
The steer changes the head E [V, d]: logits = h·(E + ΔW)ᵀ with ΔW = E·Σ_i eps·s_i·P2_i·P1_iᵀ. Each adapter holds
ΔW's exact SVD factors (or its best low-rank approximation): lora_B.weight [V, r] · lora_A.weight [r, d] = ΔW,
with lora_alpha = r, so PEFT's scaling lora_alpha / r is 1.
${
  perSlot && adapters.some((a) => /at 1 \(/.test(a.description))
    ? `
## One adapter per slot
Each slot's adapter is that slot at value 1; an engine's LoRA scale is the steer value:
- PEFT: \`model.add_weighted_adapter([...], weights=[...])\`, or load one and scale it.
- llama.cpp: convert each folder with \`convert_lora_to_gguf.py\`, start \`llama-server --lora-init-without-apply --lora A.gguf --lora B.gguf\`,
  and steer per request with \`"lora": [{"id": 0, "scale": 5}, {"id": 1, "scale": 1}]\` (the reference's base slot at 1).
`
    : ''
}
## Use
\`\`\`python
from peft import PeftModel
from transformers import AutoModelForCausalLM
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("${base}"), "<adapter folder>")
\`\`\`
vLLM: \`vllm serve ${base} --enable-lora --max-lora-rank <≥ r> --lora-modules name=<adapter folder>\`, then request
\`"model": "name"\` (one adapter per request: export one fixed-value adapter per steer value). vLLM applies a LoRA
to the LM head only for architectures that list it among their LoRA modules (Llama, Mistral, Qwen2 do).
${tied}`;
}
