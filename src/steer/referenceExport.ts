/**
 * An lmsteer steer → a reference LM-Steer checkpoint (.pt), the layout the paper's code (Glaciohound/LM-Steer,
 * experiments/training/train.py: `torch.save([args, model.state_dict(), n_steps], ckpt)`, state =
 * {projector1, projector2} : [S, d, r]) and loaders built on it read. The inverse of referenceImport.ts:
 * importing the written file gives the same tensors, bit for bit, and the same config.
 *
 * args: a steer imported from a .pt keeps its original training flags (steer.json source.referenceArgs); the
 * flags the forward depends on (epsilon, rank, num_steers, dummy_steer = the base slot) always come from the
 * steer itself. lmsteer's names ride along as `lmsteer_name` / `lmsteer_slot_names`, which the reference ignores
 * and the importer reads back.
 */
import { existsSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { writeFileAtomic } from '../formats/atomicWrite.js';
import { referenceCheckpointBytes, type PyArg } from '../formats/torchPt.js';
import { LmSteerError } from '../util/errors.js';
import { BASE_SLOT, mainSlot, validateSteer, type Steer } from './steer.js';

/** The reference's training flags for `steer` (see the file comment). */
export function referenceArgs(steer: Steer): Record<string, PyArg> {
  const c = steer.config;
  const kept = c.source?.kind === 'reference-pt' ? (c.source.referenceArgs as Record<string, unknown> | undefined) : {};
  const args: Record<string, PyArg> = {};
  for (const [k, v] of Object.entries(kept ?? {})) if (isPyArg(v)) args[k] = v;
  const dummy = c.slots.findIndex((s) => s.name === BASE_SLOT);
  const t = c.training ?? {};
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const set = (k: string, v: PyArg | undefined) => {
    if (v !== undefined && !(k in args)) args[k] = v;
  };
  set('model_name', c.baseModel.id);
  set('adaptor_class', 'multiply');
  set('adapted_component', 'final_layer');
  set('dataset_name', typeof t.dataset === 'string' ? t.dataset : undefined);
  set('lr', num(t.lr));
  set('n_steps', num(t.steps));
  set('batch_size', num(t.batchSize));
  set('regularization', num(t.regularization));
  set('seed', num(t.seed));
  set('training_steer', num(t.trainingSlot) ?? mainSlot(steer) ?? 0);
  // What the forward reads: always the steer's own.
  args.epsilon = c.eps;
  args.rank = c.rank;
  args.num_steers = c.slots.length;
  args.dummy_steer = dummy >= 0 ? dummy : null;
  if (c.name !== undefined) args.lmsteer_name = c.name;
  args.lmsteer_slot_names = c.slots.filter((s) => s.name !== BASE_SLOT).map((s) => s.name);
  return args;
}

function isPyArg(v: unknown): v is PyArg {
  return (
    v === null ||
    typeof v === 'string' ||
    typeof v === 'boolean' ||
    (typeof v === 'number' && Number.isFinite(v)) ||
    (Array.isArray(v) && v.every(isPyArg))
  );
}

/** Write `steer` as a reference checkpoint at `path` (refused when it exists, unless `overwrite`). */
export function exportReferenceSteer(steer: Steer, path: string, opts: { overwrite?: boolean } = {}): void {
  validateSteer(steer);
  if (existsSync(path) && !opts.overwrite)
    throw new LmSteerError('BAD_ARGUMENT', `${path} already exists`, 'choose another --out file, or pass --overwrite');
  const dummy = steer.config.slots.findIndex((s) => s.name === BASE_SLOT);
  if (steer.config.slots.some((s, i) => s.defaultValue !== (i === dummy ? 1 : 0)))
    throw new LmSteerError(
      'UNSUPPORTED',
      `steer ${steer.config.name ?? ''} has slot defaults other than 0 (and 1 for ${BASE_SLOT}), which the reference format cannot hold`,
      'the reference holds every slot at 0 except its dummy slot at 1',
    );
  const steps = typeof steer.config.training?.steps === 'number' ? steer.config.training.steps : 0;
  const archive = basename(path, extname(path)).replace(/[^\w.-]/g, '_') || 'archive';
  writeFileAtomic(path, referenceCheckpointBytes(referenceArgs(steer), steer.p1, steer.p2, steps, archive));
}
