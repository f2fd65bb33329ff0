/**
 * Checkpoints whose weights are already quantized by another tool (GPTQ, AWQ, bitsandbytes, compressed-tensors)
 * store integer tensors under names lmsteer's graphs do not read (`q_proj.qweight`, `.qzeros`, `.scales`,
 * `.g_idx`, `.weight_scale`, `.SCB`…) and say so in config.json's `quantization_config`. lmsteer quantizes float
 * weights itself (--dtype q8 / q4), so such a checkpoint is refused with the tool named, before anything looks
 * for a `.weight` that is not there.
 */
import { LmSteerError } from '../util/errors.js';
import type { WeightStore } from './weights.js';

const QUANTIZED_SUFFIXES = ['.qweight', '.qzeros', '.g_idx', '.weight_scale', '.weight_packed', '.SCB', '.absmax'];

export function rejectPreQuantized(config: Record<string, unknown>, weights: WeightStore, source: string): void {
  const qc = config.quantization_config as { quant_method?: unknown } | undefined;
  const tensor = weights.names().find((n) => QUANTIZED_SUFFIXES.some((s) => n.endsWith(s)));
  if (!qc && !tensor) return;
  const method = typeof qc?.quant_method === 'string' ? qc.quant_method : undefined;
  throw new LmSteerError(
    'UNSUPPORTED',
    `${source} holds already-quantized weights (${[method && `quantization_config.quant_method "${method}"`, tensor && `tensor "${tensor}"`].filter(Boolean).join(', ')})`,
    'use the float checkpoint (F32, F16 or BF16 safetensors) of the model; lmsteer quantizes it itself with --dtype q8 or q4',
  );
}
