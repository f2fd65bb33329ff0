/**
 * Hugging Face JSON side files of a model folder: config.json (required) and generation_config.json
 * (optional). Returned raw; src/models/config.ts turns config.json into a DecoderConfig.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LmSteerError } from '../util/errors.js';
import { readJsonFile as readJson } from './safeRead.js';

/**
 * Parse the JSON file at `path`; `what` names it in errors ("config.json of model X", "steer file"). Only a
 * regular file of at most FILE_LIMITS.json bytes (safeRead.ts); parse errors never quote the content.
 */
export function readJsonFile(path: string, what: string): unknown {
  return readJson(path, { what, hint: 'fix the file or download it again' });
}

function asObject(v: unknown, path: string, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new LmSteerError(
      'BAD_FILE',
      `${what} ${path} must hold a JSON object, got ${Array.isArray(v) ? 'an array' : String(v === null ? 'null' : typeof v)}`,
      'download the file again',
    );
  }
  return v as Record<string, unknown>;
}

/** config.json of a model folder, as a raw object with a string model_type. */
export function readModelConfig(dir: string): Record<string, unknown> {
  const path = join(dir, 'config.json');
  const config = asObject(readJsonFile(path, 'model config'), path, 'model config');
  if (typeof config.model_type !== 'string' || config.model_type === '') {
    throw new LmSteerError(
      'BAD_FILE',
      `model config ${path} has no string "model_type" (got ${JSON.stringify(config.model_type)})`,
      'use a transformers config.json; it names the architecture in model_type (e.g. "llama", "gpt2")',
    );
  }
  return config;
}

/** generation_config.json of a model folder, or undefined when the folder has none. */
export function readGenerationConfig(dir: string): Record<string, unknown> | undefined {
  const path = join(dir, 'generation_config.json');
  if (!existsSync(path)) return undefined;
  return asObject(readJsonFile(path, 'generation config'), path, 'generation config');
}
