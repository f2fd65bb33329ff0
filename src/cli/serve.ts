/**
 * `lmsteer serve`: an OpenAI-compatible HTTP server with per-request steers, and the web playground at /.
 * Flags only; the server is src/server/.
 */
import { Command, Option } from 'commander';
import { FILE_LIMITS, readTextFile } from '../formats/safeRead.js';
import { describeBuild } from '../graph/buildOptions.js';
import { LmSteerError } from '../util/errors.js';
import { locateModelSpec } from '../runtime/loadModel.js';
import { loadChatTemplate } from '../server/chatTemplate.js';
import { DEFAULTS, startServer } from '../server/server.js';
import { SteerSet } from '../steer/steerSet.js';
import { addModelFlags, addSteerFlags, openModel, type ModelFlags, type SteerFlags } from './common.js';
import { collect, floatOption, intOption, parseValues } from './options.js';

interface ServeFlags extends ModelFlags, SteerFlags {
  host: string;
  port: number;
  maxBatch: number;
  maxTokensLimit?: number;
  maxQueue: number;
  timeoutMs: number;
  maxBodyBytes: number;
  apiKey?: string;
  apiKeyFile?: string;
  allowHost: string[];
  allowSteerLoad?: string[];
  allowUnauthenticated?: boolean;
  context?: number;
  servedModelName: string[];
  cors: string[];
  maxSteerValue: number;
}

export function serveCommand(): Command {
  const cmd = new Command('serve').description(
    'serve steered generation: OpenAI-compatible /v1/completions and /v1/chat/completions with a per-request "steer" field, and a playground at /',
  );
  addModelFlags(cmd);
  addSteerFlags(cmd);
  return (
    cmd
      .option('--host <addr>', 'address to listen on (0.0.0.0 exposes the server to the network)', DEFAULTS.host)
      .option('--port <n>', 'port (0 = any free one)', intOption('--port', 0, 65535), DEFAULTS.port)
      .option(
        '--max-batch <n>',
        'rows (choices) decoded together',
        intOption('--max-batch', 1, 1024),
        DEFAULTS.maxBatch,
      )
      .option(
        '--context <n>',
        `tokens per request, prompt + new (default: the model's, at most ${DEFAULTS.maxContext}); sizes the KV cache`,
        intOption('--context', 2, 1_000_000),
      )
      .option(
        '--max-tokens-limit <n>',
        'largest max_tokens a request may ask for (default: the context)',
        intOption('--max-tokens-limit', 1, 1_000_000),
      )
      .option(
        '--max-queue <n>',
        'requests waiting for a slot before new ones get 429',
        intOption('--max-queue', 0, 1_000_000),
        DEFAULTS.maxQueue,
      )
      .option(
        '--timeout-ms <n>',
        'per-request time limit, queue wait included (0 = none); past it: 504',
        intOption('--timeout-ms', 0, 2 ** 31 - 1),
        DEFAULTS.timeoutMs,
      )
      .option(
        '--max-body-bytes <n>',
        'largest request body; bigger: 413',
        intOption('--max-body-bytes', 64, 2 ** 31 - 1),
        DEFAULTS.maxBodyBytes,
      )
      .option(
        '--api-key-file <file>',
        'require "Authorization: Bearer KEY" on /v1/* and /metrics, KEY being the first line of FILE (or set LMSTEER_API_KEY)',
      )
      // On the command line a key is visible to every user in `ps`: refused, with the alternatives.
      .addOption(new Option('--api-key <key>').hideHelp())
      .option(
        '--allow-host <name>',
        'accept requests addressed to this host name (repeatable; "*" = any); loopback names and IP addresses always are',
        collect,
        [],
      )
      .option(
        '--allow-steer-load <dirs...>',
        'let clients load steers (POST /v1/steers) from folders under these; off by default',
      )
      .option('--allow-unauthenticated', 'listen on a non-loopback --host without an API key (anyone there can use it)')
      .option(
        '--served-model-name <name>',
        'the name clients give as "model" and see in responses (repeatable: aliases; default: --model as given)',
        collect,
        [],
      )
      .option(
        '--cors <origin>',
        'let web pages at this origin (scheme://host[:port]; "*" = any) call the API: CORS headers and preflights (repeatable)',
        collect,
        [],
      )
      .option(
        '--max-steer-value <v>',
        'largest |value| a request (or --value) may give a steer slot',
        floatOption('--max-steer-value', Number.MIN_VALUE, 1e6),
        DEFAULTS.maxSteerValue,
      )
      .addHelpText(
        'after',
        `
Steers: --steer DIR loads a steer folder; --value name=v sets the server's default for a slot. A request's
"steer": {"name": v} overrides the slots it names (0 turns one off). DELETE /v1/steers/NAME unloads a steer
while serving, and, with --allow-steer-load ROOT, POST /v1/steers {"path": DIR} loads one from under ROOT:
running requests finish first (drain), then the new set takes over.

Access: requests addressed to another host name than localhost or an IP address (DNS rebinding), and
browser requests from other origins (unless listed with --cors), are refused (403). Off loopback, an API key
is required.

OpenAI fields: completions and chat with n, stop, seed, stream (+ include_usage), max_tokens, temperature,
top_p, presence_penalty, frequency_penalty, logprobs (+ top_logprobs for chat), completions' echo; extensions
top_k, min_tokens, repetition_penalty, steer. Sampling defaults come from the model's generation_config.json.

Chat: the model's chat_template (tokenizer_config.json) when it has one; otherwise "User: …\\nAssistant:" lines,
stopping at "\\nUser:".

Example:
  lmsteer serve --model stories260K --steer runs/sentiment --port 8080
  curl localhost:8080/v1/completions -d '{"prompt": "Once upon a time", "max_tokens": 32, "steer": {"sentiment": 4}}'`,
      )
      .action(async (flags: ServeFlags) => run(flags))
  );
}

function apiKey(flags: ServeFlags): string | undefined {
  if (flags.apiKey !== undefined) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      '--api-key would show the key to every user of this machine (ps, /proc)',
      'put the key in a file and pass --api-key-file FILE, or set LMSTEER_API_KEY',
    );
  }
  let key = process.env.LMSTEER_API_KEY;
  if (flags.apiKeyFile !== undefined) {
    const text = readTextFile(flags.apiKeyFile, FILE_LIMITS.text, '--api-key-file');
    key = text.split(/\r?\n/)[0];
  }
  if (key !== undefined && key.trim() === '') {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `the API key (${flags.apiKeyFile !== undefined ? flags.apiKeyFile : 'LMSTEER_API_KEY'}) is empty`,
      'an empty key would turn authentication off; give a real key, or unset LMSTEER_API_KEY',
    );
  }
  return key?.trim();
}

async function run(flags: ServeFlags): Promise<void> {
  const key = apiKey(flags);
  const model = await openModel(flags);
  try {
    const steers = SteerSet.load(model, flags.steer, parseValues(flags.value), {
      force: flags.force,
      maxValue: flags.maxSteerValue,
    });
    const local = await locateModelSpec(flags.model, { offline: true }).catch(() => undefined);
    const server = await startServer(model, steers, {
      host: flags.host,
      port: flags.port,
      maxBatch: flags.maxBatch,
      context: flags.context,
      maxTokensLimit: flags.maxTokensLimit,
      maxQueue: flags.maxQueue,
      timeoutMs: flags.timeoutMs,
      maxBodyBytes: flags.maxBodyBytes,
      apiKey: key,
      allowHosts: flags.allowHost,
      allowSteerLoad: flags.allowSteerLoad,
      allowUnauthenticated: flags.allowUnauthenticated,
      servedModelNames: flags.servedModelName,
      cors: flags.cors,
      chatTemplate: loadChatTemplate(local?.dir),
    });
    if (server.generationNotes.length > 0)
      process.stderr.write(
        `lmsteer serve: request defaults from the model's generation_config.json: ${server.generationNotes.join('; ')}\n`,
      );
    if (flags.cors.includes('*') && !key)
      process.stderr.write(
        'lmsteer serve: warning: --cors "*" without an API key lets any web page you visit use this server\n',
      );
    const names = steers.names();
    process.stderr.write(
      `lmsteer serve: ${model.id} at ${server.url}  (playground: ${server.url}/, API: ${server.url}/v1)\n` +
        `  steers: ${names.length ? names.join(', ') : '(none)'}; batch ${flags.maxBatch}; ${key ? 'API key required' : 'no API key'}; ` +
        `weights ${model.build ? describeBuild(model.build) : 'as exported'}\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.stderr.write('lmsteer serve: shutting down\n');
        void server.close().then(resolve);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  } finally {
    model.close();
  }
}
