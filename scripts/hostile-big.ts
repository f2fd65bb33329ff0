/**
 * The hardening issue's (#15) reproductions at full size, through the real CLI, each under /usr/bin/time:
 * gigabyte zip entries, 200 MB lines, 600 MB files, 2^31 layers, /dev/zero and FIFOs, 60,000-character
 * tokens, 100 KB command lines, a 900 KB request against /health. Opt-in (minutes, ~1.5 GB of temp files):
 *
 *   npm run hostile:big [-- NAME-FILTER]
 *
 * Prints one row per case (exit code, peak RSS, seconds, first line of stderr) and fails when a case exits
 * other than expected, shows a stack trace, peaks above 500 MB or runs past 60 s. Needs ../shared.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  createWriteStream,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { unzipSync } from 'fflate';
import { torchSave } from '../test/helpers/torchSave.js';
import { SHARED_DIR } from '../test/helpers/shared.js';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'lmsteer.mjs');
const HF = join(SHARED_DIR, 'models', 'stories260K', 'hf');
const L2C = join(SHARED_DIR, 'models', 'stories260K', 'llama2c');
const PT = join(SHARED_DIR, 'steers', 'reference-format', 'stories260K-sample.pt');
const MAX_RSS_MB = 500;
const MAX_S = 60;

const work = mkdtempSync(join(tmpdir(), 'lmsteer-hostile-big-'));
const at = (...p: string[]) => join(work, ...p);
const filter = process.argv[2];

interface Row {
  name: string;
  code: number | null;
  rssMb: number;
  seconds: number;
  line: string;
  ok: boolean;
}
const rows: Row[] = [];

/** Run the CLI under /usr/bin/time; `expect` is the exit code the case must give. */
function cli(name: string, args: string[], expect: number, env: Record<string, string> = {}): void {
  if (filter && !name.includes(filter)) return;
  const timeFile = at(`time-${rows.length}.txt`);
  const r = spawnSync('/usr/bin/time', ['-f', '%M %e', '-o', timeFile, process.execPath, BIN, ...args], {
    env: { ...process.env, LMSTEER_CACHE: at('cache'), ...env },
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 1 << 26,
  });
  const [kb, s] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  const rssMb = Math.round(kb! / 1024);
  const stack = /\n\s+at /.test(r.stderr);
  const line = (r.stderr.split('\n').find((l) => l.trim()) ?? r.stdout.split('\n')[0] ?? '').slice(0, 110);
  const ok = r.status === expect && !stack && rssMb < MAX_RSS_MB && s! < MAX_S;
  rows.push({ name, code: r.status, rssMb, seconds: s!, line, ok });
  process.stderr.write(`${ok ? 'ok  ' : 'FAIL'} ${name}: exit ${r.status}, ${rssMb} MB, ${s} s — ${line}\n`);
}

/** A zip (stored entries + deflated ones given as already-compressed bytes), written by hand. */
function zipFile(
  path: string,
  entries: { name: string; data?: Uint8Array; deflated?: { bytes: Buffer; size: number; crc: number } }[],
): void {
  const out = createWriteStream(path);
  const central: Buffer[] = [];
  let offset = 0;
  const write = (b: Buffer) => (out.write(b), (offset += b.length));
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const body = e.deflated ? e.deflated.bytes : Buffer.from(e.data!);
    const size = e.deflated ? e.deflated.size : body.length;
    const crc = e.deflated ? e.deflated.crc : crc32(body);
    const method = e.deflated ? 8 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size >>> 0, 22);
    local.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(method, 10);
    cd.writeUInt32LE(crc >>> 0, 16);
    cd.writeUInt32LE(body.length, 20);
    cd.writeUInt32LE(size >>> 0, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(offset, 42);
    central.push(cd, name);
    write(local);
    write(name);
    write(body);
  }
  const cdStart = offset;
  const cdBytes = Buffer.concat(central);
  write(cdBytes);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBytes.length, 12);
  end.writeUInt32LE(cdStart, 16);
  out.end(end);
}

/** `size` zero bytes deflated, built 64 MiB at a time (the zeros never exist at once). */
function deflatedZeros(size: number): { bytes: Buffer; size: number; crc: number } {
  const chunk = Buffer.alloc(64 << 20);
  let crc = 0;
  for (let done = 0; done < size; done += chunk.length)
    crc = crc32(chunk.subarray(0, Math.min(chunk.length, size - done)), crc);
  // one deflate stream over the whole size: deflate of repeated chunks concatenated as non-final blocks
  const parts: Buffer[] = [];
  // (raw deflate streams from fresh compressors concatenate: no back-reference crosses a boundary)
  const blockOf = deflateRawSync(chunk, { finishFlush: 2 /* Z_SYNC_FLUSH: no final block */ });
  const last = deflateRawSync(chunk.subarray(0, size % chunk.length || chunk.length));
  for (let done = chunk.length; done < size; done += chunk.length) parts.push(blockOf);
  parts.push(last);
  return { bytes: Buffer.concat(parts), size, crc };
}

function hfCopy(dir: string, config: Record<string, unknown> = {}): string {
  mkdirSync(dir, { recursive: true });
  for (const f of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'])
    copyFileSync(join(HF, f), join(dir, f));
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({ ...JSON.parse(readFileSync(join(HF, 'config.json'), 'utf8')), ...config }),
  );
  return dir;
}

function l2cCopy(dir: string, index: number, value: number, v1 = false): string {
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(L2C, 'tokenizer.bin'), join(dir, 'tokenizer.bin'));
  if (!v1) {
    const b = readFileSync(join(L2C, 'model.bin'));
    b.writeInt32LE(value, 4 * index);
    writeFileSync(join(dir, 'model.bin'), b);
  } else {
    const [d, hid, L, H, kv, V] = [64, 172, 5, 8, 4, 512];
    const kvDim = (d / H) * kv;
    const b = Buffer.alloc(256 + 4 * (2 * L * d + d + V * d + L * (2 * d * d + 2 * kvDim * d) + L * 3 * hid * d));
    b.writeUInt32LE(0x616b3432, 0);
    b.writeInt32LE(1, 4);
    [d, hid, L, H, kv, V, 512].forEach((v, i) => b.writeInt32LE(v, 8 + 4 * i));
    b.writeInt32LE(value, 8 + 4 * index);
    b.writeUInt8(1, 36);
    writeFileSync(join(dir, 'model.bin'), b);
  }
  return join(dir, 'model.bin');
}

function bigFile(path: string, head: string, fill: string, bytes: number, tail: string): void {
  const chunk = Buffer.from(fill.repeat(Math.ceil((1 << 20) / fill.length)).slice(0, 1 << 20));
  const fd = createWriteStream(path);
  fd.write(head);
  for (let done = 0; done < bytes; done += chunk.length) fd.write(chunk);
  fd.end(tail);
}

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 500)); // let write streams flush
}

// ---------------------------------------------------------------------------------------------------------

const model = HF;
const steer = join(ROOT, 'steers', 'stories260K-sentiment');

writeFileSync(at('small.txt'), 'a happy day\na sad day\n'.repeat(20));

// 1. long command lines
cli(
  'argv: generate with a 100 KB --stop',
  ['generate', '--model', model, '--prompt', 'Once', '-n', '4', '-t', '0', '--stop', 'x'.repeat(100_000)],
  0,
);
cli('argv: inspect --prompt of 40 KB', ['inspect', '--model', model, '--prompt', 'good '.repeat(8000)], 2);
cli(
  'argv: --value "a=<60 KB>"',
  ['generate', '--model', model, '--prompt', 'Once', '--steer', steer, '--value', `a=${'1'.repeat(60_000)}`],
  2,
);

// 2. memory bombs in steer import --pt
{
  const entries = Object.entries(unzipSync(readFileSync(PT))).map(([name, data]) => ({ name, data }));
  const zeros = deflatedZeros(1 << 30);
  zipFile(at('bomb-entries.pt'), [
    ...entries,
    { name: 'archive/extra0', deflated: zeros },
    { name: 'archive/extra1', deflated: zeros },
    { name: 'archive/extra2', deflated: zeros },
  ]);
  const args = { epsilon: 0.001 };
  const spec = {
    key: '0',
    storage: 'FloatStorage' as const,
    numel: 4,
    offset: 0,
    size: [1, 64, 50_000_000],
    stride: [0, 0, 0],
    parameter: false,
  };
  writeFileSync(
    at('stride0.pt'),
    torchSave(args, [spec, { ...spec, key: '1', size: [1, 2, 2], stride: [4, 2, 1] }], {
      '0': new Uint8Array(16),
      '1': new Uint8Array(16),
    }),
  );
  const long4 = Buffer.alloc(1 + 4 + (1 << 20) + 1);
  long4[0] = 0x8b;
  long4.writeInt32LE(1 << 20, 1);
  long4[long4.length - 1] = 0x2e;
  zipFile(at('long4.pt'), [
    { name: 'archive/data.pkl', data: long4 },
    { name: 'archive/version', data: Buffer.from('3\n') },
  ]);
}
await settle();
cli(
  'pt: 3 × 1 GiB zero entries not referenced (imports)',
  ['steer', 'import', '--model', model, '--pt', at('bomb-entries.pt'), '--out', at('imported')],
  0,
);
cli(
  'pt: size [1,64,5e7] stride [0,0,0]',
  ['steer', 'import', '--model', model, '--pt', at('stride0.pt'), '--out', at('s0')],
  2,
);
cli('pt: 1 MB LONG4 integer', ['steer', 'import', '--model', model, '--pt', at('long4.pt'), '--out', at('l4')], 2);

// 4. sizes
cli(
  'config: num_hidden_layers 1e9',
  ['inspect', '--model', hfCopy(at('layers'), { num_hidden_layers: 1e9 }), '--ids', '1'],
  2,
);
cli(
  'config: mistral 2e9 layers',
  ['inspect', '--model', hfCopy(at('mistral'), { model_type: 'mistral', num_hidden_layers: 2e9 }), '--ids', '1'],
  2,
);
cli(
  'config: max_position_embeddings 2^40',
  ['inspect', '--model', hfCopy(at('pos'), { max_position_embeddings: 2 ** 40 }), '--ids', '1'],
  2,
);
cli('llama2.c: n_layers 2^31-1', ['inspect', '--model', l2cCopy(at('l2c-a'), 2, 2 ** 31 - 1), '--ids', '1'], 2);
cli('llama2.c: n_layers 1e6', ['inspect', '--model', l2cCopy(at('l2c-b'), 2, 1e6), '--ids', '1'], 2);
cli('llama2.c v1: seq_len 1e8', ['inspect', '--model', l2cCopy(at('l2c-c'), 6, 1e8, true), '--ids', '1'], 2);
cli(
  'train --rank 1000000',
  ['train', '--model', model, '--data', `${at('none.txt')}:1`, '--out', at('r'), '--rank', '1000000'],
  2,
);

// 5. training data
if (!filter || 'data'.includes(filter) || filter.startsWith('data')) {
  bigFile(at('line.jsonl'), '{"text": "', 'happy ', 200 << 20, '", "label": 1}\n');
  bigFile(at('big.txt'), '', 'a happy little line\n', 600 << 20, '');
  await settle();
}
cli(
  'data: a 200 MB JSONL line',
  ['train', '--model', model, '--data', at('line.jsonl'), '--out', at('t1'), '--steps', '1'],
  2,
);
cli(
  'data: a 600 MB .txt',
  ['train', '--model', model, '--data', `${at('big.txt')}:1`, '--out', at('t2'), '--steps', '1'],
  2,
);
rmSync(at('line.jsonl'), { force: true });
rmSync(at('big.txt'), { force: true });

// 9. special files, quadratic parsers
{
  const d = hfCopy(at('zero-tok'));
  rmSync(join(d, 'tokenizer.json'));
  symlinkSync('/dev/zero', join(d, 'tokenizer.json'));
  const g = hfCopy(at('fifo-gen'));
  rmSync(join(g, 'generation_config.json'));
  spawnSync('mkfifo', [join(g, 'generation_config.json')]);
  spawnSync('cp', ['-r', steer, at('zsteer')]);
  rmSync(at('zsteer', 'steer.json'));
  symlinkSync('/dev/zero', at('zsteer', 'steer.json'));
  symlinkSync('/dev/zero', at('zero.pt'));
  spawnSync('mkfifo', [at('fifo.pt')]);
  // a 512-token tokenizer.bin (so it fits the model) with four 60,000-character tokens
  const pieces = [
    '<unk>',
    '\n<s>\n',
    '\n</s>\n',
    ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`),
  ];
  for (let i = 0; pieces.length < 508; i++) pieces.push(`t${i}`);
  pieces.push('a'.repeat(60_000), 'b'.repeat(60_000), 'a'.repeat(30_000) + 'b'.repeat(30_000), 'c'.repeat(60_000));
  const parts = [Buffer.alloc(4)];
  parts[0]!.writeInt32LE(60_000);
  pieces.forEach((p, i) => {
    const b = Buffer.from(p);
    const h = Buffer.alloc(8);
    h.writeFloatLE(-i, 0);
    h.writeInt32LE(b.length, 4);
    parts.push(h, b);
  });
  mkdirSync(at('longtok'));
  copyFileSync(join(L2C, 'model.bin'), at('longtok', 'model.bin'));
  writeFileSync(at('longtok', 'tokenizer.bin'), Buffer.concat(parts));
}
cli('tokenizer.json -> /dev/zero', ['inspect', '--model', at('zero-tok'), '--ids', '1'], 2);
cli('generation_config.json is a FIFO', ['inspect', '--model', at('fifo-gen'), '--ids', '1'], 2);
cli(
  'steer.json -> /dev/zero',
  ['generate', '--model', model, '--prompt', 'Once', '-n', '2', '--steer', at('zsteer')],
  2,
);
cli('--pt -> /dev/zero', ['steer', 'import', '--model', model, '--pt', at('zero.pt'), '--out', at('z')], 2);
cli('--pt is a FIFO', ['steer', 'import', '--model', model, '--pt', at('fifo.pt'), '--out', at('f')], 2);
cli('tokenizer.bin with 60,000-character tokens (loads)', ['inspect', '--model', at('longtok'), '--ids', '1,2'], 0);

// 7, 10, 11, 12
cli('--model /dev/null', ['inspect', '--model', '/dev/null', '--ids', '1'], 2);
cli(
  'export-lora --value sentiment=1e308',
  ['steer', 'export-lora', '--model', model, '--steer', steer, '--value', 'sentiment=1e308', '--out', at('lora')],
  2,
);
cli(
  'train --out /etc/passwd',
  ['train', '--model', model, '--data', `${at('small.txt')}:1`, '--out', '/etc/passwd'],
  2,
);
cli(
  'train --out /proc/x',
  ['train', '--model', model, '--data', `${at('small.txt')}:1`, '--out', '/proc/x', '--steps', '1'],
  2,
);

// 11. two train runs into one --out: the second stops at once
if (!filter || 'lock'.includes(filter)) {
  const first = spawn(
    process.execPath,
    [
      BIN,
      'train',
      '--model',
      model,
      '--data',
      `${at('small.txt')}:1`,
      '--out',
      at('shared-out'),
      '--steps',
      '400',
      '--rank',
      '4',
    ],
    {
      env: { ...process.env, LMSTEER_CACHE: at('cache') },
      stdio: 'ignore',
    },
  );
  await new Promise((r) => setTimeout(r, 2500));
  cli(
    'a second train into the same --out',
    ['train', '--model', model, '--data', `${at('small.txt')}:1`, '--out', at('shared-out'), '--steps', '1'],
    2,
  );
  first.kill('SIGKILL');
}

// 8. one request must not freeze the server
if (!filter || 'server'.includes(filter)) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = spawn(process.execPath, [BIN, 'serve', '--model', model, '--port', String(port)], {
    env: { ...process.env, LMSTEER_CACHE: at('cache') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((r) => server.stderr!.on('data', (d) => String(d).includes('lmsteer serve:') && r()));
  const url = `http://127.0.0.1:${port}`;
  const body = JSON.stringify({ prompt: 'happy '.repeat(150_000), max_tokens: 1 });
  const t0 = performance.now();
  const big = fetch(`${url}/v1/completions`, { method: 'POST', body }).then(async (r) => ({
    status: r.status,
    text: await r.text(),
    s: (performance.now() - t0) / 1000,
  }));
  const health = await fetch(`${url}/health`).then(() => (performance.now() - t0) / 1000);
  const b = await big;
  const mid = JSON.stringify({ prompt: 'happy '.repeat(200), max_tokens: 1 }); // fits the context
  const t1 = performance.now();
  const m = fetch(`${url}/v1/completions`, { method: 'POST', body: mid }).then((r) => r.status);
  const h2 = await fetch(`${url}/health`).then(() => (performance.now() - t1) / 1000);
  const mStatus = await m;
  const ok = b.status === 400 && health < 1 && h2 < 1 && mStatus === 200;
  rows.push({
    name: 'server: 900 KB prompt vs /health',
    code: b.status,
    rssMb: 0,
    seconds: Math.round(Math.max(health, h2) * 100) / 100,
    line: `${b.status} in ${b.s.toFixed(2)} s; /health ${health.toFixed(3)} s, during a 1.2 KB prompt ${h2.toFixed(3)} s (${mStatus})`,
    ok,
  });
  process.stderr.write(`${ok ? 'ok  ' : 'FAIL'} server: ${rows.at(-1)!.line}\n`);
  server.kill('SIGTERM');
}

console.log('\n| case | exit | peak RSS MB | s | first line |\n|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.ok ? '' : '**FAIL** '}${r.name} | ${r.code} | ${r.rssMb} | ${r.seconds} | ${r.line.replace(/\|/g, '\\|')} |`,
  );
rmSync(work, { recursive: true, force: true });
process.exit(rows.every((r) => r.ok) ? 0 : 1);
