/**
 * `lmsteer eval`: the paper's evaluation protocol (src/eval/run.ts) on a prompt file — samples, attribute
 * scores, perplexity, dist-n, a report and plots; Ctrl-C stops after the prompts on disk, rerunning resumes.
 */
import { Command } from 'commander';
import { fluencyModelOf } from '../eval/fluency.js';
import { collapseReasons } from '../eval/report.js';
import { EndpointGenerator } from '../eval/endpoint.js';
import { mergeShards } from '../eval/merge.js';
import { PAPER_SAMPLING, parseShard, parseSweep, runEval, type SamplingSettings } from '../eval/run.js';
import { createScorer, describeScorers } from '../eval/scorers/registry.js';
import { loadModel, type LoadedModel } from '../runtime/loadModel.js';
import { SteerSet } from '../steer/steerSet.js';
import { LmSteerError } from '../util/errors.js';
import {
  addModelFlags,
  addSteerFlags,
  announceModel,
  modelLoadOptions,
  openModel,
  samplingOption,
  type ModelFlags,
  type SteerFlags,
} from './common.js';
import { collect, intOption, parseValues } from './options.js';

interface EvalFlags extends ModelFlags, SteerFlags, SamplingSettings {
  prompts?: string;
  out?: string;
  scorer: string;
  scorerModel?: string;
  scorerLabel?: string;
  pplModel?: string;
  limit?: number;
  sweep?: string;
  batchRows: number;
  overwrite?: boolean;
  progress?: boolean;
  title?: string;
  baseline: boolean;
  shard?: string;
  endpoint: string[];
  endpointModel?: string;
  endpointAdapter?: string;
  concurrency: number;
  retries: number;
}

export function evalCommand(): Command {
  const cmd = new Command('eval').description(
    "evaluate a (steered) model with the paper's protocol: N samples per prompt, attribute, perplexity, dist-n",
  );
  // `eval merge --out DIR`: its own --out, not eval's (options after the subcommand name are the subcommand's).
  cmd.enablePositionalOptions();
  addModelFlags(cmd);
  addSteerFlags(cmd);
  const scorers = describeScorers()
    .map((s) => `${s.name} (${s.attribute})`)
    .join(', ');
  cmd
    .option(
      '--prompts <file>',
      'prompt file: DExperts/RealToxicityPrompts JSONL ({"prompt": {"text": ...}}) or one prompt per line',
    )
    .option('-o, --out <dir>', 'output folder (generations.jsonl, run.json, report.md/json, plots)')
    .option('--samples <n>', 'samples per prompt', intOption('--samples', 1, 10_000), PAPER_SAMPLING.samples)
    .addOption(
      samplingOption(
        'maxNewTokens',
        'new tokens per sample, exactly (EOS does not stop a sample)',
        PAPER_SAMPLING.maxNewTokens,
      ),
    )
    .addOption(
      samplingOption('topP', 'nucleus sampling (1 = off; the paper uses 0.9 for sentiment)', PAPER_SAMPLING.topP),
    )
    .addOption(
      samplingOption(
        'topK',
        "keep the k most likely tokens (0 = off; 50 is Hugging Face generate()'s default)",
        PAPER_SAMPLING.topK,
      ),
    )
    .addOption(samplingOption('temperature', 'sampling temperature', PAPER_SAMPLING.temperature))
    .addOption(
      samplingOption('seed', 'random seed; prompt i always gets the samples of (seed, i)', PAPER_SAMPLING.seed),
    )
    .option('--scorer <name>', `attribute scorer: ${scorers}`, 'vader')
    .option(
      '--scorer-model <path>',
      'model of the scorer: offensive-linear model.json, a linear classifier (file or folder), an ONNX classifier folder',
    )
    .option('--scorer-label <label>', 'onnx-classifier: the id2label name (or index) to score')
    .option(
      '--ppl-model <spec>',
      'evaluator LM for perplexity (default: the evaluated model, unsteered; the paper uses gpt2-xl)',
    )
    .option(
      '--limit <n>',
      'only the first n prompts (a later, larger --limit extends the same run)',
      intOption('--limit', 1, Number.MAX_SAFE_INTEGER),
    )
    .option(
      '--sweep <name=v1,v2,...>',
      'run the whole protocol at each value of one steer value (a subfolder per value)',
    )
    .option(
      '--batch-rows <n>',
      'rows (samples) per decoder batch; speed only, never the samples',
      intOption('--batch-rows', 1, 100_000),
      64,
    )
    .option('--overwrite', 'discard results in --out made with another configuration')
    .option('--progress', 'print progress lines even when stderr is not a terminal')
    .option('--title <text>', 'report title')
    .option('--no-baseline', 'with --steer, skip the unsteered baseline row (run by default, in <out>/unsteered)')
    .option('--shard <i/n>', 'only prompts i, i+n, i+2n… (one machine of n); `lmsteer eval merge` joins the shards')
    .option(
      '--endpoint <url>',
      'sample on an OpenAI-compatible server (lmsteer serve, vLLM) instead of here; repeat for several (round-robin)',
      collect,
      [],
    )
    .option('--endpoint-model <name>', 'the "model" of requests (default: the first the endpoint lists)')
    .option(
      '--endpoint-adapter <name>',
      'steer with a LoRA adapter per value, "{value}" replaced by the steer value (vLLM --lora-modules), instead of the "steer" field',
    )
    .option('--concurrency <n>', 'endpoint requests in flight', intOption('--concurrency', 1, 10_000), 8)
    .option('--retries <n>', 'retries of a failed endpoint request', intOption('--retries', 0, 1000), 5)
    .addHelpText(
      'after',
      `
Scale-out: --endpoint URL sends each prompt to the server as one request (its token ids, n = --samples, the
prompt's seed, min_tokens = max_tokens) and scores the answers here. lmsteer serve (same --model and --steer)
returns exactly the samples this command draws locally. The endpoint's API key: LMSTEER_ENDPOINT_API_KEY or
OPENAI_API_KEY. --shard i/n on n machines, then \`lmsteer eval merge --out DIR SHARD_DIR…\`, gives the report of
one unsharded run.`,
    )
    .action(async (flags: EvalFlags) => run(flags));
  cmd
    .command('merge')
    .description('join the --out folders of `lmsteer eval --shard i/n` runs into the report of one unsharded run')
    .argument('<shard-dirs...>', 'the shard runs’ --out folders, all n of them')
    .option('-o, --out <dir>', 'the merged output folder')
    .option('--overwrite', 'replace an evaluation already in --out')
    .action(async (dirs: string[], flags: { out?: string; overwrite?: boolean }) => {
      if (!flags.out) throw new LmSteerError('BAD_ARGUMENT', 'give --out DIR, the merged folder');
      const r = await mergeShards(dirs, flags.out, { overwrite: flags.overwrite });
      process.stdout.write(`${r.files.reportMd}\n`);
      process.stdout.write(`merged ${dirs.length} shards: ${r.prompts} prompts × ${r.report.rows.length} settings\n`);
    });
  return cmd;
}

async function run(flags: EvalFlags): Promise<void> {
  if (!flags.prompts)
    throw new LmSteerError('BAD_ARGUMENT', 'give --prompts FILE', 'e.g. --prompts nontoxic_prompts-10k.jsonl');
  if (!flags.out)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'give --out DIR, the folder for generations and the report',
      'e.g. --out runs/detox',
    );
  const sweep = flags.sweep !== undefined ? parseSweep(flags.sweep) : undefined;
  const values = parseValues(flags.value);
  if (flags.value.length > 0 && flags.steer.length === 0)
    throw new LmSteerError('BAD_ARGUMENT', '--value was given but no --steer', 'add --steer DIR');
  const shard = flags.shard !== undefined ? parseShard(flags.shard) : undefined;
  if (flags.endpoint.length === 0 && (flags.endpointModel || flags.endpointAdapter))
    throw new LmSteerError('BAD_ARGUMENT', '--endpoint-model and --endpoint-adapter need --endpoint URL');
  // The scorer first: a missing model file or API key should fail before a model is loaded.
  const scorer = await createScorer(flags.scorer, { modelPath: flags.scorerModel, label: flags.scorerLabel });
  const model = await openModel(flags);
  let ppl: LoadedModel | undefined;
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130); // a second Ctrl-C: do not wait
    process.stderr.write('\nstopping: prompts already written are kept; run the same command again to resume\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const steers = SteerSet.load(model, flags.steer, {}, { force: flags.force });
    const generator =
      flags.endpoint.length > 0
        ? await EndpointGenerator.connect(
            {
              urls: flags.endpoint,
              model: flags.endpointModel,
              adapter: flags.endpointAdapter,
              concurrency: flags.concurrency,
              retries: flags.retries,
              apiKey: process.env.LMSTEER_ENDPOINT_API_KEY || process.env.OPENAI_API_KEY || undefined,
            },
            { fingerprint: model.fingerprint(), steers: steers.names() },
          )
        : undefined;
    if (flags.pplModel) ppl = await loadModel(flags.pplModel, modelLoadOptions(flags));
    if (ppl) announceModel(ppl);
    const r = await runEval(
      {
        outDir: flags.out,
        promptsPath: flags.prompts,
        limit: flags.limit,
        samples: flags.samples,
        maxNewTokens: flags.maxNewTokens,
        topP: flags.topP,
        topK: flags.topK,
        temperature: flags.temperature,
        seed: flags.seed,
        values,
        sweep,
        batchRows: flags.batchRows,
        overwrite: flags.overwrite,
        progress: flags.progress,
        title: flags.title,
        baseline: flags.baseline,
        shard,
      },
      {
        model,
        steers,
        steerDirs: flags.steer,
        scorer,
        fluency: fluencyModelOf(ppl ?? model),
        signal: controller.signal,
        generator,
      },
    );
    process.stdout.write(`${r.files.reportMd}\n`);
    for (const s of r.settings) {
      const row = s.row;
      const attr =
        row.maxToxicity !== undefined
          ? `max toxicity ${fmt(row.maxToxicity, 3)}, toxicity prob ${fmt(row.toxicityProb, 3)}`
          : `${scorer.attribute} ${fmt(100 * (row.positiveRate ?? NaN), 2)}%`;
      const kept = row.pplKept !== undefined ? ` (${row.pplKept}/${row.pplKept + (row.pplDropped ?? 0)} kept)` : '';
      const ci = (k: 'positiveRate' | 'maxToxicity', scale: number, digits: number) => {
        const c = row.ci?.[k];
        return c && Number.isFinite(c[0]) ? ` [${fmt(scale * c[0], digits)}, ${fmt(scale * c[1], digits)}]` : '';
      };
      const attrCi = row.maxToxicity !== undefined ? ci('maxToxicity', 1, 3) : ci('positiveRate', 100, 1);
      const flags = collapseReasons(row);
      process.stdout.write(
        `  ${s.setting}: ${attr}${attrCi}, ppl ${fmt(row.ppl, 2)}${kept}, pooled ${fmt(row.pooledPpl, 2)}, junk ${fmt(100 * (row.junkRate ?? NaN), 1)}%, dist-1/2/3 ${fmt(row.dist1, 2)}/${fmt(row.dist2, 2)}/${fmt(row.dist3, 2)}${flags.length ? `\n    ⚠ collapsed? ${flags.join('; ')}` : ''}\n`,
      );
    }
  } finally {
    process.off('SIGINT', onSigint);
    ppl?.close();
    model.close();
  }
}

function fmt(v: number | undefined, digits: number): string {
  return v !== undefined && Number.isFinite(v) ? v.toFixed(digits) : '—';
}
