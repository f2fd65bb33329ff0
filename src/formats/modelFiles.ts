/**
 * Local model resolution: which files on disk make a model, and loading its config + weights. Hub ids are
 * resolved elsewhere (download, then `locateModel` on the downloaded folder). Tokenizers load in src/tokenizer/.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LmSteerError } from '../util/errors.js';
import type { WeightStore } from './weights.js';
import { readGenerationConfig, readModelConfig } from './hfConfig.js';
import { openSafetensorsModel } from './safetensors.js';
import { openLlama2c } from './llama2c.js';

export type LocalModel =
  | {
      kind: 'hf';
      dir: string;
      configPath: string;
      generationConfigPath?: string;
      tokenizerJsonPath?: string;
      tokenizerConfigPath?: string;
    }
  | { kind: 'llama2c'; dir: string; modelPath: string; tokenizerPath: string }
  | { kind: 'onnx'; dir: string; onnxPaths: string[]; tokenizerJsonPath?: string };

export interface LoadedWeights {
  /** config.json as a raw object (llama2.c: the equivalent LlamaConfig). */
  config: Record<string, unknown>;
  generationConfig?: Record<string, unknown>;
  /** Keeps the model file(s) open; `close()` when done with the model. */
  weights: WeightStore & { close(): void };
}

const MODEL_HINT =
  'a model is a folder with config.json + model.safetensors (or model.safetensors.index.json + shards) and ' +
  'tokenizer.json, a folder with llama2.c model.bin + tokenizer.bin, the path of a llama2.c .bin checkpoint ' +
  'with tokenizer.bin beside it, or an ONNX export: a folder with config.json + tokenizer.json and model.onnx ' +
  '(or onnx/model.onnx) but no safetensors, or the .onnx file itself (which also picks the export in a folder ' +
  'that has safetensors too)';

function isFile(p: string): boolean {
  return existsSync(p) && statSync(p).isFile();
}

function optional(p: string): string | undefined {
  return isFile(p) ? p : undefined;
}

/** tokenizer.bin or tok*.bin: llama2.c's tokenizer file names (tokenizer.bin, tok512.bin, tok4096.bin). */
function isL2cTokenizerName(name: string): boolean {
  return name.endsWith('.bin') && name.startsWith('tok');
}

function listFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new LmSteerError(
      'NOT_FOUND',
      `cannot list ${dir}: ${(e as Error).message}`,
      'check the path and its permissions',
    );
  }
  return names.filter((f) => isFile(join(dir, f))).sort();
}

/** The tokenizer beside a llama2.c checkpoint: tokenizer.bin, else the only tok*.bin. */
function l2cTokenizerBeside(modelPath: string): string {
  const dir = dirname(modelPath);
  if (isFile(join(dir, 'tokenizer.bin'))) return join(dir, 'tokenizer.bin');
  const toks = listFiles(dir).filter(isL2cTokenizerName);
  if (toks.length === 1) return join(dir, toks[0]);
  if (toks.length > 1) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `several llama2.c tokenizers beside ${modelPath}: ${toks.join(', ')}`,
      'keep one, or name the right one tokenizer.bin',
    );
  }
  throw new LmSteerError(
    'NOT_FOUND',
    `no llama2.c tokenizer.bin (or tok*.bin) beside ${modelPath}`,
    'put the tokenizer.bin the model was trained with in the same folder',
  );
}

function hfModel(dir: string): LocalModel {
  return {
    kind: 'hf',
    dir,
    configPath: join(dir, 'config.json'),
    generationConfigPath: optional(join(dir, 'generation_config.json')),
    tokenizerJsonPath: optional(join(dir, 'tokenizer.json')),
    tokenizerConfigPath: optional(join(dir, 'tokenizer_config.json')),
  };
}

function l2cModel(modelPath: string): LocalModel {
  return { kind: 'llama2c', dir: dirname(modelPath), modelPath, tokenizerPath: l2cTokenizerBeside(modelPath) };
}

/** Find the model a local path names (a folder or a model file); NOT_FOUND with what a model needs otherwise. */
export function locateModel(spec: string): LocalModel {
  const path = resolve(spec);
  if (!existsSync(path)) throw new LmSteerError('NOT_FOUND', `model path ${path} does not exist`, MODEL_HINT);
  const st = statSync(path);
  if (st.isFile()) return locateFile(path);
  if (!st.isDirectory())
    throw new LmSteerError('BAD_ARGUMENT', `model path ${path} is neither a folder nor a regular file`, MODEL_HINT);

  const dir = path;
  const files = listFiles(dir);
  if (isFile(join(dir, 'config.json'))) {
    // A folder with safetensors runs lmsteer's own graph; one with only an ONNX export (transformers.js repos,
    // optimum output) runs the export. Pass the .onnx file to pick the export where both are present.
    const onnx = onnxPathsIn(dir, files);
    const safetensors = files.some((f) => f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json'));
    return !safetensors && onnx.length > 0 ? onnxModel(dir, onnx) : hfModel(dir);
  }
  if (files.includes('model.bin')) return l2cModel(join(dir, 'model.bin'));
  const checkpoints = files.filter((f) => f.endsWith('.bin') && !isL2cTokenizerName(f));
  if (checkpoints.length === 1) return l2cModel(join(dir, checkpoints[0]));
  if (checkpoints.length > 1) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${dir} has several .bin checkpoints (${checkpoints.join(', ')}) and no model.bin or config.json`,
      'pass the path of the checkpoint to use',
    );
  }
  const onnxPaths = onnxPathsIn(dir, files);
  if (onnxPaths.length > 0) return onnxModel(dir, onnxPaths);
  throw new LmSteerError(
    'NOT_FOUND',
    `${dir} holds no model (no config.json, llama2.c .bin or .onnx file)`,
    MODEL_HINT,
  );
}

/** ONNX exports keep their graphs at the top or in onnx/ (optimum, transformers.js layouts). */
function onnxPathsIn(dir: string, files: string[]): string[] {
  return [
    ...files.filter((f) => f.endsWith('.onnx')).map((f) => join(dir, f)),
    ...(existsSync(join(dir, 'onnx')) && statSync(join(dir, 'onnx')).isDirectory()
      ? listFiles(join(dir, 'onnx'))
          .filter((f) => f.endsWith('.onnx'))
          .map((f) => join(dir, 'onnx', f))
      : []),
  ];
}

/** `dir` is where config.json and tokenizer.json are: the .onnx file's folder, or its parent for onnx/*.onnx. */
function onnxModel(dir: string, onnxPaths: string[]): LocalModel {
  return { kind: 'onnx', dir, onnxPaths, tokenizerJsonPath: optional(join(dir, 'tokenizer.json')) };
}

function locateFile(path: string): LocalModel {
  const name = basename(path);
  if (name === 'config.json' || name.endsWith('.safetensors') || name.endsWith('.safetensors.index.json')) {
    return locateModel(dirname(path)); // a file of an HF folder names its folder
  }
  if (name.endsWith('.onnx')) {
    const here = dirname(path);
    const up = dirname(here);
    return onnxModel(
      !isFile(join(here, 'config.json')) && basename(here) === 'onnx' && isFile(join(up, 'config.json')) ? up : here,
      [path],
    );
  }
  if (name.endsWith('.bin')) {
    if (isL2cTokenizerName(name)) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `${path} is a llama2.c tokenizer, not a model`,
        'pass the model checkpoint (e.g. model.bin) or its folder',
      );
    }
    // pytorch_model*.bin belongs to an HF folder (whose weight loading says what to do about it).
    if (name.startsWith('pytorch_model') && isFile(join(dirname(path), 'config.json'))) return hfModel(dirname(path));
    return l2cModel(path);
  }
  throw new LmSteerError(
    'BAD_ARGUMENT',
    `${path} is not a model file (expected a folder, a llama2.c .bin or an .onnx file)`,
    MODEL_HINT,
  );
}

/** Read a located model's config and open its weights. */
export function loadWeights(local: LocalModel): LoadedWeights {
  switch (local.kind) {
    case 'hf': {
      const config = readModelConfig(local.dir);
      const generationConfig = readGenerationConfig(local.dir);
      return { config, generationConfig, weights: openSafetensorsModel(local.dir) };
    }
    case 'llama2c': {
      const { config, weights } = openLlama2c(local.modelPath);
      return { config, weights };
    }
    case 'onnx':
      throw new LmSteerError(
        'UNSUPPORTED',
        `${local.dir} is an ONNX export (${local.onnxPaths.map((p) => basename(p)).join(', ')}); its weights cannot be read as a checkpoint`,
        'load it with loadModel (which runs the export), or use the original Hugging Face folder (config.json + model.safetensors)',
      );
  }
}
