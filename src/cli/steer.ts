/**
 * `lmsteer steer import|export-lora|info|loss`: move steers in and out of lmsteer's folder format, describe
 * them, and measure them on held-out labelled texts (src/train/steerLoss.ts).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { parseHubSpec } from '../formats/hub.js';
import { parseSweep } from '../eval/run.js';
import { exportLora, fixedTerms, type AdapterPlan } from '../steer/lora.js';
import { exportReferenceSteer } from '../steer/referenceExport.js';
import { embeddedModelDir } from '../util/packageFiles.js';
import { importReferenceSteer } from '../steer/referenceImport.js';
import { BASE_SLOT, type Steer } from '../steer/steer.js';
import { BASE_SLOT_NOTE, loadSteerFor, SteerSet } from '../steer/steerSet.js';
import { loadSteer } from '../steer/steerFile.js';
import { LmSteerError } from '../util/errors.js';
import { addModelFlags, openModel, type ModelFlags } from './common.js';
import { collect, intOption, parseValues, terminalSafe } from './options.js';
import { loadDataset } from '../train/data.js';
import { limitDataset } from '../train/run.js';
import { describeSteerLoss, domainWarning, heldOutLoss } from '../train/steerLoss.js';

export function steerCommand(): Command {
  const cmd = new Command('steer').description(
    'import and export reference checkpoints, export LoRA adapters, describe steer folders',
  );
  cmd.addCommand(importCommand());
  cmd.addCommand(exportCommand());
  cmd.addCommand(infoCommand());
  cmd.addCommand(lossCommand());
  return cmd;
}

// ---------------------------------------------------------------------------------------------------------

interface ImportFlags extends ModelFlags {
  pt?: string;
  out?: string;
  name?: string;
  slotNames?: string;
  overwrite?: boolean;
}

function importCommand(): Command {
  const cmd = new Command('import').description(
    "convert a reference LM-Steer checkpoint (.pt from the paper's train.py) into a steer folder for --model",
  );
  addModelFlags(cmd);
  return cmd
    .option('--pt <file>', 'the reference checkpoint (.pt)')
    .option('-o, --out <dir>', 'the steer folder to write')
    .option('--name <name>', 'the steer name (the `name` in --value name.slot=v; default: the folder name)')
    .option('--slot-names <a,b>', 'names of the settable slots in order (default slot0, slot1, …)')
    .option('--overwrite', 'replace a steer already in --out')
    .action(async (flags: ImportFlags) => {
      if (!flags.pt) throw new LmSteerError('BAD_ARGUMENT', 'give --pt FILE.pt, the reference checkpoint');
      if (!flags.out) throw new LmSteerError('BAD_ARGUMENT', 'give --out DIR, the steer folder to write');
      const slotNames = flags.slotNames?.split(',').map((s) => s.trim());
      if (slotNames?.some((s) => s === '' || s === BASE_SLOT))
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `--slot-names "${flags.slotNames}" has an empty or reserved name`,
          'e.g. --slot-names sentiment',
        );
      const model = await openModel(flags);
      try {
        const steer = importReferenceSteer(flags.pt, model, flags.out, {
          name: flags.name,
          slotNames,
          overwrite: flags.overwrite,
        });
        const names = SteerSet.of([steer], [steer.config.name ?? basename(flags.out)]).knownValueNames();
        process.stdout.write(
          `imported ${flags.pt} → ${flags.out} (${steer.config.slots.length} slots, rank ${steer.config.rank}, eps ${steer.config.eps}, base ${model.id})\n`,
        );
        process.stdout.write(`values: ${names.join(', ')}\n`);
      } finally {
        model.close();
      }
    });
}

// ---------------------------------------------------------------------------------------------------------

interface ExportFlags extends ModelFlags {
  format: string;
  steer: string[];
  value: string[];
  out?: string;
  perSlot?: boolean;
  sweep?: string;
  rank?: number;
  baseModel?: string;
  targetModule?: string;
  untieHead?: boolean;
  overwrite?: boolean;
  force?: boolean;
}

function exportCommand(): Command {
  const cmd = new Command('export')
    .alias('export-lora')
    .description(
      'write steers as PEFT LoRA adapters on the LM head (--format lora, at their exact rank) or as a reference checkpoint (--format pt)',
    );
  addModelFlags(cmd);
  return cmd
    .addOption(
      new Option('--format <fmt>', 'lora: PEFT adapter folder(s); pt: the reference .pt')
        .choices(['lora', 'pt'])
        .default('lora'),
    )
    .option('--steer <dir>', 'a steer folder; repeat to compose several into one adapter', collect, [])
    .option(
      '--value <name=v>',
      'a steer value to bake in, e.g. sentiment=3 (defaults: base 1, others 0); repeatable',
      collect,
      [],
    )
    .option('-o, --out <path>', 'the adapter folder (lora) or .pt file (pt) to write')
    .option(
      '--per-slot',
      'one adapter per slot at value 1 (the LoRA scale is the value: llama.cpp, PEFT) instead of baked-in values',
    )
    .option(
      '--sweep <name=v1,v2,...>',
      'one fixed-value adapter per value, in <out>/<name>_<v> (vLLM serves one per request)',
    )
    .option(
      '--rank <r>',
      'truncate each adapter to rank r (the relative error is printed); default: the exact rank',
      intOption('--rank', 1, 1_000_000),
    )
    .option(
      '--base-model <id>',
      'base_model_name_or_path: a hub id or a path (default: --model, as an absolute path when local)',
    )
    .option('--target-module <name>', 'the LM head module (default: embed_out for GPT-NeoX/Pythia, lm_head otherwise)')
    .option(
      '--untie-head',
      "also write <target>.safetensors, the head's own copy, so a tied model can be merged safely",
    )
    .option('--overwrite', 'write into a non-empty --out folder, or over an existing .pt')
    .option('--force', 'export even if the steer was trained for another base model')
    .action(async (flags: ExportFlags) => {
      if (flags.steer.length === 0) throw new LmSteerError('BAD_ARGUMENT', 'give --steer DIR, the steer folder');
      if (!flags.out)
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `give --out ${flags.format === 'pt' ? 'FILE.pt' : 'DIR'}, where to write`,
        );
      if (flags.format === 'pt') return exportPt(flags);
      return exportLoraAdapters(flags);
    });
}

function exportPt(flags: ExportFlags): void {
  if (flags.steer.length !== 1)
    throw new LmSteerError('BAD_ARGUMENT', '--format pt writes one steer; give one --steer', 'run once per steer');
  for (const [flag, set] of [
    ['--value', flags.value.length > 0],
    ['--per-slot', flags.perSlot],
    ['--sweep', flags.sweep],
    ['--rank', flags.rank],
    ['--untie-head', flags.untieHead],
  ] as const)
    if (set)
      throw new LmSteerError('BAD_ARGUMENT', `${flag} is for --format lora`, 'a .pt holds the steer itself, no values');
  const steer = loadSteer(flags.steer[0]!);
  exportReferenceSteer(steer, flags.out!, { overwrite: flags.overwrite });
  process.stdout.write(
    `wrote ${flags.out} (reference LM-Steer checkpoint: ${steer.config.slots.length} slots, rank ${steer.config.rank}, eps ${steer.config.eps})\n`,
  );
}

async function exportLoraAdapters(flags: ExportFlags): Promise<void> {
  const modes = [flags.perSlot, flags.sweep, flags.value.length > 0].filter(Boolean).length;
  if (flags.perSlot && (flags.value.length > 0 || flags.sweep))
    throw new LmSteerError(
      'BAD_ARGUMENT',
      '--per-slot writes every slot at value 1; --value and --sweep bake values in',
      'use one or the other',
    );
  if (modes === 0)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'give --value name=v to bake into the adapter, --sweep name=v1,v2 for one adapter per value, or --per-slot',
      'e.g. --value sentiment=5',
    );
  const values = parseValues(flags.value);
  const sweep = flags.sweep !== undefined ? parseSweep(flags.sweep) : undefined;
  const model = await openModel(flags);
  try {
    const steers = SteerSet.load(model, flags.steer, {}, { force: flags.force });
    const plans: AdapterPlan[] = flags.perSlot
      ? slotPlans(steers)
      : sweep
        ? sweep.values.map((v) =>
            fixedPlan(steers, { ...values, [sweep.name]: v }, adapterFolder(`${sweep.name}_${v}`)),
          )
        : [fixedPlan(steers, values, '')];
    const targetModule = flags.targetModule ?? (model.cfg.arch === 'gpt_neox' ? 'embed_out' : 'lm_head');
    const base = adapterBase(flags.baseModel ?? flags.model);
    const written = exportLora(plans, model.outputEmbeddings(), flags.out!, {
      baseModel: base.id,
      revision: base.revision,
      targetModule,
      rank: flags.rank,
      tiedEmbeddings: model.cfg.tiedEmbeddings,
      untieHead: flags.untieHead,
      overwrite: flags.overwrite,
      force: flags.force,
    });
    for (const a of written) {
      const truncated =
        a.rank < a.exactRank
          ? `rank ${a.rank} of ${a.exactRank}, relative error ${a.relativeError.toExponential(2)}`
          : `rank ${a.rank} (exact)`;
      process.stdout.write(`wrote ${a.dir}: ${a.description}; ${truncated}\n`);
    }
    process.stdout.write(
      `base_model_name_or_path ${base.id}${base.revision ? `@${base.revision}` : ''}; target ${targetModule}\n`,
    );
    if (sweep)
      process.stdout.write(
        `vLLM: --enable-lora --max-lora-rank ${Math.max(...written.map((a) => a.rank))} --lora-modules ${written.map((a) => `${a.name}=${resolve(a.dir)}`).join(' ')}\n`,
      );
    if (model.cfg.tiedEmbeddings)
      process.stderr.write(
        `note: ${model.id} ties ${targetModule} to its input embeddings. The adapter is exact applied unmerged; merging it ` +
          `(merge_and_unload, llama.cpp export-lora) would change the input embeddings too.` +
          (flags.untieHead
            ? ` Merge into the untied copy in ${join(flags.out!, `${targetModule}.safetensors`)} instead (README.md).\n`
            : ' Export with --untie-head for an untied copy of the head to merge into.\n'),
      );
  } finally {
    model.close();
  }
}

/** The fixed-value adapter of `set` at `values` (its defaults for slots not named). */
function fixedPlan(set: SteerSet, values: Record<string, number>, name: string): AdapterPlan {
  const terms = fixedTerms(set, values);
  const names = slotValueNames(set);
  return { name, terms, description: terms.map((t, i) => `${names[i]}=${t.value}`).join(', ') };
}

/** One adapter per slot of every steer, at value 1, in a folder named `steer.slot`. */
function slotPlans(set: SteerSet): AdapterPlan[] {
  const names = slotValueNames(set);
  return fixedTerms(set).map((t, i) => ({
    name: adapterFolder(set.knownValueNames()[i]!),
    terms: [{ ...t, value: 1 }],
    description: `${names[i]} at 1 (the LoRA scale is its value)`,
  }));
}

/** Every slot's value name, in the order fixedTerms lists the slots. */
function slotValueNames(set: SteerSet): string[] {
  return set.entries.flatMap((e, k) => e.steer.config.slots.map((_, s) => set.valueName(k, s)));
}

/** A folder (and vLLM adapter) name from a value name: only letters, digits, ".", "_", "-". */
function adapterFolder(name: string): string {
  return name.replace(/[^\w.-]/g, '_').replace(/^\.+/, '_');
}

/** What PEFT should load the base model from: a local path made absolute, or the hub id and its revision. */
function adapterBase(spec: string): { id: string; revision?: string } {
  if (existsSync(spec)) return { id: resolve(spec) };
  const embedded = embeddedModelDir(spec);
  if (embedded !== undefined) return { id: embedded };
  const { repo, revision } = parseHubSpec(spec);
  return { id: repo, revision: revision === 'main' ? undefined : revision };
}

// ---------------------------------------------------------------------------------------------------------

function infoCommand(): Command {
  return new Command('info')
    .description('describe a steer folder: slots, rank, eps, base model, training and metrics')
    .option('--steer <dir>', 'the steer folder')
    .option('--json', 'print steer.json plus tensor norms as JSON')
    .action((flags: { steer?: string; json?: boolean }) => {
      if (!flags.steer) throw new LmSteerError('BAD_ARGUMENT', 'give --steer DIR, the steer folder');
      const steer = loadSteer(flags.steer);
      const norms = slotNorms(steer);
      if (flags.json) {
        process.stdout.write(
          JSON.stringify({ ...steer.config, values: SteerSet.of([steer]).knownValueNames(), norms }, null, 2) + '\n',
        );
        return;
      }
      const c = steer.config;
      const lines = [
        `steer ${c.name} (${flags.steer})`,
        `  base model: ${c.baseModel.id} (embeddings ${c.baseModel.embeddingFingerprint}, vocab ${c.baseModel.vocabSize}, hidden ${c.baseModel.hiddenSize})`,
        `  eps ${c.eps}, rank ${c.rank}, ${c.slots.length} slot${c.slots.length === 1 ? '' : 's'}:`,
        ...c.slots.map(
          (s, i) =>
            `    ${s.name} (default ${s.defaultValue})  ‖P1‖ ${norms[i]!.p1.toFixed(4)}  ‖P2‖ ${norms[i]!.p2.toFixed(4)}`,
        ),
        `  values: ${SteerSet.of([steer]).knownValueNames().join(', ') || '(none)'}`,
      ];
      if (c.slots.some((s) => s.name === BASE_SLOT)) lines.push(`  ${BASE_SLOT}: ${BASE_SLOT_NOTE}`);
      if (c.source) lines.push(`  source: ${flat(c.source, ['referenceArgs'])}`);
      if (c.training) lines.push(`  training: ${flat(c.training, ['perLabel'])}`);
      if (c.metrics) lines.push(`  metrics: ${flat(c.metrics, [])}`);
      process.stdout.write(lines.map(terminalSafe).join('\n') + '\n');
    });
}

interface LossFlags extends ModelFlags {
  steer?: string;
  data: string[];
  textField?: string;
  labelField?: string;
  labelMap: string;
  slot?: string;
  value: string[];
  includePadding?: boolean;
  batchSize: number;
  maxLength: number;
  limit?: number;
  seed: number;
  json?: boolean;
  force?: boolean;
}

function lossCommand(): Command {
  const cmd = new Command('loss').description(
    'mean next-token loss of the steered model on labelled texts (values from the labels), with the labels flipped and with the steer off',
  );
  addModelFlags(cmd);
  return cmd
    .option('--steer <dir>', 'the steer folder')
    .option(
      '--data <file[:label]>',
      'labelled texts, read as `lmsteer train --data` reads them; repeatable',
      collect,
      [],
    )
    .option('--text-field <name>', 'text field (JSONL key, CSV/TSV column)')
    .option('--label-field <name>', 'label field (JSONL key, CSV/TSV column)')
    .option('--label-map <map>', 'labels → steer values, as in train', 'binary')
    .option('--slot <name>', "the slot that gets each text's label (default: the steer's only settable slot)")
    .option('--value <name=v>', 'a fixed value for another slot; repeatable', collect, [])
    .option(
      '--include-padding',
      "the reference's convention: the mean over all B·(T−1) positions of each EOS-padded batch (default: real targets only)",
    )
    .option('--batch-size <b>', 'texts per padded batch (file order)', intOption('--batch-size', 1, 1_000_000), 32)
    .option('--max-length <n>', 'tokens kept per text', intOption('--max-length', 1, 1_000_000), 256)
    .option('--limit <n>', 'a seeded random subset of n texts', intOption('--limit', 1, Number.MAX_SAFE_INTEGER))
    .option('--seed <s>', 'seed of --limit', intOption('--seed', 0, 2 ** 31 - 1), 0)
    .option('--json', 'print {ce, ce_flipped, ce_off, n_targets, …} as JSON')
    .option('--force', 'use the steer even if it was trained for another base model')
    .action(async (flags: LossFlags) => {
      if (!flags.steer) throw new LmSteerError('BAD_ARGUMENT', 'give --steer DIR, the steer folder');
      if (flags.data.length === 0)
        throw new LmSteerError('BAD_ARGUMENT', 'give --data FILE[:label], the labelled texts', 'e.g. --data dev.tsv');
      const ds = loadDataset(flags.data, {
        labelMap: flags.labelMap,
        textField: flags.textField,
        labelField: flags.labelField,
        balance: 'none',
        seed: flags.seed,
      });
      const examples = (flags.limit ? limitDataset(ds, flags.limit, flags.seed) : ds).examples;
      const model = await openModel(flags);
      try {
        const steer = loadSteerFor(model, flags.steer, flags.force);
        const r = await heldOutLoss(model, steer, examples, {
          slot: flags.slot,
          values: parseValues(flags.value),
          batchSize: flags.batchSize,
          maxLength: flags.maxLength,
          threads: flags.threads,
        });
        const c = flags.includePadding ? r.include : r.exclude;
        if (flags.json) {
          process.stdout.write(
            JSON.stringify({
              ce: c.ce,
              ce_flipped: c.ceFlipped,
              ce_off: c.ceOff,
              n_targets: c.nTargets,
              style_signal: c.ceFlipped - c.ce,
              domain_gain: c.ceOff - c.ce,
              include_padding: Boolean(flags.includePadding),
              texts: r.texts,
              skipped_texts: r.skipped,
              slot: r.slot,
              batch_size: r.batchSize,
            }) + '\n',
          );
        } else {
          const lines = describeSteerLoss(r, [flags.includePadding ? 'include' : 'exclude']);
          if (r.skipped) lines.push(`  (${r.skipped} texts with no tokens left out)`);
          lines.push(
            '  style signal = flipped − ce (what the slot knows about the labels); domain gain = off − ce (how far the steer moves toward these texts)',
          );
          process.stdout.write(lines.join('\n') + '\n');
        }
        const warning = domainWarning(r, c);
        if (warning) process.stderr.write(`${warning}\n`);
      } finally {
        model.close();
      }
    });
}

/** Frobenius norms of P1[s] and P2[s] per slot: a quick look at what training did to each slot. */
function slotNorms(steer: Steer): { slot: string; p1: number; p2: number }[] {
  const [S, d, r] = steer.p1.shape as [number, number, number];
  const norm = (a: Float32Array, s: number) => {
    let acc = 0;
    for (let i = s * d * r; i < (s + 1) * d * r; i++) acc += a[i]! * a[i]!;
    return Math.sqrt(acc);
  };
  return Array.from({ length: S }, (_, s) => ({
    slot: steer.config.slots[s]!.name,
    p1: norm(steer.p1.data, s),
    p2: norm(steer.p2.data, s),
  }));
}

function flat(o: Record<string, unknown>, skip: string[]): string {
  return Object.entries(o)
    .filter(([k, v]) => v !== undefined && !skip.includes(k))
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(', ');
}

function basename(p: string): string {
  return (
    p
      .replace(/[\\/]+$/, '')
      .split(/[\\/]/)
      .pop() ?? p
  );
}
