/**
 * `lmsteer steer import|export-lora|info|loss`: move steers in and out of lmsteer's folder format, describe
 * them, and measure them on held-out labelled texts (src/train/steerLoss.ts).
 */
import { Command } from 'commander';
import { exportLora } from '../steer/lora.js';
import { importReferenceSteer } from '../steer/referenceImport.js';
import { BASE_SLOT, type Steer } from '../steer/steer.js';
import { BASE_SLOT_NOTE, SteerSet } from '../steer/steerSet.js';
import { loadSteer } from '../steer/steerFile.js';
import { LmSteerError } from '../util/errors.js';
import { addModelFlags, openModel, type ModelFlags } from './common.js';
import { collect, intOption, parseValues, terminalSafe } from './options.js';
import { loadDataset } from '../train/data.js';
import { limitDataset } from '../train/run.js';
import { describeSteerLoss, domainWarning, heldOutLoss } from '../train/steerLoss.js';

export function steerCommand(): Command {
  const cmd = new Command('steer').description(
    'import reference checkpoints, export LoRA adapters, describe steer folders',
  );
  cmd.addCommand(importCommand());
  cmd.addCommand(exportLoraCommand());
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
  steer?: string;
  value: string[];
  out?: string;
  targetModule?: string;
  force?: boolean;
}

function exportLoraCommand(): Command {
  const cmd = new Command('export-lora').description(
    'write a steer at fixed values as a PEFT LoRA adapter on the LM head',
  );
  addModelFlags(cmd);
  return cmd
    .option('--steer <dir>', 'the steer folder')
    .option('--value <name=v>', 'a steer value to bake in, e.g. sentiment=3; repeatable', collect, [])
    .option('-o, --out <dir>', 'the adapter folder to write')
    .option('--target-module <name>', 'the LM head module (default: embed_out for GPT-NeoX/Pythia, lm_head otherwise)')
    .option('--force', 'export even if the steer was trained for another base model')
    .action(async (flags: ExportFlags) => {
      if (!flags.steer) throw new LmSteerError('BAD_ARGUMENT', 'give --steer DIR, the steer folder');
      if (!flags.out) throw new LmSteerError('BAD_ARGUMENT', 'give --out DIR, the adapter folder to write');
      if (flags.value.length === 0)
        throw new LmSteerError(
          'BAD_ARGUMENT',
          'give at least one --value name=v to bake into the adapter',
          'e.g. --value sentiment=5',
        );
      const values = parseValues(flags.value);
      const model = await openModel(flags);
      try {
        const steer = loadSteer(flags.steer, {
          expectFingerprint: model.fingerprint(),
          expectModelId: model.id,
          expectHiddenSize: model.cfg.hiddenSize,
          force: flags.force,
        });
        const targetModule = flags.targetModule ?? (model.cfg.arch === 'gpt_neox' ? 'embed_out' : 'lm_head');
        const r = exportLora(steer, values, model.outputEmbeddings(), flags.out, {
          baseModelId: model.id,
          targetModule,
          force: flags.force,
        });
        const slots = steer.config.slots.map((s, i) => `${s.name}=${r.values[i]}`).join(', ');
        process.stdout.write(
          `wrote a LoRA adapter (rank ${r.rank}, target ${targetModule}, ${slots}) to ${flags.out}\n`,
        );
      } finally {
        model.close();
      }
    });
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
        const steer = loadSteer(flags.steer, {
          expectFingerprint: model.fingerprint(),
          expectModelId: model.id,
          expectHiddenSize: model.cfg.hiddenSize,
          force: flags.force,
        });
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
