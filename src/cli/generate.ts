/** `lmsteer generate`: sample continuations of a prompt, optionally steered; streams text or prints JSON. */
import { Command } from 'commander';
import { definedOf, generate } from '../runtime/generate.js';
import { GENERATION_DEFAULTS, generationDefaults } from '../runtime/generationDefaults.js';
import { LmSteerError } from '../util/errors.js';
import {
  addModelFlags,
  addSteerFlags,
  openModel,
  openSteers,
  samplingOption,
  type ModelFlags,
  type SteerFlags,
} from './common.js';
import { collect, floatOption, intOption, parseIds } from './options.js';

interface GenerateFlags extends ModelFlags, SteerFlags {
  prompt?: string;
  ids?: string;
  maxNewTokens?: number;
  minNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed: number;
  numSamples: number;
  stop: string[];
  json?: boolean;
}

export function generateCommand(): Command {
  const cmd = new Command('generate').description(
    'generate text from a prompt, optionally steered (--steer DIR --value name=v)',
  );
  addModelFlags(cmd);
  addSteerFlags(cmd);
  return cmd
    .option('-p, --prompt <text>', 'the prompt')
    .option('--ids <ids>', 'the prompt as comma-separated token ids instead of text')
    .addOption(
      samplingOption(
        'maxNewTokens',
        `new tokens per sample (default: the model's generation_config.json, else ${GENERATION_DEFAULTS.maxNewTokens})`,
      ),
    )
    .option(
      '--min-new-tokens <n>',
      'no EOS before this many new tokens',
      intOption('--min-new-tokens', 0, 1_000_000),
      0,
    )
    .addOption(
      samplingOption('temperature', 'sampling temperature; 0 = greedy (default: generation_config.json, else 1)'),
    )
    .addOption(
      samplingOption('topK', 'keep the k most likely tokens, 0 = off (default: generation_config.json, else 0)'),
    )
    .addOption(
      samplingOption(
        'topP',
        'nucleus sampling: keep the smallest set with this much probability, 1 = off (default: generation_config.json, else 1)',
      ),
    )
    .option(
      '--repetition-penalty <r>',
      "transformers' repetition penalty over prompt and new tokens, 1 = off (default: generation_config.json, else 1)",
      floatOption('--repetition-penalty', Number.MIN_VALUE, 100),
    )
    .option(
      '--presence-penalty <p>',
      'OpenAI presence penalty over the new tokens, -2..2 (default 0)',
      floatOption('--presence-penalty', -2, 2),
    )
    .option(
      '--frequency-penalty <p>',
      'OpenAI frequency penalty over the new tokens, -2..2 (default 0)',
      floatOption('--frequency-penalty', -2, 2),
    )
    .addOption(samplingOption('seed', 'random seed (runs with the same seed are identical)', 0))
    .option('--num-samples <n>', 'samples of the prompt', intOption('--num-samples', 1, 10_000), 1)
    .option('--stop <text>', 'stop when this text appears (repeatable)', collect, [])
    .option('--json', 'print {"model", "samples": [{"text", "token_ids"}]} instead of streaming text')
    .action(async (flags: GenerateFlags) => run(flags));
}

async function run(flags: GenerateFlags): Promise<void> {
  if (flags.prompt === undefined && flags.ids === undefined) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'give --prompt TEXT (or --ids 1,2,3)',
      'e.g. lmsteer generate --prompt "Once upon a time"',
    );
  }
  if (flags.prompt !== undefined && flags.ids !== undefined)
    throw new LmSteerError('BAD_ARGUMENT', '--prompt and --ids exclude each other');
  if (flags.prompt === '')
    throw new LmSteerError(
      'BAD_ARGUMENT',
      '--prompt is empty',
      'give some text, or --ids with the start token (e.g. --ids 1)',
    );
  const model = await openModel(flags);
  try {
    const { steers, scale } = openSteers(model, flags);
    const { settings: modelDefaults, notes } = generationDefaults(
      model.generationConfig,
      `${model.id} generation_config.json`,
    );
    if (notes.length > 0) process.stderr.write(`lmsteer: the model's generation_config.json: ${notes.join('; ')}\n`);
    const stream = !flags.json && flags.numSamples === 1;
    const prompt = flags.ids !== undefined ? { ids: parseIds(flags.ids) } : flags.prompt!;
    if (stream)
      process.stdout.write(
        typeof prompt === 'string' ? prompt : model.tokenizer.decode(prompt.ids, { skipSpecialTokens: true }),
      );
    const [result] = await generate(
      model.decoder,
      model.tokenizer,
      [{ prompt, numSamples: flags.numSamples, steerScale: scale }],
      {
        ...modelDefaults,
        ...definedOf({
          maxNewTokens: flags.maxNewTokens,
          temperature: flags.temperature,
          topK: flags.topK,
          topP: flags.topP,
          repetitionPenalty: flags.repetitionPenalty,
          presencePenalty: flags.presencePenalty,
          frequencyPenalty: flags.frequencyPenalty,
        }),
        minNewTokens: flags.minNewTokens,
        seed: flags.seed,
        stop: flags.stop,
        maxPositions: model.cfg.maxPositions,
        steer: steers.directions,
      },
      stream ? { onToken: (_row, delta) => process.stdout.write(delta) } : {},
    );
    if (stream) process.stdout.write('\n');
    else if (flags.json) {
      const samples = result.samples.map((s) => ({
        text: s.text,
        token_ids: s.tokenIds,
        finish_reason: s.finishReason,
      }));
      process.stdout.write(JSON.stringify({ model: model.id, prompt_tokens: result.promptTokens, samples }) + '\n');
    } else {
      result.samples.forEach((s, i) =>
        process.stdout.write(`--- sample ${i + 1} ---\n${flags.prompt ?? ''}${s.text}\n`),
      );
    }
  } finally {
    model.close();
  }
}
