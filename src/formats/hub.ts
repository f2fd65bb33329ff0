/**
 * Model files from the Hugging Face hub, kept in the standard HF cache so lmsteer, transformers and
 * huggingface_hub share downloads:
 *   {cache}/models--{org}--{name}/blobs/{etag}               the bytes (sha256 for LFS files, git oid otherwise)
 *   {cache}/models--{org}--{name}/snapshots/{commit}/{path}  relative symlink to the blob (a copy where links fail)
 *   {cache}/models--{org}--{name}/refs/{revision}            the commit hash the revision pointed to
 *   {cache}/models--{org}--{name}/.no_exist/{commit}/{path}  marker: an optional file the repo does not have
 *
 * Hand-written over fetch rather than @huggingface/hub 2.17.5's downloadFileToCacheDir, which lacks resume (it
 * rewrites `.incomplete` from byte 0), a progress hook, refs/{revision}, offline fallback and checksum checks, and
 * names the snapshot folder after the file's last commit instead of the revision's commit.
 */
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import cliProgress from 'cli-progress';
import { LmSteerError } from '../util/errors.js';
import { writeFileAtomic } from './atomicWrite.js';

export interface HubDownloadOptions {
  /** Branch, tag or commit; default 'main'. */
  revision?: string;
  /** Default $HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Default $HF_TOKEN, else the token `huggingface-cli login` saved in $HF_HOME/token. */
  token?: string;
  /** Default $HF_HUB_CACHE or $HF_HOME/hub (HF_HOME defaults to ~/.cache/huggingface). */
  cacheDir?: string;
  /** Use only the cache; default from HF_HUB_OFFLINE=1. */
  offline?: boolean;
  /** No progress bar (it is also off when stderr is not a TTY or HF_HUB_DISABLE_PROGRESS_BARS=1). */
  quiet?: boolean;
  /** Files that may be absent from the repo; they are skipped (and absent from the snapshot) when missing. */
  allowMissing?: string[];
  /** How many times an interrupted download resumes itself before giving up (default 3). */
  retries?: number;
  /** Where the progress bar goes (default process.stderr); for tests. */
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface HubSpec {
  repo: string;
  revision: string;
}

type Env = Record<string, string | undefined>;
const DEFAULT_ENDPOINT = 'https://huggingface.co';
const COMMIT_RE = /^[0-9a-f]{40}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
const REPO_RE = /^(?:[A-Za-z0-9][\w.-]*\/)?[A-Za-z0-9][\w.-]*$/;
const HEAD_TIMEOUT_MS = 10_000; // huggingface_hub's HF_HUB_ETAG_TIMEOUT
export const LOCAL_MODEL_HINT =
  'point lmsteer at local files instead: --model /path/to/hf-folder (with config.json, tokenizer.json, model.safetensors) ' +
  'or --model /path/to/model.bin with a llama2.c tokenizer.bin; the default model needs no network: --model stories260K (embedded in lmsteer)';

function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'on', 'yes', 'true'].includes(v.trim().toLowerCase());
}
function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p;
}

/** The settings huggingface_hub would use, from the environment. */
export function hubSettings(env: Env = process.env): {
  cacheDir: string;
  endpoint: string;
  token?: string;
  offline: boolean;
  noProgress: boolean;
} {
  const hfHome = resolve(
    expandHome(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface')),
  );
  const cacheDir = resolve(expandHome(env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(hfHome, 'hub')));
  let token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
  if (!token) {
    try {
      token = readFileSync(env.HF_TOKEN_PATH ?? join(hfHome, 'token'), 'utf8').trim() || undefined;
    } catch {
      // not logged in
    }
  }
  return {
    cacheDir,
    endpoint: (env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    token,
    offline: truthy(env.HF_HUB_OFFLINE),
    noProgress: truthy(env.HF_HUB_DISABLE_PROGRESS_BARS),
  };
}

/** "org/name@rev", "name", or a https://huggingface.co/org/name[/tree/rev] URL → repo + revision (default main). */
export function parseHubSpec(spec: string): HubSpec {
  let s = spec.trim();
  const url = /^https?:\/\/[^/]+\/(.+?)(?:\/tree\/(.+?))?\/?$/.exec(s);
  if (url) s = url[2] ? `${url[1]}@${url[2]}` : url[1]!;
  const at = s.indexOf('@');
  const repo = at < 0 ? s : s.slice(0, at);
  const revision = at < 0 ? 'main' : s.slice(at + 1);
  if (!REPO_RE.test(repo) || repo.includes('--') || repo.includes('..') || repo.length > 96) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `"${spec}" is not a Hugging Face repo id`,
      'write it as org/name or org/name@revision (e.g. openai-community/gpt2@main), or give a local path',
    );
  }
  checkRevision(revision, spec);
  return { repo, revision };
}

/**
 * A branch, tag or commit: it becomes a path under the cache (refs/{revision}), so only git-ref characters,
 * no "..", no empty or leading/trailing "/" components.
 */
export function checkRevision(revision: string, spec = revision): void {
  if (
    !/^[A-Za-z0-9._\-/]{1,200}$/.test(revision) ||
    revision.split('/').some((c) => c === '' || c === '.' || c === '..') ||
    revision.includes('..')
  ) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `"${spec}" has an empty or invalid revision after "@"`,
      'write org/name@branch, org/name@tag or org/name@<40-hex commit>',
    );
  }
}

/** models--{org}--{name}, as huggingface_hub names a model repo's cache folder. */
export function repoFolderName(repo: string): string {
  return ['models', ...repo.split('/')].join('--');
}

function checkRepoPath(file: string): void {
  const parts = file.split('/');
  if (!file || file.startsWith('/') || file.includes('\\') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `"${file}" is not a relative file path inside a repo`,
      'use forward slashes and no "..", e.g. "config.json" or "subfolder/model.safetensors"',
    );
  }
}

/** What the hub says about one file (HEAD on its resolve URL). */
interface FileMeta {
  commit: string;
  etag: string;
  size?: number;
}

/** The hub could not be reached (connection error, timeout, 5xx): fall back to the cache. */
class Unavailable extends Error {}

interface Ctx {
  repo: string;
  revision: string;
  endpoint: string;
  token?: string;
  storage: string;
  quiet: boolean;
  retries: number;
  progressStream: NodeJS.WritableStream & { isTTY?: boolean };
}

/**
 * Download `files` of model repo `repo` at `opts.revision` into the HF cache (or find them there) and return the
 * snapshot folder holding them. All files come from one commit: the first HEAD pins it.
 */
export async function downloadRepoFiles(
  repo: string,
  files: string[],
  opts: HubDownloadOptions = {},
): Promise<{ dir: string; commit: string }> {
  parseHubSpec(repo); // validates the id
  files.forEach(checkRepoPath);
  checkRevision(opts.revision ?? 'main');
  const env = hubSettings();
  const ctx: Ctx = {
    repo,
    revision: opts.revision ?? 'main',
    endpoint: (opts.endpoint ?? env.endpoint).replace(/\/+$/, ''),
    token: opts.token ?? env.token,
    storage: join(opts.cacheDir ?? env.cacheDir, repoFolderName(repo)),
    quiet: opts.quiet ?? env.noProgress,
    retries: opts.retries ?? 3,
    progressStream: opts.progressStream ?? process.stderr,
  };
  const optional = new Set(opts.allowMissing ?? []);
  // required files first, so that a missing repo is reported as such before optional files are skipped
  const ordered = [...files.filter((f) => !optional.has(f)), ...files.filter((f) => optional.has(f))];
  let offline = opts.offline ?? env.offline;
  let whyOffline = offline ? 'offline mode (HF_HUB_OFFLINE=1 or --offline)' : '';
  let commit = COMMIT_RE.test(ctx.revision) ? ctx.revision : undefined;

  for (const file of ordered) {
    let meta: FileMeta | 'missing' | undefined;
    if (!offline) {
      try {
        meta = await headFile(ctx, commit ?? ctx.revision, file, optional.has(file));
      } catch (e) {
        if (!(e instanceof Unavailable)) throw e;
        offline = true;
        whyOffline = `${ctx.endpoint} is unreachable (${e.message})`;
      }
    }
    if (offline) {
      commit ??= readRef(ctx);
      if (!commit) throw offlineError(ctx, file, whyOffline);
      if (existsSync(join(ctx.storage, 'snapshots', commit, file))) continue;
      if (optional.has(file)) continue; // cached or not, an optional file may be absent
      throw offlineError(ctx, file, whyOffline);
    }
    if (meta === 'missing') {
      if (commit) writeFileAtomicMkdir(join(ctx.storage, '.no_exist', commit, file), '');
      continue;
    }
    if (!commit) {
      commit = meta!.commit;
      if (!COMMIT_RE.test(commit))
        throw new LmSteerError(
          'NETWORK',
          `${ctx.endpoint} answered ${JSON.stringify(String(commit).slice(0, 60))} as the commit of ${ctx.repo}@${ctx.revision}`,
          'that is not a commit id; check HF_ENDPOINT',
        );
      if (ctx.revision !== commit) writeFileAtomicMkdir(join(ctx.storage, 'refs', ctx.revision), commit);
    }
    await fetchIntoCache(ctx, commit, file, meta!);
  }
  commit ??= readRef(ctx);
  if (!commit) throw offlineError(ctx, files[0] ?? '(no file)', whyOffline);
  const dir = join(ctx.storage, 'snapshots', commit);
  mkdirSync(dir, { recursive: true });
  return { dir, commit };
}

function writeFileAtomicMkdir(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, data);
}

function readRef(ctx: Ctx): string | undefined {
  try {
    const c = readFileSync(join(ctx.storage, 'refs', ctx.revision), 'utf8').trim();
    return COMMIT_RE.test(c) ? c : undefined;
  } catch {
    return undefined;
  }
}

function offlineError(ctx: Ctx, file: string, why: string): LmSteerError {
  return new LmSteerError(
    'OFFLINE',
    `${ctx.repo}@${ctx.revision}: ${file} is needed but not in the cache ${ctx.storage}, and ${why}`,
    `connect to the network (or unset HF_HUB_OFFLINE) and run again, or ${LOCAL_MODEL_HINT}`,
  );
}

function resolveUrl(ctx: Ctx, revision: string, file: string): string {
  return `${ctx.endpoint}/${ctx.repo}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

function headers(ctx: Ctx, url: string, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { 'user-agent': 'lmsteer/0.1 (huggingface_hub-compatible cache)', ...extra };
  // The token is for the hub only: never send it on to a CDN of another origin.
  if (ctx.token && new URL(url).origin === new URL(ctx.endpoint).origin) h.authorization = `Bearer ${ctx.token}`;
  return h;
}

/** fetch, turning connection failures into Unavailable. */
async function request(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'manual' });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new Unavailable(cause?.code ?? cause?.message ?? (e as Error).message);
  }
}

/**
 * HEAD the resolve URL: X-Repo-Commit, X-Linked-Etag (LFS sha256) or ETag, X-Linked-Size or Content-Length.
 * Follows only relative redirects (renamed repos), like huggingface_hub: an absolute one is the CDN of an LFS
 * file, and the 302 itself carries the metadata.
 */
async function headFile(ctx: Ctx, revision: string, file: string, optional: boolean): Promise<FileMeta | 'missing'> {
  let url = resolveUrl(ctx, revision, file);
  for (let hop = 0; ; hop++) {
    const res = await request(url, {
      method: 'HEAD',
      headers: headers(ctx, url),
      signal: AbortSignal.timeout(HEAD_TIMEOUT_MS),
    });
    const location = res.headers.get('location');
    if (
      res.status >= 300 &&
      res.status < 400 &&
      location &&
      location.startsWith('/') &&
      !location.startsWith('//') &&
      hop < 5
    ) {
      url = new URL(location, url).toString();
      continue;
    }
    if (res.status >= 400) {
      const err = httpError(ctx, revision, file, res);
      if (err === 'missing' && optional) return 'missing';
      if (err === 'missing') throw httpError(ctx, revision, file, res, true);
      throw err;
    }
    const commit = res.headers.get('x-repo-commit');
    const etag = (res.headers.get('x-linked-etag') ?? res.headers.get('etag'))?.replace(/^W\//, '').replace(/"/g, '');
    if (!commit || !COMMIT_RE.test(commit) || !etag || !/^[\w.-]+$/.test(etag)) {
      throw new LmSteerError(
        'NETWORK',
        `${ctx.endpoint} answered for ${ctx.repo}/${file} without X-Repo-Commit or ETag headers`,
        `${ctx.endpoint} does not look like a Hugging Face hub (check HF_ENDPOINT and any proxy)`,
      );
    }
    const sizeHeader = res.headers.get('x-linked-size') ?? res.headers.get('content-length');
    const size = sizeHeader !== null && /^\d+$/.test(sizeHeader) ? Number(sizeHeader) : undefined;
    return { commit, etag, size };
  }
}

/** The error for an HTTP failure; 'missing' for a file that does not exist (so it may be skipped). */
function httpError(ctx: Ctx, revision: string, file: string, res: Response, missingAsError = false): Error | 'missing' {
  const code = res.headers.get('x-error-code');
  const where = `${ctx.repo}@${revision}`;
  const tokenHint = ctx.token
    ? 'the token given (HF_TOKEN) has no access to it'
    : 'if it is private or gated, set HF_TOKEN to an access token of an account allowed to read it';
  if (res.status === 429 || res.status >= 500) return new Unavailable(`HTTP ${res.status}`);
  if (code === 'GatedRepo') {
    return new LmSteerError(
      'NETWORK',
      `${ctx.repo} is a gated repo: ${ctx.endpoint} refused ${file} (HTTP ${res.status})`,
      `accept its terms at ${ctx.endpoint}/${ctx.repo} and set HF_TOKEN to an access token of that account; or ${LOCAL_MODEL_HINT}`,
    );
  }
  if (code === 'RepoNotFound') {
    return new LmSteerError(
      'NOT_FOUND',
      `repository ${ctx.repo} not found on ${ctx.endpoint} (asked for ${file})`,
      `check the repo id (org/name); ${tokenHint}`,
    );
  }
  if (code === 'RevisionNotFound') {
    return new LmSteerError(
      'NOT_FOUND',
      `revision "${revision}" not found in repository ${ctx.repo}`,
      'check the branch, tag or commit after "@"',
    );
  }
  if (res.status === 401 || res.status === 403) {
    return new LmSteerError(
      'NETWORK',
      `${ctx.endpoint} refused ${file} of ${where} (HTTP ${res.status} ${res.status === 401 ? 'unauthorized' : 'forbidden'})`,
      tokenHint,
    );
  }
  if (res.status === 404 && !missingAsError) return 'missing';
  if (res.status === 404) {
    const what =
      code === 'EntryNotFound'
        ? `file ${file} not found in repository ${ctx.repo}`
        : `file ${file} or repository ${ctx.repo} not found`;
    return new LmSteerError(
      'NOT_FOUND',
      `${what} at revision ${revision} on ${ctx.endpoint}`,
      `check the repo id and the file name (see ${ctx.endpoint}/${ctx.repo}/tree/${revision})`,
    );
  }
  return new LmSteerError(
    'NETWORK',
    `${ctx.endpoint} answered HTTP ${res.status} for ${file} of ${where}`,
    'try again later',
  );
}

/** Make snapshots/{commit}/{file} point at blobs/{etag}, downloading the blob if it is not cached yet. */
async function fetchIntoCache(ctx: Ctx, commit: string, file: string, meta: FileMeta): Promise<void> {
  const pointer = join(ctx.storage, 'snapshots', commit, file);
  if (existsSync(pointer)) return; // follows the link: a dangling one (blob deleted) is fetched again
  const blob = join(ctx.storage, 'blobs', meta.etag);
  if (!existsSync(blob)) {
    mkdirSync(dirname(blob), { recursive: true });
    await downloadBlob(ctx, resolveUrl(ctx, commit, file), file, blob, meta);
  }
  mkdirSync(dirname(pointer), { recursive: true });
  rmSync(pointer, { force: true });
  try {
    symlinkSync(relative(dirname(pointer), blob), pointer);
  } catch {
    copyFileSync(blob, pointer); // no symlinks (Windows without developer mode): copy, as huggingface_hub does
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** GET into `{blob}.incomplete`, resuming with Range after interruptions, then verify and rename into place. */
async function downloadBlob(ctx: Ctx, url: string, file: string, blob: string, meta: FileMeta): Promise<void> {
  const part = `${blob}.incomplete`;
  for (let attempt = 0; ; attempt++) {
    let have = sizeOf(part);
    if (meta.size !== undefined && have > meta.size) {
      rmSync(part, { force: true });
      have = 0;
    }
    if (meta.size !== undefined && have === meta.size) break;
    try {
      await getRange(ctx, url, file, part, have, meta.size);
      break;
    } catch (e) {
      if (!(e instanceof Unavailable)) throw e;
      if (attempt >= ctx.retries) {
        throw new LmSteerError(
          'NETWORK',
          `download of ${file} from ${ctx.repo} stopped after ${sizeOf(part)}${meta.size !== undefined ? ` of ${meta.size}` : ''} bytes (${e.message})`,
          `run the same command again: it resumes from ${part}`,
        );
      }
    }
  }
  const got = sizeOf(part);
  if (meta.size !== undefined && got !== meta.size) {
    rmSync(part, { force: true });
    throw new LmSteerError(
      'NETWORK',
      `download of ${file} from ${ctx.repo} has ${got} bytes, the hub announced ${meta.size}`,
      'run the same command again',
    );
  }
  if (SHA256_RE.test(meta.etag)) {
    const sha = await sha256File(part);
    if (sha !== meta.etag) {
      rmSync(part, { force: true });
      throw new LmSteerError(
        'NETWORK',
        `download of ${file} from ${ctx.repo} is corrupt: sha256 ${sha}, expected ${meta.etag}`,
        'run the same command again (the corrupt partial file was removed); if it persists, a proxy may be altering downloads',
      );
    }
  }
  renameSync(part, blob);
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** One GET from byte `from` (following redirects to the CDN), appended to `part`. Throws Unavailable on cuts. */
async function getRange(
  ctx: Ctx,
  firstUrl: string,
  file: string,
  part: string,
  from: number,
  total: number | undefined,
): Promise<void> {
  let url = firstUrl;
  let res: Response;
  for (let hop = 0; ; hop++) {
    const extra: Record<string, string> = from > 0 ? { range: `bytes=${from}-` } : {};
    res = await request(url, { headers: headers(ctx, url, extra) });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location && hop < 10) {
      url = new URL(location, url).toString();
      continue;
    }
    break;
  }
  if (res.status === 416) {
    // our partial file does not fit the remote one: start over
    rmSync(part, { force: true });
    throw new Unavailable('HTTP 416, restarting from byte 0');
  }
  if (res.status >= 400) {
    const err = httpError(ctx, ctx.revision, file, res, true);
    throw err === 'missing' ? new Error('unreachable') : err;
  }
  if (!res.body) throw new Unavailable('empty response body');
  // 206: the server resumed; 200: it ignored Range, so the file starts over
  const append = res.status === 206 && from > 0;
  if (append && !(res.headers.get('content-range') ?? '').startsWith(`bytes ${from}-`)) {
    throw new LmSteerError(
      'NETWORK',
      `${url} resumed ${file} at the wrong offset (${res.headers.get('content-range')}, wanted byte ${from})`,
      `delete ${part} and run again`,
    );
  }
  const start = append ? from : 0;
  const bar = progressBar(ctx, file, total, start);
  let done = start;
  const t0 = Date.now();
  const out = createWriteStream(part, { flags: append ? 'a' : 'w' });
  try {
    await pipeline(
      res.body,
      async function* (source: AsyncIterable<Uint8Array>) {
        for await (const chunk of source) {
          done += chunk.length;
          bar?.update(done, { speed: formatBytes(((done - start) * 1000) / Math.max(1, Date.now() - t0)) + '/s' });
          yield chunk;
        }
      },
      out,
    );
  } catch (e) {
    // A cut connection rejects the pipeline while a write may still be in flight; the caller then resumes from the
    // file's size, so wait until the stream has closed (fs streams close after their pending write), or the late
    // write would land after the resumed bytes.
    if (!out.closed) await new Promise<void>((done) => out.once('close', () => done()));
    if (e instanceof LmSteerError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EACCES' || code === 'EROFS') {
      throw new LmSteerError(
        'LIMIT',
        `cannot write ${part}: ${code}`,
        'free disk space or set HF_HUB_CACHE to a writable folder with room',
        { cause: e },
      );
    }
    throw new Unavailable((e as Error).message);
  } finally {
    bar?.stop();
  }
}

function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A cli-progress bar on stderr with size, speed and ETA; none when quiet or when stderr is not a terminal. */
function progressBar(
  ctx: Ctx,
  file: string,
  total: number | undefined,
  start: number,
): cliProgress.SingleBar | undefined {
  if (ctx.quiet || !ctx.progressStream.isTTY) return undefined;
  const bar = new cliProgress.SingleBar(
    {
      stream: ctx.progressStream,
      format: `${file} |{bar}| {percentage}% | {value}/{total} | {speed} | ETA {eta_formatted}`,
      formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatBytes(v) : String(v)),
      progressCalculationRelative: true, // the ETA counts from where a resumed download started
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total ?? 0, start, { speed: '…' });
  return bar;
}

export type HubModel =
  | { kind: 'hf'; repo: string; revision: string; commit: string; dir: string }
  | { kind: 'llama2c'; repo: string; revision: string; commit: string; modelPath: string; tokenizerPath: string };

/** Short names for well-known llama2.c checkpoints: repo and its (model, tokenizer) files. */
const LLAMA2C_ALIASES: Record<string, { repo: string; model: string; tokenizer: string }> = {
  stories260k: {
    repo: 'karpathy/tinyllamas',
    model: 'stories260K/stories260K.bin',
    tokenizer: 'stories260K/tok512.bin',
  },
};

/**
 * A hub model ready to load: 'org/name[@rev]' or a bare legacy name like 'gpt2' → its snapshot folder with
 * config.json, tokenizer.json (+ the optional generation_config.json, tokenizer_config.json) and model.safetensors
 * or the shards model.safetensors.index.json names. 'stories260K' → karpathy/tinyllamas' llama2.c files.
 */
export async function resolveHubModel(spec: string, opts: HubDownloadOptions = {}): Promise<HubModel> {
  const [name, rev] = spec.split('@', 2) as [string, string | undefined];
  const alias = LLAMA2C_ALIASES[name.toLowerCase()];
  if (alias) {
    const revision = rev ?? opts.revision ?? 'main';
    const { dir, commit } = await downloadRepoFiles(alias.repo, [alias.model, alias.tokenizer], { ...opts, revision });
    return {
      kind: 'llama2c',
      repo: alias.repo,
      revision,
      commit,
      modelPath: join(dir, alias.model),
      tokenizerPath: join(dir, alias.tokenizer),
    };
  }
  const parsed = parseHubSpec(spec);
  const revision = spec.includes('@') ? parsed.revision : (opts.revision ?? parsed.revision);
  const INDEX = 'model.safetensors.index.json';
  const first = await downloadRepoFiles(
    parsed.repo,
    ['config.json', 'tokenizer.json', 'generation_config.json', 'tokenizer_config.json', INDEX],
    { ...opts, revision, allowMissing: ['generation_config.json', 'tokenizer_config.json', INDEX] },
  ).catch((e: unknown) => {
    if (e instanceof LmSteerError && e.code === 'NOT_FOUND' && e.message.startsWith('file tokenizer.json')) {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${parsed.repo} has no tokenizer.json`,
        'lmsteer needs a fast-tokenizer tokenizer.json; save one with transformers (AutoTokenizer.from_pretrained(...).save_pretrained(dir)) and use --model dir',
        { cause: e },
      );
    }
    throw e;
  });
  // later files come from the same commit as the first ones
  const pinned = { ...opts, revision: first.commit };
  const indexPath = join(first.dir, INDEX);
  let weights = ['model.safetensors'];
  if (existsSync(indexPath)) {
    let map: unknown;
    try {
      map = (JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: unknown }).weight_map;
    } catch (e) {
      throw new LmSteerError(
        'BAD_FILE',
        `${indexPath} is not valid JSON: ${(e as Error).message}`,
        'delete it from the cache and download again',
        { cause: e },
      );
    }
    if (!map || typeof map !== 'object')
      throw new LmSteerError(
        'BAD_FILE',
        `${indexPath} has no "weight_map" object`,
        'the index is corrupt; delete it from the cache and download again',
      );
    weights = [...new Set(Object.values(map as Record<string, unknown>).map(String))].sort();
  }
  try {
    await downloadRepoFiles(parsed.repo, weights, pinned);
  } catch (e) {
    if (e instanceof LmSteerError && e.code === 'NOT_FOUND' && weights[0] === 'model.safetensors') {
      throw new LmSteerError(
        'UNSUPPORTED',
        `${parsed.repo}@${revision} has no model.safetensors or ${INDEX}`,
        'lmsteer reads safetensors weights only; convert the checkpoint (transformers: model.save_pretrained(dir, safe_serialization=True)) and use --model dir',
        { cause: e },
      );
    }
    throw e;
  }
  return { kind: 'hf', repo: parsed.repo, revision, commit: first.commit, dir: first.dir };
}
