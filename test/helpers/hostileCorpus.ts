/**
 * A small, deterministic corpus of hostile inputs, one or more per class of the hardening issue (#15): memory
 * bombs in .pt files, sizes trusted before they are checked, special files, quadratic parsers, lying files,
 * malformed requests. Each case is built in a temp folder from ../shared's stories260K (or from nothing) and
 * says what must happen: a user error (LmSteerError, optionally matching a message and never quoting certain
 * bytes) or success. test/cli/hostile.test.ts runs them in-process and a few through the CLI;
 * scripts/hostile-big.mjs builds the gigabyte versions.
 */
import { execFileSync } from 'node:child_process';
import { unzipSync, zipSync } from 'fflate';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { importReferenceCheckpoint, loadTorchBytes } from '../../src/formats/torchPt.js';
import { openLlama2c } from '../../src/formats/llama2c.js';
import { locateModel } from '../../src/formats/modelFiles.js';
import { openSafetensors } from '../../src/formats/safetensors.js';
import { makeDir } from '../../src/formats/outDir.js';
import { resolveHubModel } from '../../src/formats/hub.js';
import { loadModel } from '../../src/runtime/loadModel.js';
import { parseJsonBody } from '../../src/server/openai.js';
import { loraWeights } from '../../src/steer/lora.js';
import { loadSteer, saveSteer } from '../../src/steer/steerFile.js';
import { validateSteer } from '../../src/steer/steer.js';
import { loadTokenizer } from '../../src/tokenizer/load.js';
import { loadLlama2cTokenizer } from '../../src/tokenizer/llama2cTokenizer.js';
import { loadDataset } from '../../src/train/data.js';
import { intOption, parseValues } from '../../src/cli/options.js';
import { tensor } from '../../src/util/tensor.js';
import { randomSteer } from '../steer/randomSteer.js';
import { sharedPath } from './shared.js';
import { smallTensorSpec, torchSave, type TensorSpec } from './torchSave.js';

export interface HostileCase {
  /** The item number (1–12). */
  item: number;
  name: string;
  run: () => unknown;
  /** 'error': an LmSteerError whose message matches `message` (if given) and contains none of `never`. */
  expect: 'error' | 'ok';
  message?: RegExp;
  never?: string[];
  /** The same case through the CLI: argv after `lmsteer` (exit 2 expected for errors). */
  cli?: string[];
}

const HF = () => sharedPath('models/stories260K/hf')!;
const L2C = () => sharedPath('models/stories260K/llama2c')!;

/** A copy of stories260K/hf in `dir`, with config.json / generation_config.json fields replaced. */
function hfCopy(dir: string, config: Record<string, unknown> = {}, gen?: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  for (const f of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'])
    copyFileSync(join(HF(), f), join(dir, f));
  const cfg = { ...JSON.parse(readFileSync(join(HF(), 'config.json'), 'utf8')), ...config };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  if (gen) writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(gen));
  return dir;
}

/** A safetensors file from a header object (or raw header text) and data bytes. */
export function safetensorsBytes(header: unknown, data: Uint8Array): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

/** stories260K's llama2.c (v0) checkpoint with header int32 field `index` (0 dim … 6 seq_len) replaced. */
function l2cWithHeader(dir: string, index: number, value: number): string {
  mkdirSync(dir, { recursive: true });
  const b = readFileSync(join(L2C(), 'model.bin'));
  b.writeInt32LE(value, 4 * index);
  writeFileSync(join(dir, 'model.bin'), b);
  copyFileSync(join(L2C(), 'tokenizer.bin'), join(dir, 'tokenizer.bin'));
  return join(dir, 'model.bin');
}

/** A v1 llama2.c checkpoint of stories260K's shape (zero weights) whose seq_len is `seqLen`: v1 files hold no
 * RoPE tables, so seq_len is not bounded by the file size. */
function l2cV1(dir: string, seqLen: number): string {
  mkdirSync(dir, { recursive: true });
  const [d, hid, L, H, kv, V] = [64, 172, 5, 8, 4, 512];
  const kvDim = (d / H) * kv;
  const floats = 2 * L * d + d + V * d + L * (2 * d * d + 2 * kvDim * d) + L * 3 * hid * d;
  const b = Buffer.alloc(256 + 4 * floats);
  b.writeUInt32LE(0x616b3432, 0); // "ak42"
  b.writeInt32LE(1, 4);
  [d, hid, L, H, kv, V, seqLen].forEach((v, i) => b.writeInt32LE(v, 8 + 4 * i));
  b.writeUInt8(1, 36); // shared classifier
  writeFileSync(join(dir, 'model.bin'), b);
  copyFileSync(join(L2C(), 'tokenizer.bin'), join(dir, 'tokenizer.bin'));
  return join(dir, 'model.bin');
}

const ptArgs = { epsilon: 0.001, adaptor_class: 'multiply' };
const pt = (over: Partial<TensorSpec>, data: Record<string, Uint8Array> = {}) =>
  torchSave(ptArgs, [smallTensorSpec('0', over), smallTensorSpec('1')], {
    '0': new Uint8Array(16),
    '1': new Uint8Array(16),
    ...data,
  });

/** A llama2.c tokenizer.bin: max_token_length, then (score, length, bytes) per token. */
function tokenizerBin(pieces: string[]): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeInt32LE(Math.max(...pieces.map((p) => Buffer.byteLength(p))));
  parts.push(head);
  pieces.forEach((p, i) => {
    const b = Buffer.from(p);
    const h = Buffer.alloc(8);
    h.writeFloatLE(-i, 0);
    h.writeInt32LE(b.length, 4);
    parts.push(h, b);
  });
  return Buffer.concat(parts);
}

const steerFor = (d = 64) => randomSteer({ d, rank: 2, slots: ['on'], name: 'x', vocab: 512 });

/** Every case, its files made under `root`. Needs ../shared (stories260K). */
export function hostileCases(root: string): HostileCase[] {
  const at = (name: string) => join(root, name);
  const fifo = (path: string) => (execFileSync('mkfifo', [path]), path);
  const cases: HostileCase[] = [];
  const add = (c: HostileCase) => cases.push(c);

  // 2. memory bombs in .pt
  add({
    item: 2,
    name: 'pt: stride-0 view of 3.2 billion elements',
    expect: 'error',
    message: /more elements than its storage/,
    run: () => loadTorchBytes(pt({ size: [1, 64, 50_000_000], stride: [0, 0, 0] }), 'bomb.pt'),
  });
  add({
    item: 2,
    name: 'pt: storage entry inflating past what it holds',
    expect: 'error',
    message: /inflates to/,
    run: () => loadTorchBytes(zipSync(unzipSync(pt({}, { '0': new Uint8Array(1 << 20) })), { level: 6 }), 'big.pt'),
  });
  add({
    item: 7,
    name: 'pt: storage offset −64',
    expect: 'error',
    message: /offset -64/,
    run: () => loadTorchBytes(pt({ offset: -64 }), 'o.pt'),
  });
  add({
    item: 7,
    name: 'pt: size [1e6, 1e6, 1e6]',
    expect: 'error',
    run: () => loadTorchBytes(pt({ size: [1e6, 1e6, 1e6], stride: [1, 1, 1] }), 's.pt'),
  });
  add({
    item: 7,
    name: 'pt: OrderedDict called with an int',
    expect: 'error',
    message: /arguments it does not take/,
    run: () =>
      loadTorchBytes(ptWithPickle(Buffer.from('\x80\x02ccollections\nOrderedDict\nK\x05\x85R.', 'latin1')), 'od.pt'),
  });
  add({
    item: 7,
    name: 'pt: a list that contains itself',
    expect: 'error',
    run: () => {
      writeFileSync(at('self.pt'), ptWithPickle(Buffer.from('\x80\x02]q\x00h\x00a.', 'latin1')));
      return importReferenceCheckpoint(at('self.pt'));
    },
  });
  add({
    item: 9,
    name: 'pt: 1 MB LONG4 decodes (linear)',
    expect: 'ok',
    run: () => {
      const n = 1 << 20;
      const b = Buffer.alloc(5 + n + 1);
      b[0] = 0x8b;
      b.writeInt32LE(n, 1);
      b[5 + n] = 0x2e;
      return loadTorchBytes(ptWithPickle(b), 'long.pt');
    },
  });

  // 4. sizes trusted before they are checked
  add({
    item: 4,
    name: 'config: num_hidden_layers 1e9',
    expect: 'error',
    message: /num_hidden_layers.*above lmsteer's limit/,
    run: () => loadModel(hfCopy(at('layers'), { num_hidden_layers: 1e9 }), { cacheDir: false, threads: 1 }),
    cli: ['inspect', '--model', at('layers'), '--ids', '1'],
  });
  add({
    item: 4,
    name: 'config: mistral with 2e9 layers',
    expect: 'error',
    message: /above lmsteer's limit/,
    run: () =>
      loadModel(hfCopy(at('mistral'), { model_type: 'mistral', num_hidden_layers: 2e9 }), {
        cacheDir: false,
        threads: 1,
      }),
  });
  add({
    item: 4,
    name: 'config: max_position_embeddings 2^40',
    expect: 'error',
    message: /max_position_embeddings/,
    run: () =>
      loadModel(hfCopy(at('positions'), { max_position_embeddings: 2 ** 40 }), { cacheDir: false, threads: 1 }),
  });
  add({
    item: 4,
    name: 'config: dynamic rope factor 1e12 (dynamic NTK is refused by name)',
    expect: 'error',
    message: /"dynamic", a RoPE scaling lmsteer does not support/,
    run: () =>
      loadModel(hfCopy(at('rope'), { rope_scaling: { type: 'dynamic', factor: 1e12 } }), {
        cacheDir: false,
        threads: 1,
      }),
  });
  add({
    item: 4,
    name: 'llama2.c: n_layers 2^31−1',
    expect: 'error',
    message: /implies/,
    run: () => openLlama2c(l2cWithHeader(at('l2c-layers'), 2, 2 ** 31 - 1)),
    cli: ['inspect', '--model', at('l2c-layers'), '--ids', '1'],
  });
  add({
    item: 4,
    name: 'llama2.c: n_layers 1e6',
    expect: 'error',
    message: /implies/,
    run: () => openLlama2c(l2cWithHeader(at('l2c-1e6'), 2, 1e6)),
  });
  add({
    item: 9,
    name: 'llama2.c v1: seq_len 1e8',
    expect: 'error',
    message: /above lmsteer's limit/,
    run: () => loadModel(l2cV1(at('l2c-seq'), 1e8), { cacheDir: false, threads: 1 }),
  });
  for (const dtype of ['constructor', '__proto__', 'toString']) {
    add({
      item: 4,
      name: `safetensors: dtype "${dtype}"`,
      expect: 'error',
      message: /unknown dtype/,
      run: () => {
        writeFileSync(
          at(`dt-${dtype}.safetensors`),
          safetensorsBytes({ w: { dtype, shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
        );
        return openSafetensors(at(`dt-${dtype}.safetensors`));
      },
    });
  }
  add({
    item: 4,
    name: '--rank 1000000',
    expect: 'error',
    message: /--rank must be/,
    run: () => intOption('--rank', 1, 4096)('1000000'),
  });

  // 5. training data
  add({
    item: 5,
    name: 'data: a 5 MB JSONL line',
    expect: 'error',
    message: /:2: the line is/,
    run: () => {
      writeFileSync(at('line.jsonl'), `{"text":"a","label":1}\n{"text":"${'x'.repeat(5 << 20)}","label":0}\n`);
      return loadDataset([at('line.jsonl')]);
    },
  });

  // 6. lying files
  add({
    item: 6,
    name: 'safetensors: a tensor listed twice',
    expect: 'error',
    message: /"w" is listed twice/,
    run: () => {
      const h =
        '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
      writeFileSync(at('dup.safetensors'), safetensorsBytes(h, new Uint8Array(8)));
      return openSafetensors(at('dup.safetensors'));
    },
  });
  add({
    item: 6,
    name: 'config says 3 layers, checkpoint has 5',
    expect: 'error',
    message: /layer 3.*3 layers/,
    run: () => loadModel(hfCopy(at('three'), { num_hidden_layers: 3 }), { cacheDir: false, threads: 1 }),
  });
  add({
    item: 6,
    name: 'generation_config: eos outside the vocabulary',
    expect: 'error',
    message: /eos_token_id 100000, outside/,
    run: () => loadTokenizer({ kind: 'hf', dir: hfCopy(at('oov'), {}, { bos_token_id: 1, eos_token_id: 100000 }) }),
  });
  add({
    item: 6,
    name: 'tokenizer.json: unknown model type',
    expect: 'error',
    message: /"Quantum" is not supported/,
    run: () => {
      const dir = hfCopy(at('toktype'));
      const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
      tj.model.type = 'Quantum';
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tj));
      return loadTokenizer({ kind: 'hf', dir });
    },
  });
  add({
    item: 6,
    name: 'model weights holding NaN: named at load',
    expect: 'error',
    message: /tensor "model\.norm\.weight" .* holds NaN/,
    run: () => {
      const dir = hfCopy(at('nan'));
      const p = join(dir, 'model.safetensors');
      const b = readFileSync(p);
      const n = Number(b.readBigUInt64LE(0));
      const begin = JSON.parse(b.subarray(8, 8 + n).toString())['model.norm.weight'].data_offsets[0];
      b.writeFloatLE(NaN, 8 + n + begin);
      writeFileSync(p, b);
      return loadModel(dir, { cacheDir: false, threads: 1 });
    },
    cli: ['inspect', '--model', at('nan'), '--ids', '1'],
  });
  add({
    item: 6,
    name: 'steer eps 1e30',
    expect: 'error',
    message: /eps/,
    run: () => validateSteer({ ...steerFor(), config: { ...steerFor().config, eps: 1e30 } }),
  });
  add({
    item: 6,
    name: 'steer projector value 1e38',
    expect: 'error',
    message: /beyond/,
    run: () => {
      const s = steerFor();
      s.p1.data[3] = 1e38;
      return validateSteer(s);
    },
  });

  // 7. internal errors that must be user errors
  add({
    item: 7,
    name: 'JSON body nested 100,000 deep',
    expect: 'error',
    message: /nests deeper/,
    run: () => parseJsonBody('['.repeat(100_000) + ']'.repeat(100_000)),
  });
  add({
    item: 7,
    name: 'model.safetensors that is a folder',
    expect: 'error',
    message: /is a folder/,
    run: () => {
      const dir = at('stdir');
      mkdirSync(join(dir, 'model.safetensors'), { recursive: true });
      writeFileSync(join(dir, 'config.json'), readFileSync(join(HF(), 'config.json')));
      copyFileSync(join(HF(), 'tokenizer.json'), join(dir, 'tokenizer.json'));
      return loadModel(dir, { cacheDir: false, threads: 1 });
    },
  });
  add({
    item: 7,
    name: '--model /dev/null',
    expect: 'error',
    message: /neither a folder nor a regular file/,
    run: () => locateModel('/dev/null'),
    cli: ['inspect', '--model', '/dev/null', '--ids', '1'],
  });
  add({
    item: 7,
    name: '--out /etc/passwd',
    expect: 'error',
    message: /is a file, not a folder/,
    run: () => makeDir('/etc/passwd'),
  });
  add({
    item: 7,
    name: '--out /proc/x (used to hang)',
    expect: 'error',
    message: /cannot create/,
    run: () => makeDir('/proc/lmsteer-x'),
  });

  // 8. steer files that point elsewhere
  add({
    item: 8,
    name: 'steer.json linked to /etc/passwd',
    expect: 'error',
    message: /outside/,
    never: ['root:'],
    run: () => {
      const dir = at('leak');
      saveSteer(dir, steerFor());
      execFileSync('ln', ['-sf', '/etc/passwd', join(dir, 'steer.json')]);
      return loadSteer(dir);
    },
  });

  // 9. special files
  for (const [file, load] of [
    ['tokenizer.json', (dir: string) => loadTokenizer({ kind: 'hf', dir })],
    ['generation_config.json', (dir: string) => loadTokenizer({ kind: 'hf', dir })],
  ] as const) {
    add({
      item: 9,
      name: `${file} → /dev/zero`,
      expect: 'error',
      message: /not a regular file|a device/,
      run: () => {
        const dir = hfCopy(at(`zero-${file}`));
        execFileSync('ln', ['-sf', '/dev/zero', join(dir, file)]);
        return load(dir);
      },
    });
    add({
      item: 9,
      name: `${file} as a FIFO`,
      expect: 'error',
      message: /a FIFO/,
      run: () => {
        const dir = hfCopy(at(`fifo-${file}`));
        execFileSync('rm', [join(dir, file)]);
        fifo(join(dir, file));
        return load(dir);
      },
    });
  }
  add({
    item: 9,
    name: 'steer.json → /dev/zero',
    expect: 'error',
    run: () => {
      const dir = at('zsteer');
      saveSteer(dir, steerFor());
      execFileSync('ln', ['-sf', '/dev/zero', join(dir, 'steer.json')]);
      return loadSteer(dir);
    },
  });
  add({
    item: 9,
    name: 'steer.json as a FIFO',
    expect: 'error',
    message: /a FIFO/,
    run: () => {
      const dir = at('fsteer');
      saveSteer(dir, steerFor());
      execFileSync('rm', [join(dir, 'steer.json')]);
      fifo(join(dir, 'steer.json'));
      return loadSteer(dir);
    },
  });
  add({
    item: 9,
    name: '--pt → /dev/zero',
    expect: 'error',
    message: /a device/,
    run: () => {
      symlinkSync('/dev/zero', at('zero.pt'));
      return importReferenceCheckpoint(at('zero.pt'));
    },
  });
  add({
    item: 9,
    name: '--pt as a FIFO',
    expect: 'error',
    message: /a FIFO/,
    run: () => importReferenceCheckpoint(fifo(at('fifo.pt'))),
  });
  // The merge extraction took every prefix of every token: minutes for these four 60,000-character ones.
  add({
    item: 9,
    name: 'tokenizer.bin with 60,000-character tokens converts in linear time',
    expect: 'ok',
    run: () => {
      const pieces = [
        '<unk>',
        '\n<s>\n',
        '\n</s>\n',
        ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`),
      ];
      pieces.push(
        'a'.repeat(60_000),
        'b'.repeat(60_000),
        `${'a'.repeat(30_000)}${'b'.repeat(30_000)}`,
        'c'.repeat(59_999),
      );
      writeFileSync(at('long-ok.bin'), tokenizerBin(pieces));
      return loadLlama2cTokenizer(at('long-ok.bin'));
    },
  });

  // 10. corrupt output
  add({
    item: 10,
    name: 'LoRA export at a value that overflows',
    expect: 'error',
    message: /overflow float32/,
    run: () => loraWeights(steerFor(), [1e300], tensor([512, 64], new Float32Array(512 * 64).fill(1))),
  });
  add({
    item: 10,
    name: '--value sentiment=1e308',
    expect: 'error',
    message: /within/,
    run: () => parseValues(['sentiment=1e308']),
  });

  // 12. smaller
  add({
    item: 12,
    name: 'steer name with an ANSI escape',
    expect: 'error',
    message: /control characters/,
    run: () => validateSteer(randomSteer({ d: 8, rank: 1, slots: ['on'], name: 'evil\u001b[31m' })),
  });
  add({
    item: 12,
    name: 'hub revision "../.." on a short id',
    expect: 'error',
    message: /invalid revision/,
    run: () => resolveHubModel('stories260K@../..', { offline: true, cacheDir: at('hub') }),
  });
  add({ item: 12, name: '--value x=0x10', expect: 'error', message: /decimal/, run: () => parseValues(['x=0x10']) });
  add({
    item: 12,
    name: '{"steer":{"__proto__":5}}',
    expect: 'error',
    message: /__proto__/,
    run: () => parseJsonBody('{"prompt":"a","steer":{"__proto__":5}}'),
  });
  return cases;
}

/** A torch.save zip whose data.pkl is `pickle` (no storages). */
function ptWithPickle(pickle: Uint8Array): Uint8Array {
  return zipSync({ 'archive/data.pkl': pickle, 'archive/version': new TextEncoder().encode('3\n') }, { level: 0 });
}
