/**
 * The package as a new user gets it: `npm pack` (which builds dist/), the tarball installed into an empty folder
 * with no network, then, in that folder, the README's `npx lmsteer` lines run as written and its library example
 * type-checked with `tsc` against the package's .d.ts and run with plain node — importing only from 'lmsteer'.
 *
 * No network: the install is `npm ci --offline` from the npm cache that `npm ci` filled for this checkout, with a
 * lock made from the tarball's npm-shrinkwrap.json (so exactly the locked versions), proxies on a closed port; a
 * second install from an empty cache must fail with ENOTCACHED, which shows nothing is fetched. The commands run
 * with HF_HUB_OFFLINE=1 and HF_ENDPOINT on a closed port, so only the embedded default model can load.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLOSED = 'http://127.0.0.1:9'; // the discard port: nothing listens, so a request fails at once
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** This process's environment without the npm_* variables `npm test` sets (they describe the checkout). */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

/** The fenced blocks of `lang` in the README section that starts with `heading`. */
function readmeBlocks(heading: string, lang: string): string[] {
  const start = README.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `README has no "${heading}" section`);
  const next = README.indexOf('\n## ', start + heading.length + 2);
  const section = README.slice(start, next < 0 ? undefined : next);
  return [...section.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

let tmp = '';
let project = '';
let tarball = '';
let packedFiles: string[] = [];
let npmCache = '';
let offline: NodeJS.ProcessEnv = {};

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'lmsteer-package-'));
  // `npm test` passes the cache npm uses as npm_config_cache; without it, ask npm.
  npmCache =
    process.env.npm_config_cache ??
    ok(await run('npm', ['config', 'get', 'cache'], ROOT, cleanEnv()), 'npm config').stdout.trim();
  offline = cleanEnv({
    npm_config_cache: npmCache,
    npm_config_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    npm_config_proxy: CLOSED,
    npm_config_https_proxy: CLOSED,
    HTTP_PROXY: CLOSED,
    HTTPS_PROXY: CLOSED,
    http_proxy: CLOSED,
    https_proxy: CLOSED,
    NO_PROXY: '',
    no_proxy: '',
    ONNXRUNTIME_NODE_INSTALL: 'skip', // its postinstall would download a CUDA provider
    HF_HUB_OFFLINE: '1',
    HF_ENDPOINT: CLOSED,
    HF_HOME: join(tmp, 'hf'),
    LMSTEER_CACHE: join(tmp, 'lmsteer-cache'),
  });

  const pack = ok(
    await run('npm', ['pack', '--json', '--pack-destination', tmp], ROOT, cleanEnv({ npm_config_cache: npmCache })),
    'npm pack',
  );
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  tarball = join(tmp, info!.filename);
  packedFiles = info!.files.map((f) => f.path);

  // The user's project: lmsteer from the tarball, its dependencies exactly as the tarball's shrinkwrap locks them.
  project = join(tmp, 'project');
  mkdirSync(project);
  ok(await run('tar', ['-xzf', tarball, '-C', tmp, 'package/npm-shrinkwrap.json'], tmp, cleanEnv()), 'tar');
  const shrinkwrap = JSON.parse(readFileSync(join(tmp, 'package', 'npm-shrinkwrap.json'), 'utf8')) as {
    packages: Record<string, Record<string, unknown>>;
  };
  const spec = `file:../${info!.filename}`;
  const integrity = 'sha512-' + createHash('sha512').update(readFileSync(tarball)).digest('base64');
  const packages: Record<string, unknown> = {
    '': { name: 'user-project', version: '1.0.0', dependencies: { lmsteer: spec } },
    'node_modules/lmsteer': { ...shrinkwrap.packages['']!, resolved: spec, integrity },
  };
  // As npm installs a shrinkwrapped package: its dependencies nested under it.
  for (const [path, p] of Object.entries(shrinkwrap.packages)) if (path) packages[`node_modules/lmsteer/${path}`] = p;
  const pkg = {
    name: 'user-project',
    version: '1.0.0',
    private: true,
    type: 'module',
    dependencies: { lmsteer: spec },
  };
  writeFileSync(join(project, 'package.json'), JSON.stringify(pkg, null, 2));
  writeFileSync(
    join(project, 'package-lock.json'),
    JSON.stringify({ name: pkg.name, version: pkg.version, lockfileVersion: 3, requires: true, packages }, null, 2),
  );
  const install = await run('npm', ['ci', '--offline'], project, offline, 300_000);
  if (install.code !== 0 && /ENOTCACHED/.test(install.stdout + install.stderr)) {
    assert.fail(
      `a dependency is not in the npm cache ${npmCache}, and this test installs with no network; ` +
        `fill the cache with \`npm ci\` in ${ROOT} and run again\n${install.stderr}`,
    );
  }
  ok(install, 'npm ci --offline of the tarball');
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('the tarball holds the compiled package, the embedded model with its licence, the steers and the lock — no tests', () => {
  for (const f of [
    'package.json',
    'README.md',
    'LICENSE',
    'npm-shrinkwrap.json',
    'bin/lmsteer.mjs',
    'dist/index.js',
    'dist/index.d.ts',
    'dist/cli/main.js',
    'dist/server/playground/index.html',
    'assets/stories260K/model.bin',
    'assets/stories260K/tokenizer.bin',
    'assets/stories260K/LICENSE',
    'assets/stories260K/SOURCE.md',
    'steers/stories260K-sentiment/steer.json',
    'steers/stories260K-sentiment/steer.safetensors',
  ]) {
    assert.ok(packedFiles.includes(f), `the tarball lacks ${f}`);
  }
  const stray = packedFiles.filter((f) =>
    /^(test|bench|scripts|\.ci|docs\/api|node_modules)\/|^tsconfig|\.test\./.test(f),
  );
  assert.deepEqual(stray, [], 'tests, benches, scripts and generated docs stay out of the tarball');
  assert.ok(!existsSync(join(ROOT, 'npm-shrinkwrap.json')), 'postpack removes the shrinkwrap from the checkout');
});

test("the tarball's npm-shrinkwrap.json is package-lock.json's runtime part, unchanged", () => {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devDependencies?: unknown }>;
  };
  const sw = JSON.parse(readFileSync(join(tmp, 'package', 'npm-shrinkwrap.json'), 'utf8')) as typeof lock;
  const runtime = Object.entries(lock.packages).filter(([path, p]) => path && !p.dev);
  assert.ok(runtime.length > 10);
  assert.deepEqual(
    Object.keys(sw.packages).filter((p) => p),
    runtime.map(([p]) => p),
  );
  for (const [path, p] of runtime) assert.deepEqual(sw.packages[path], p, path);
  assert.equal(sw.packages['']!.devDependencies, undefined);
});

test('the install used no network: from an empty npm cache it fails with ENOTCACHED', async () => {
  const again = join(tmp, 'again');
  mkdirSync(again);
  for (const f of ['package.json', 'package-lock.json']) writeFileSync(join(again, f), readFileSync(join(project, f)));
  const r = await run('npm', ['ci', '--offline'], again, { ...offline, npm_config_cache: join(tmp, 'empty-cache') });
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /ENOTCACHED/);
});

test('the installed package runs without tsx, and its declarations import only what it depends on', () => {
  assert.ok(existsSync(join(project, 'node_modules', 'lmsteer', 'dist', 'cli', 'main.js')));
  assert.ok(!existsSync(join(project, 'node_modules', 'tsx')));
  assert.ok(!existsSync(join(project, 'node_modules', 'lmsteer', 'node_modules', 'tsx')));
  const installed = join(project, 'node_modules', 'lmsteer');
  const deps = Object.keys(
    (JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { dependencies: object }).dependencies,
  );
  const bad = new Set<string>();
  for (const f of packedFiles.filter((f) => f.endsWith('.d.ts'))) {
    const dts = readFileSync(join(installed, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, ''); // doc comments out
    for (const [, spec] of dts.matchAll(/(?:from |import\()['"]([^'"]+)['"]/g)) {
      if (spec!.startsWith('.') || spec!.startsWith('node:')) continue;
      const name = spec!.startsWith('@') ? spec!.split('/').slice(0, 2).join('/') : spec!.split('/')[0]!;
      if (!deps.includes(name)) bad.add(`${f}: ${spec}`);
    }
  }
  assert.deepEqual([...bad], [], 'a declaration imports a package that is not a runtime dependency');
});

test("the README's npx lines run as written in the installed project, with no network, as in the checkout", async () => {
  const lines = readmeBlocks('## Install', 'sh')
    .flatMap((b) => b.split('\n'))
    .map((l) => l.trim())
    .filter((l) => l.startsWith('npx lmsteer'));
  assert.ok(lines.includes('npx lmsteer --version'), 'the README shows npx lmsteer --version');
  const generates = lines.filter((l) => l.startsWith('npx lmsteer generate'));
  assert.ok(generates.some((l) => !l.includes('--steer')) && generates.some((l) => l.includes('--steer')));
  const texts: string[] = [];
  for (const line of lines) {
    const r = ok(await run('sh', ['-c', line], project, offline), line);
    if (line === 'npx lmsteer --version') {
      assert.equal(r.stdout.trim(), VERSION);
      continue;
    }
    assert.match(r.stdout, /^Once upon a time\S*\s+\S+/, line);
    texts.push(r.stdout);
    // The checkout runs src/ through tsx; the installed package runs dist/: same seed, same text.
    const inCheckout = line.replace(/^npx lmsteer/, `"${process.execPath}" "${join(ROOT, 'bin', 'lmsteer.mjs')}"`);
    assert.equal(ok(await run('sh', ['-c', inCheckout], tmp, offline), inCheckout).stdout, r.stdout, line);
  }
  assert.equal(new Set(texts).size, texts.length, 'the steered line prints another text than the unsteered one');
});

test('the installed server finds its playground files and serves a steered completion', async () => {
  const bin = join(project, 'node_modules', 'lmsteer', 'bin', 'lmsteer.mjs');
  const child = spawn(process.execPath, [bin, 'serve', '--port', '0', '--steer', 'stories260K-sentiment'], {
    cwd: project,
    env: offline,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    let stderr = '';
    const url = await new Promise<string>((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`lmsteer serve did not start:\n${stderr}`)), 120_000);
      child.stderr.on('data', (d) => {
        stderr += d;
        const m = / at (http:\/\/\S+)/.exec(stderr);
        if (m) {
          clearTimeout(timer);
          done(m[1]!);
        }
      });
      child.on('exit', (code) => fail(new Error(`lmsteer serve exited ${code}:\n${stderr}`)));
    });
    for (const path of ['/', '/app.js', '/style.css']) {
      const res = await fetch(url + path);
      assert.equal(res.status, 200, path);
      assert.ok((await res.text()).length > 100, path);
    }
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 8, seed: 1, steer: { sentiment: 4 } }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { choices: { text: string }[] };
    assert.ok(body.choices[0]!.text.length > 0);
  } finally {
    child.kill('SIGTERM');
  }
});

test("the README's library example type-checks with tsc against the package's .d.ts and runs with node", async () => {
  const [example] = readmeBlocks('## Library', 'ts');
  assert.ok(example?.includes("from 'lmsteer'"), 'the README has a ts example importing from lmsteer');
  writeFileSync(join(project, 'example.ts'), example!);
  // Types are real, not `any`: a wrong call must be a type error.
  writeFileSync(
    join(project, 'types.ts'),
    "import { Model, type LoadedModel } from 'lmsteer';\n" +
      '// @ts-expect-error a model spec is a string\n' +
      'void Model.open(42);\n' +
      "export type Id = LoadedModel['id'];\n",
  );
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      outDir: 'out',
      // @types/node comes from the checkout: the user's project has no dev dependencies installed here.
      typeRoots: [join(ROOT, 'node_modules', '@types')],
      types: ['node'],
      // Declarations are not re-checked (slow: every dependency's); that those of lmsteer need no package a
      // user lacks is the test on their imports above.
      skipLibCheck: true,
    },
    files: ['example.ts', 'types.ts'],
  };
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
  ok(
    await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], project, offline),
    'tsc',
  );
  const r = ok(await run(process.execPath, ['out/example.js'], project, offline), 'node out/example.js');
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 5, r.stdout);
  assert.match(lines[0]!, /^sentiment -8: Once upon a time\S*\s+\S+/);
  assert.match(lines[1]!, /^sentiment 8: Once upon a time\S*\s+\S+/);
  assert.notEqual(lines[0]!.slice('sentiment -8'.length), lines[1]!.slice('sentiment 8'.length));
  assert.match(lines[2]!, /^trained 20 steps, loss \d+\.\d\d$/);
  assert.match(lines[3]!, /^joy 30: The little dog\S*\s+\S+/);
  const reportPath = /^report: (.+)$/.exec(lines[4]!)?.[1];
  assert.ok(reportPath && existsSync(reportPath), lines[4]);
  assert.match(readFileSync(reportPath, 'utf8'), /joy=-30[\s\S]*joy=30/);
});
