/**
 * Scale-out evaluation in one process: the protocol run locally, and again through an lmsteer server in two
 * shards (over a proxy that drops and refuses some requests, so retries happen), merged: the same
 * generations.jsonl bytes and the same report rows.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EndpointGenerator, apiRoot } from '../../src/eval/endpoint.js';
import { fluencyModelOf } from '../../src/eval/fluency.js';
import { mergeShards } from '../../src/eval/merge.js';
import { parseShard, runEval, type EvalOptions } from '../../src/eval/run.js';
import { GENERATIONS_FILE } from '../../src/eval/runFolder.js';
import { createScorer } from '../../src/eval/scorers/registry.js';
import { loadModel, type LoadedModel } from '../../src/runtime/loadModel.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import { LmSteerError } from '../../src/util/errors.js';
import { makeSteer, modelPath, skip } from '../server/fixtures.js';

let model: LoadedModel;
let server: RunningServer;
let proxy: Server;
let proxyUrl = '';
let tmp = '';
let steers: SteerSet;
let steerDir = '';
let seen = 0;

before(async () => {
  if (skip) return;
  model = await loadModel(modelPath(), { cacheDir: false, threads: 1 });
  tmp = mkdtempSync(join(tmpdir(), 'lmsteer-endpoint-'));
  steerDir = makeSteer(model, tmp, 'sentiment', 5);
  steers = SteerSet.load(model, [steerDir]);
  // The server's own default for the slot differs: requests name every slot, so it must not matter.
  server = await startServer(model, SteerSet.load(model, [steerDir], { sentiment: 7 }), { port: 0, maxBatch: 5 });
  // Every 4th completions request: a 503, then a dropped connection; the rest pass through.
  proxy = createServer((req, res) => {
    const n = req.url?.endsWith('/completions') ? seen++ : -1;
    if (n % 8 === 3)
      return void res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"error": {"message": "busy"}}');
    if (n % 8 === 7) return void req.socket.destroy();
    const up = request(`${server.url}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

after(async () => {
  if (skip) return;
  proxy.close();
  await server.close();
  model.close();
  rmSync(tmp, { recursive: true, force: true });
});

function options(outDir: string, promptsPath: string): EvalOptions {
  return {
    outDir,
    promptsPath,
    samples: 3,
    maxNewTokens: 8,
    topP: 0.9,
    topK: 50,
    temperature: 1,
    seed: 3,
    sweep: { name: 'sentiment', values: [-4, 4] },
    progress: false,
  };
}

test('parseShard and apiRoot', () => {
  assert.deepEqual(parseShard('1/3'), { index: 1, count: 3 });
  for (const bad of ['3/3', '1', '-1/2', 'a/b', '0/0']) assert.throws(() => parseShard(bad), LmSteerError, bad);
  assert.equal(apiRoot('http://127.0.0.1:8080'), 'http://127.0.0.1:8080/v1');
  assert.equal(apiRoot('http://h:1/openai/v1/'), 'http://h:1/openai/v1');
  assert.throws(() => apiRoot('ftp://h'), LmSteerError);
});

test(
  'two shards through an lmsteer server (with failures to retry), merged = the local run, byte for byte',
  { skip },
  async () => {
    const prompts = join(tmp, 'prompts.txt');
    writeFileSync(
      prompts,
      ['Once upon a time', 'The cat', 'Lily had a red ball.', 'One day', 'Tom was sad', 'The sun'].join('\n') + '\n',
    );
    const deps = async () => ({
      model,
      steers,
      steerDirs: [steerDir],
      scorer: await createScorer('vader'),
      fluency: fluencyModelOf(model),
      log: () => {},
    });
    const local = await runEval(options(join(tmp, 'local'), prompts), await deps());

    const generator = await EndpointGenerator.connect(
      { urls: [proxyUrl], concurrency: 3, backoffMs: 1 },
      { fingerprint: model.fingerprint(), steers: ['sentiment'] },
    );
    for (const index of [0, 1])
      await runEval(
        { ...options(join(tmp, `shard${index}`), prompts), shard: { index, count: 2 } },
        { ...(await deps()), generator },
      );
    assert.ok(seen > 8, 'failures were injected and retried');
    const merged = await mergeShards([join(tmp, 'shard1'), join(tmp, 'shard0')], join(tmp, 'merged'));

    for (const dir of ['unsteered', 'sentiment=-4', 'sentiment=4'])
      assert.equal(
        readFileSync(join(tmp, 'merged', dir, GENERATIONS_FILE), 'utf8'),
        readFileSync(join(tmp, 'local', dir, GENERATIONS_FILE), 'utf8'),
        dir,
      );
    assert.deepEqual(merged.report.rows, local.report.rows);
    const { generation, ...config } = merged.report.config!;
    assert.match(String(generation), /steer values in each request/);
    assert.deepEqual(config, local.report.config);

    // A shard folder is refused for another shard spec, and merge checks completeness and the set of shards.
    await assert.rejects(mergeShards([join(tmp, 'shard0')], join(tmp, 'm2')), /shard 1\/2 missing/);
    await assert.rejects(
      runEval(
        { ...options(join(tmp, 'shard0'), prompts), shard: { index: 0, count: 3 } },
        { ...(await deps()), generator },
      ),
      /shard\.count: 2 → 3/,
    );
    await assert.rejects(mergeShards([join(tmp, 'shard0'), join(tmp, 'shard1')], join(tmp, 'merged')), /already holds/);
  },
);

test('an endpoint that is not the model, lacks a steer, or ends samples early is refused', { skip }, async () => {
  await assert.rejects(
    EndpointGenerator.connect({ urls: [server.url] }, { fingerprint: 'emb1-other' }),
    (e: LmSteerError) => e.code === 'MODEL_MISMATCH',
  );
  await assert.rejects(
    EndpointGenerator.connect({ urls: [server.url] }, { steers: ['toxicity'] }),
    /no steer "toxicity"/,
  );
  await assert.rejects(
    EndpointGenerator.connect({ urls: [server.url], model: 'gpt-4' }),
    /does not serve model "gpt-4"/,
  );
  const g = await EndpointGenerator.connect({ urls: [server.url], adapter: 'sentiment_{value}', retries: 0 });
  await assert.rejects(
    g.generate(
      [{ ids: [1, 2], seed: 1 }],
      { label: 'sentiment=4', steer: {}, steerValue: 4, baseline: false },
      { samples: 1, maxNewTokens: 2, topP: 1, topK: 0, temperature: 1, seed: 0 },
      { onTokens: () => {} },
    ),
    /model "sentiment_4" is not served/,
  );
});
