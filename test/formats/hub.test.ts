import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  downloadRepoFiles,
  hubSettings,
  parseHubSpec,
  repoFolderName,
  resolveHubModel,
} from '../../src/formats/hub.js';
import { LmSteerError } from '../../src/util/errors.js';

// ---- a fake hub on 127.0.0.1: resolve URLs with the hub's headers, LFS files behind a second "CDN" server ----
const COMMIT = 'a'.repeat(39) + '1';
const COMMIT2 = 'b'.repeat(39) + '2';
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitOid = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

interface Repo {
  commit: string;
  files: Map<string, Buffer>;
  gated?: boolean;
}
const BIG = randomBytes(300_000);
const repos = new Map<string, Repo>();
const lfs = (path: string) => /\.(safetensors|bin)$/.test(path);
const blobsBySha = new Map<string, Buffer>();
function addRepo(name: string, files: Record<string, Buffer | string>, extra: Partial<Repo> = {}) {
  const m = new Map(Object.entries(files).map(([k, v]) => [k, Buffer.from(v)]));
  for (const [p, b] of m) if (lfs(p)) blobsBySha.set(sha256(b), b);
  repos.set(name, { commit: COMMIT, files: m, ...extra });
}
const tokJson = JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] } });
addRepo('org/model', {
  'config.json': '{"model_type":"llama"}',
  'tokenizer.json': tokJson,
  'model.safetensors': BIG,
  'sub/dir/notes.txt': 'hi',
});
addRepo('org/gated', { 'config.json': '{}' }, { gated: true });
addRepo('org/sharded', {
  'config.json': '{}',
  'tokenizer.json': tokJson,
  'tokenizer_config.json': '{}',
  'model.safetensors.index.json': JSON.stringify({
    metadata: {},
    weight_map: {
      a: 'model-00001-of-00002.safetensors',
      b: 'model-00002-of-00002.safetensors',
      c: 'model-00001-of-00002.safetensors',
    },
  }),
  'model-00001-of-00002.safetensors': randomBytes(1000),
  'model-00002-of-00002.safetensors': randomBytes(2000),
});
addRepo('org/notok', { 'config.json': '{}', 'model.safetensors': randomBytes(10) });
addRepo('karpathy/tinyllamas', {
  'stories260K/stories260K.bin': randomBytes(5000),
  'stories260K/tok512.bin': randomBytes(600),
});
const renamed = new Map([['oldname', 'org/model']]);

const state = {
  cutNext: 0,
  corrupt: false,
  fail500: false,
  plain404: false,
  log: [] as { server: string; method: string; url: string; range?: string; auth?: string }[],
};
let hub: Server;
let cdn: Server;
let endpoint = '';
let cdnBase = '';

function serveBytes(req: IncomingMessage, res: ServerResponse, data: Buffer, headers: Record<string, string> = {}) {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const from = m ? Number(m[1]) : 0;
  if (from > data.length) return void res.writeHead(416).end();
  const body = state.corrupt ? Buffer.concat([data.subarray(0, -1), Buffer.from([data[data.length - 1]! ^ 1])]) : data;
  res.writeHead(m ? 206 : 200, {
    ...headers,
    'content-length': String(data.length - from),
    'accept-ranges': 'bytes',
    ...(m ? { 'content-range': `bytes ${from}-${data.length - 1}/${data.length}` } : {}),
  });
  if (req.method === 'HEAD') return void res.end();
  const rest = body.subarray(from);
  if (state.cutNext > 0) {
    state.cutNext--;
    // send half, then drop the connection as a flaky network would
    res.write(rest.subarray(0, rest.length >> 1), () => setTimeout(() => res.socket?.destroy(), 30));
    return;
  }
  res.end(rest);
}

function hubHandler(req: IncomingMessage, res: ServerResponse) {
  state.log.push({
    server: 'hub',
    method: req.method!,
    url: req.url!,
    range: req.headers.range,
    auth: req.headers.authorization,
  });
  if (state.fail500) return void res.writeHead(500).end();
  const url = decodeURI(req.url!);
  const i = url.indexOf('/resolve/');
  const repoName = url.slice(1, i);
  const [rev, ...rest] = url.slice(i + '/resolve/'.length).split('/');
  const path = rest.join('/');
  const target = renamed.get(repoName);
  if (target) return void res.writeHead(307, { location: req.url!.replace(`/${repoName}/`, `/${target}/`) }).end();
  const repo = repos.get(repoName);
  const fail = (status: number, code?: string) =>
    res.writeHead(status, code && !state.plain404 ? { 'x-error-code': code } : {}).end();
  if (!repo) return void fail(state.plain404 ? 404 : 401, 'RepoNotFound');
  if (repo.gated && req.headers.authorization !== 'Bearer good') return void fail(401, 'GatedRepo');
  const commit =
    rev === 'v2'
      ? COMMIT2
      : rev === 'main' || rev === repo.commit
        ? repo.commit
        : rev === COMMIT2
          ? COMMIT2
          : undefined;
  if (!commit) return void fail(404, 'RevisionNotFound');
  const data = repo.files.get(path!);
  if (!data) return void fail(404, 'EntryNotFound');
  if (lfs(path!)) {
    const sha = sha256(data);
    return void res
      .writeHead(302, {
        location: `${cdnBase}/cdn/${sha}`,
        'x-repo-commit': commit,
        'x-linked-etag': `"${sha}"`,
        'x-linked-size': String(data.length),
        etag: `"${gitOid(Buffer.from('pointer'))}"`,
      })
      .end();
  }
  serveBytes(req, res, data, { 'x-repo-commit': commit, etag: `"${gitOid(data)}"` });
}

function cdnHandler(req: IncomingMessage, res: ServerResponse) {
  state.log.push({
    server: 'cdn',
    method: req.method!,
    url: req.url!,
    range: req.headers.range,
    auth: req.headers.authorization,
  });
  const data = blobsBySha.get(req.url!.slice('/cdn/'.length));
  if (!data) return void res.writeHead(404).end();
  serveBytes(req, res, data);
}

const listen = (s: Server) =>
  new Promise<string>((ok) =>
    s.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)),
  );
before(async () => {
  hub = createServer(hubHandler);
  cdn = createServer(cdnHandler);
  endpoint = await listen(hub);
  cdnBase = await listen(cdn);
});
after(() => {
  hub.closeAllConnections();
  cdn.closeAllConnections();
  hub.close();
  cdn.close();
});
const caches: string[] = [];
let cache = '';
beforeEach(() => {
  Object.assign(state, { cutNext: 0, corrupt: false, fail500: false, plain404: false, log: [] });
  cache = mkdtempSync(join(tmpdir(), 'lmsteer-hub-'));
  caches.push(cache);
});
after(() => caches.forEach((c) => rmSync(c, { recursive: true, force: true })));

const opts = (o: Record<string, unknown> = {}) => ({
  endpoint,
  cacheDir: cache,
  quiet: true,
  offline: false,
  token: '',
  ...o,
});
const isErr = (code: string, re?: RegExp, hintRe?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof LmSteerError, String(e));
  assert.equal(e.code, code, e.message);
  if (re) assert.match(e.message, re);
  if (hintRe) assert.match(e.hint ?? '', hintRe);
  return true;
};
const storage = (repo = 'org/model') => join(cache, repoFolderName(repo));

// ---- tests ----
test('downloads into the HF cache layout: blobs, snapshot symlinks, refs', async () => {
  const r = await downloadRepoFiles('org/model', ['config.json', 'model.safetensors', 'sub/dir/notes.txt'], opts());
  assert.equal(r.commit, COMMIT);
  assert.equal(r.dir, join(storage(), 'snapshots', COMMIT));
  assert.equal(readFileSync(join(storage(), 'refs', 'main'), 'utf8'), COMMIT);
  assert.ok(readFileSync(join(r.dir, 'model.safetensors')).equals(BIG));
  assert.equal(readFileSync(join(r.dir, 'config.json'), 'utf8'), '{"model_type":"llama"}');
  assert.equal(readFileSync(join(r.dir, 'sub/dir/notes.txt'), 'utf8'), 'hi');
  assert.ok(lstatSync(join(r.dir, 'model.safetensors')).isSymbolicLink());
  assert.equal(readlinkSync(join(r.dir, 'model.safetensors')), join('..', '..', 'blobs', sha256(BIG)));
  assert.ok(existsSync(join(storage(), 'blobs', gitOid(Buffer.from('{"model_type":"llama"}')))));
  assert.ok(!existsSync(join(storage(), 'blobs', sha256(BIG) + '.incomplete')));
  // the LFS file came from the CDN, without the token
  assert.ok(state.log.some((l) => l.server === 'cdn' && l.method === 'GET'));

  // cached: a second call only asks for metadata
  state.log = [];
  const again = await downloadRepoFiles('org/model', ['config.json', 'model.safetensors'], opts());
  assert.deepEqual(again, r);
  assert.deepEqual(
    state.log.map((l) => l.method),
    ['HEAD', 'HEAD'],
  );
});

test('offline (option or network failure) uses the cache; not cached is OFFLINE with a local-model hint', async () => {
  await assert.rejects(
    downloadRepoFiles('org/model', ['config.json'], opts({ offline: true })),
    isErr('OFFLINE', /config\.json/, /--model stories260K \(embedded/),
  );
  assert.equal(state.log.length, 0);
  const r = await downloadRepoFiles('org/model', ['config.json', 'tokenizer.json'], opts());
  state.log = [];
  assert.deepEqual(await downloadRepoFiles('org/model', ['config.json', 'tokenizer.json'], opts({ offline: true })), r);
  assert.equal(state.log.length, 0);
  // a closed port: connection refused → cache
  const dead = 'http://127.0.0.1:1';
  assert.deepEqual(await downloadRepoFiles('org/model', ['config.json'], opts({ endpoint: dead })), r);
  await assert.rejects(
    downloadRepoFiles('org/model', ['model.safetensors'], opts({ endpoint: dead })),
    isErr('OFFLINE', /model\.safetensors.*unreachable/),
  );
  // a failing hub (HTTP 500) → cache too
  state.fail500 = true;
  assert.deepEqual(await downloadRepoFiles('org/model', ['config.json'], opts()), r);
  await assert.rejects(downloadRepoFiles('org/model', ['model.safetensors'], opts()), isErr('OFFLINE', /500/));
});

test('an interrupted download fails with a resume hint; the rerun resumes with Range and is byte-identical', async () => {
  state.cutNext = 1;
  await assert.rejects(
    downloadRepoFiles('org/model', ['model.safetensors'], opts({ retries: 0 })),
    isErr('NETWORK', /model\.safetensors.*stopped after \d+ of 300000/, /again.*resumes/),
  );
  const part = join(storage(), 'blobs', sha256(BIG) + '.incomplete');
  const have = statSync(part).size;
  assert.ok(have > 0 && have < BIG.length, `partial file has ${have} bytes`);
  state.log = [];
  const r = await downloadRepoFiles('org/model', ['model.safetensors'], opts({ retries: 0 }));
  const get = state.log.find((l) => l.server === 'cdn' && l.method === 'GET');
  assert.equal(get?.range, `bytes=${have}-`);
  assert.equal(sha256(readFileSync(join(r.dir, 'model.safetensors'))), sha256(BIG));
  assert.ok(!existsSync(part));
});

test('with retries, a cut connection resumes within the same call', async () => {
  state.cutNext = 2;
  const r = await downloadRepoFiles('org/model', ['model.safetensors'], opts());
  const gets = state.log.filter((l) => l.server === 'cdn' && l.method === 'GET');
  assert.equal(gets.length, 3);
  assert.equal(gets[0]!.range, undefined);
  assert.match(gets[1]!.range ?? '', /^bytes=\d+-$/);
  assert.ok(readFileSync(join(r.dir, 'model.safetensors')).equals(BIG));
});

test('a download whose sha256 does not match the LFS etag is rejected and removed', async () => {
  state.corrupt = true;
  await assert.rejects(
    downloadRepoFiles('org/model', ['model.safetensors'], opts()),
    isErr('NETWORK', /corrupt: sha256/),
  );
  assert.ok(!existsSync(join(storage(), 'blobs', sha256(BIG))));
  assert.ok(!existsSync(join(storage(), 'blobs', sha256(BIG) + '.incomplete')));
  assert.ok(!existsSync(join(storage(), 'snapshots', COMMIT, 'model.safetensors')));
});

test('gated repo: 401 names HF_TOKEN; with a token the hub gets it and the CDN does not', async () => {
  await assert.rejects(downloadRepoFiles('org/gated', ['config.json'], opts()), isErr('NETWORK', /gated/, /HF_TOKEN/));
  const r = await downloadRepoFiles('org/gated', ['config.json'], opts({ token: 'good' }));
  assert.equal(readFileSync(join(r.dir, 'config.json'), 'utf8'), '{}');
  assert.ok(state.log.filter((l) => l.server === 'hub').slice(-1)[0]!.auth === 'Bearer good');
  state.log = [];
  await downloadRepoFiles('org/model', ['model.safetensors'], opts({ token: 'good' }));
  assert.ok(state.log.every((l) => (l.server === 'hub' ? l.auth === 'Bearer good' : l.auth === undefined)));
});

test('404s: missing repo and missing file are named; plain 404s name both', async () => {
  await assert.rejects(
    downloadRepoFiles('org/nope', ['config.json'], opts()),
    isErr('NOT_FOUND', /repository org\/nope not found/, /HF_TOKEN/),
  );
  await assert.rejects(
    downloadRepoFiles('org/model', ['missing.json'], opts()),
    isErr('NOT_FOUND', /file missing\.json not found in repository org\/model/),
  );
  await assert.rejects(
    downloadRepoFiles('org/model', ['config.json'], opts({ revision: 'nobranch' })),
    isErr('NOT_FOUND', /revision "nobranch"/),
  );
  state.plain404 = true;
  await assert.rejects(
    downloadRepoFiles('org/nope', ['config.json'], opts()),
    isErr('NOT_FOUND', /config\.json or repository org\/nope/),
  );
});

test('allowMissing files are skipped, remembered in .no_exist, and fine offline', async () => {
  const r = await downloadRepoFiles(
    'org/model',
    ['generation_config.json', 'config.json'],
    opts({ allowMissing: ['generation_config.json'] }),
  );
  assert.ok(existsSync(join(r.dir, 'config.json')));
  assert.ok(!existsSync(join(r.dir, 'generation_config.json')));
  assert.ok(existsSync(join(storage(), '.no_exist', COMMIT, 'generation_config.json')));
  assert.deepEqual(
    await downloadRepoFiles(
      'org/model',
      ['config.json', 'generation_config.json'],
      opts({ allowMissing: ['generation_config.json'], offline: true }),
    ),
    r,
  );
  // a missing repo is an error even when every asked-for file is optional
  await assert.rejects(
    downloadRepoFiles('org/nope', ['x.json'], opts({ allowMissing: ['x.json'] })),
    isErr('NOT_FOUND', /org\/nope/),
  );
});

test('revisions: a tag maps to its commit in refs/, a commit is used as is, a renamed repo is followed', async () => {
  const r = await downloadRepoFiles('org/model', ['config.json'], opts({ revision: 'v2' }));
  assert.equal(r.commit, COMMIT2);
  assert.equal(readFileSync(join(storage(), 'refs', 'v2'), 'utf8'), COMMIT2);
  const byCommit = await downloadRepoFiles('org/model', ['config.json'], opts({ revision: COMMIT2, offline: true }));
  assert.equal(byCommit.dir, r.dir);
  const old = await downloadRepoFiles('oldname', ['config.json'], opts());
  assert.equal(old.dir, join(cache, 'models--oldname', 'snapshots', COMMIT));
  assert.ok(existsSync(join(old.dir, 'config.json')));
});

test('bad repo ids and file paths are BAD_ARGUMENT', async () => {
  await assert.rejects(downloadRepoFiles('org/model', ['../escape'], opts()), isErr('BAD_ARGUMENT', /escape/));
  await assert.rejects(downloadRepoFiles('a/b/c', ['x'], opts()), isErr('BAD_ARGUMENT', /a\/b\/c/));
});

test('parseHubSpec', () => {
  assert.deepEqual(parseHubSpec('org/name@rev'), { repo: 'org/name', revision: 'rev' });
  assert.deepEqual(parseHubSpec('gpt2'), { repo: 'gpt2', revision: 'main' });
  assert.deepEqual(parseHubSpec('Org-1/Name_2.v3@refs/pr/1'), { repo: 'Org-1/Name_2.v3', revision: 'refs/pr/1' });
  assert.deepEqual(parseHubSpec('https://huggingface.co/openai-community/gpt2'), {
    repo: 'openai-community/gpt2',
    revision: 'main',
  });
  assert.deepEqual(parseHubSpec('https://huggingface.co/org/name/tree/v1.0'), { repo: 'org/name', revision: 'v1.0' });
  for (const bad of ['', 'a/b/c', 'org/name@', '/abs', 'org/../x', 'org/na me']) {
    assert.throws(() => parseHubSpec(bad), isErr('BAD_ARGUMENT'), bad);
  }
});

test('hubSettings follows huggingface_hub environment variables', () => {
  const home = mkdtempSync(join(tmpdir(), 'lmsteer-hfhome-'));
  caches.push(home);
  writeFileSync(join(home, 'token'), 'saved-token\n');
  const s = hubSettings({ HF_HOME: home });
  assert.equal(s.cacheDir, join(home, 'hub'));
  assert.equal(s.endpoint, 'https://huggingface.co');
  assert.equal(s.token, 'saved-token');
  assert.equal(s.offline, false);
  const t = hubSettings({
    HF_HOME: home,
    HF_HUB_CACHE: '/x/cache',
    HF_TOKEN: 'env-token',
    HF_HUB_OFFLINE: '1',
    HF_ENDPOINT: 'http://mirror/',
  });
  assert.deepEqual([t.cacheDir, t.token, t.offline, t.endpoint], ['/x/cache', 'env-token', true, 'http://mirror']);
  assert.equal(hubSettings({ HF_HOME: '/nonexistent-home' }).token, undefined);
});

test('progress bar: drawn on a terminal with size and speed, silent when quiet', async () => {
  let out = '';
  const tty = Object.assign(new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) }), { isTTY: true });
  await downloadRepoFiles('org/model', ['model.safetensors'], opts({ quiet: false, progressStream: tty }));
  assert.match(out, /model\.safetensors .*100% \| 300\.0 kB\/300\.0 kB \| [\d.]+ [kMG]?B\/s/);
  out = '';
  rmSync(cache, { recursive: true, force: true });
  await downloadRepoFiles('org/model', ['model.safetensors'], opts({ quiet: true, progressStream: tty }));
  assert.equal(out, '');
});

test('resolveHubModel: single-file, sharded, errors, and the stories260K alias', async () => {
  const single = await resolveHubModel('org/model', opts());
  assert.equal(single.kind, 'hf');
  assert.ok(
    single.kind === 'hf' &&
      existsSync(join(single.dir, 'model.safetensors')) &&
      existsSync(join(single.dir, 'tokenizer.json')),
  );

  const sharded = await resolveHubModel('org/sharded@main', opts());
  assert.ok(sharded.kind === 'hf');
  for (const f of [
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'tokenizer_config.json',
    'model.safetensors.index.json',
  ]) {
    assert.ok(existsSync(join(sharded.dir, f)), f);
  }
  assert.ok(!existsSync(join(sharded.dir, 'model.safetensors')));

  await assert.rejects(resolveHubModel('org/notok', opts()), isErr('UNSUPPORTED', /no tokenizer\.json/));
  await assert.rejects(resolveHubModel('org/gated', opts()), isErr('NETWORK', /gated/));

  const s = await resolveHubModel('stories260K', opts());
  assert.equal(s.kind, 'llama2c');
  assert.ok(s.kind === 'llama2c');
  assert.equal(s.repo, 'karpathy/tinyllamas');
  assert.equal(
    s.modelPath,
    join(cache, 'models--karpathy--tinyllamas', 'snapshots', COMMIT, 'stories260K', 'stories260K.bin'),
  );
  assert.equal(statSync(s.modelPath).size, 5000);
  assert.equal(statSync(s.tokenizerPath).size, 600);
  // offline afterwards: same answer from the cache
  assert.deepEqual(await resolveHubModel('stories260K', opts({ offline: true })), s);
  assert.deepEqual(await resolveHubModel('org/sharded@main', opts({ offline: true })), sharded);
});
