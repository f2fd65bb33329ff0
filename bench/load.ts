/**
 * Load test of `lmsteer serve` on loopback: N concurrent clients, each sending streaming completions with its
 * own random steer values and seed, back to back, for a fixed duration. Prints a table and writes
 * bench/results/load-<timestamp>.json: requests/s, tokens/s, latency and time-to-first-token percentiles.
 * Never asserts a time.
 *
 *   node --import tsx bench/load.ts [--duration 20] [--clients 16] [--max-tokens 64] [--max-batch 16]
 *                                   [--context N] [--model DIR] [--threads N] [--url http://127.0.0.1:8080]
 *
 * Without --url the server runs in a child process (this script with --child) over --model (default
 * ../shared/models/stories260K/hf, else the hub's stories260K) with two random steers bound to the model,
 * so the client loop and the server do not share an event loop.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    clients: { type: 'string', default: '16' },
    'max-tokens': { type: 'string', default: '64' },
    'max-batch': { type: 'string', default: '16' },
    context: { type: 'string' },
    model: { type: 'string' },
    threads: { type: 'string' },
    url: { type: 'string' },
    child: { type: 'boolean', default: false },
  },
});

function defaultModel(): string {
  const shared = resolve(repoRoot, '..', 'shared', 'models', 'stories260K', 'hf');
  return existsSync(shared) ? shared : 'stories260K';
}

// ---------------------------------------------------------------------------------------------------------
// The server (child process)

async function runChildServer(): Promise<void> {
  const { loadModel } = await import('../src/runtime/loadModel.js');
  const { saveSteer } = await import('../src/steer/steerFile.js');
  const { startServer } = await import('../src/server/server.js');
  const { SteerSet } = await import('../src/steer/steerSet.js');
  const model = await loadModel(args.model ?? defaultModel(), {
    threads: args.threads ? Number(args.threads) : undefined,
  });
  const tmp = mkdtempSync(join(tmpdir(), 'lmsteer-load-'));
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const d = model.cfg.hiddenSize;
  const dirs = ['sentiment', 'detox'].map((name) => {
    const r = 4;
    const t = () => ({
      dtype: 'float32' as const,
      shape: [1, d, r],
      data: Float32Array.from({ length: d * r }, () => rand() * 0.5),
    });
    const dir = join(tmp, name);
    saveSteer(dir, {
      config: {
        formatVersion: 1,
        name,
        baseModel: {
          id: model.id,
          embeddingFingerprint: model.fingerprint(),
          vocabSize: model.cfg.vocabSize,
          hiddenSize: d,
        },
        eps: 0.05,
        rank: r,
        slots: [{ name: 'on', defaultValue: 0 }],
      },
      p1: t(),
      p2: t(),
    });
    return dir;
  });
  const server = await startServer(model, SteerSet.load(model, dirs), {
    port: 0,
    maxBatch: Number(args['max-batch']),
    context: args.context ? Number(args.context) : undefined,
    maxQueue: 100_000,
    timeoutMs: 0,
  });
  process.stdout.write(`LISTENING ${server.url}\n`);
  process.on('SIGTERM', () => {
    void server.close().then(() => {
      model.close();
      rmSync(tmp, { recursive: true, force: true });
      process.exit(0);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// The clients

interface Sample {
  latencyMs: number;
  ttftMs: number;
  tokens: number;
}

async function oneRequest(url: string, body: unknown, deadline: number): Promise<Sample> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(Math.max(1000, deadline - Date.now() + 30_000)),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let ttft = -1;
  let tokens = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 2);
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const ev = JSON.parse(line.slice(6));
      if (ev.error) throw new Error(ev.error.message);
      if (ttft < 0 && ev.choices?.length) ttft = performance.now() - t0;
      if (ev.usage) tokens = ev.usage.completion_tokens;
    }
  }
  return { latencyMs: performance.now() - t0, ttftMs: ttft, tokens };
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

async function runLoad(url: string): Promise<void> {
  const durationS = Number(args.duration);
  const clients = Number(args.clients);
  const maxTokens = Number(args['max-tokens']);
  const prompts = [
    'Once upon a time',
    'The little dog',
    'Lily and Ben went to the park. They saw',
    'One day, a girl named Sue',
  ];
  const samples: Sample[] = [];
  const errors: string[] = [];
  const start = Date.now();
  const deadline = start + durationS * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let k = 0; Date.now() < deadline; k++) {
        const body = {
          prompt: prompts[(c + k) % prompts.length],
          max_tokens: maxTokens,
          min_tokens: maxTokens, // every request costs the same, so the numbers compare across runs
          temperature: 0.9,
          seed: c * 100_000 + k,
          steer: { sentiment: ((c * 7 + k) % 21) / 2 - 5, detox: ((c + k * 3) % 11) - 5 },
          stream: true,
          stream_options: { include_usage: true },
        };
        try {
          samples.push(await oneRequest(url, body, deadline));
        } catch (e) {
          errors.push((e as Error).message);
          if (errors.length > 50) return;
        }
      }
    }),
  );
  const wallS = (Date.now() - start) / 1000;
  const lat = samples.map((s) => s.latencyMs);
  const ttft = samples.map((s) => s.ttftMs).filter((x) => x >= 0);
  const tokens = samples.reduce((a, s) => a + s.tokens, 0);
  const result = {
    name: 'load',
    date: new Date().toISOString(),
    url,
    model: args.url ? undefined : (args.model ?? defaultModel()),
    cpus: cpus().length,
    settings: {
      durationS,
      clients,
      maxTokens,
      maxBatch: Number(args['max-batch']),
      context: args.context ? Number(args.context) : 'default',
    },
    requests: samples.length,
    errors: errors.length,
    firstErrors: errors.slice(0, 3),
    wallS: Number(wallS.toFixed(2)),
    requestsPerS: Number((samples.length / wallS).toFixed(2)),
    tokensPerS: Number((tokens / wallS).toFixed(1)),
    latencyMs: {
      p50: Math.round(pct(lat, 50)),
      p90: Math.round(pct(lat, 90)),
      p99: Math.round(pct(lat, 99)),
      max: Math.round(Math.max(...lat)),
    },
    ttftMs: { p50: Math.round(pct(ttft, 50)), p99: Math.round(pct(ttft, 99)) },
  };
  console.table({
    'requests/s': result.requestsPerS,
    'tokens/s': result.tokensPerS,
    'latency p50 ms': result.latencyMs.p50,
    'latency p99 ms': result.latencyMs.p99,
    'first token p50 ms': result.ttftMs.p50,
    'first token p99 ms': result.ttftMs.p99,
    requests: result.requests,
    errors: result.errors,
  });
  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `load-${result.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result));
  console.log(`wrote ${file}`);
}

// ---------------------------------------------------------------------------------------------------------

if (args.child) {
  await runChildServer();
} else if (args.url) {
  await runLoad(args.url.replace(/\/+$/, ''));
} else {
  const childArgs = ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', '--max-batch', args['max-batch']!];
  if (args.model) childArgs.push('--model', args.model);
  if (args.threads) childArgs.push('--threads', args.threads);
  if (args.context) childArgs.push('--context', args.context);
  const child = spawn(process.execPath, childArgs, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolveUrl, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the server did not start within 120 s')), 120_000);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /LISTENING (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]!);
      }
    });
    child.on('exit', (code) => reject(new Error(`the server exited with ${code}`)));
  });
  try {
    await runLoad(url);
  } finally {
    child.kill('SIGTERM');
  }
}
