/**
 * One setting's folder on disk, the unit an evaluation resumes by: run.json (what produced the samples, compared
 * on restart) and generations.jsonl (DExperts format, one line per prompt in prompt order, appended and fsync'ed
 * a chunk at a time; a torn last line is what a kill leaves, and is cut off). run.ts decides what goes in them;
 * merge.ts reads shards' folders back.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../formats/atomicWrite.js';
import { makeDir } from '../formats/outDir.js';
import { LmSteerError } from '../util/errors.js';
import type { Prompt } from './prompts.js';

export const GENERATIONS_FILE = 'generations.jsonl';
export const RUN_FILE = 'run.json';
export const RUN_FORMAT = 'lmsteer-eval-run/1';

// ---------------------------------------------------------------------------------------------------------
// run.json: what must match for a folder's samples to be reused

export interface RunRecord {
  format: typeof RUN_FORMAT;
  /** Compared on restart: everything that changes a sample, a score or a perplexity. */
  identity: Record<string, unknown>;
  /** Shown only (paths can move; the hashes above say whether the content is the same). */
  info: Record<string, unknown>;
}

function flatten(o: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (o !== null && typeof o === 'object' && !Array.isArray(o)) {
    for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = JSON.stringify(o);
  return out;
}

/** Every leaf that differs between two records, as `path: was → now`: what an error names as changed. */
export function differences(was: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const a = flatten(was);
  const b = flatten(now);
  return [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .filter((k) => a[k] !== b[k])
    .map((k) => `${k}: ${a[k] ?? 'unset'} → ${b[k] ?? 'unset'}`);
}

// ---------------------------------------------------------------------------------------------------------
// generations.jsonl

export interface GenerationRecord {
  text: string;
  /** The scorer's probability of its attribute, under the attribute's name (e.g. "toxicity"). */
  [score: string]: unknown;
}

export interface Line {
  prompt: { text: string };
  generations: GenerationRecord[];
}

/**
 * Read the whole lines of a generations file; a last line without its newline is torn (the run was killed
 * mid-write) and is cut off the file. A broken whole line is not something a crash makes: refuse.
 */
export function readGenerations(path: string, opts: { repair?: boolean } = {}): Line[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  const end = text.lastIndexOf('\n') + 1;
  if (end < text.length && opts.repair) {
    const fd = openSync(path, 'r+');
    try {
      ftruncateSync(fd, Buffer.byteLength(text.slice(0, end), 'utf8'));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  const lines = text.slice(0, end).split('\n');
  lines.pop(); // after the last '\n'
  return lines.map((l, i) => {
    let rec: unknown;
    try {
      rec = JSON.parse(l);
    } catch (e) {
      throw new LmSteerError(
        'BAD_FILE',
        `${path}:${i + 1} is not valid JSON`,
        'the file was edited or damaged; rerun with --overwrite to start this setting over',
        { cause: e },
      );
    }
    const r = rec as Partial<Line>;
    if (typeof r?.prompt?.text !== 'string' || !Array.isArray(r.generations)) {
      throw new LmSteerError(
        'BAD_FILE',
        `${path}:${i + 1} has no prompt.text or generations`,
        'rerun with --overwrite to start this setting over',
      );
    }
    return r as Line;
  });
}

/** Check run.json against this run (or write it) and find how many prompts are already done. */
export function prepareDir(dir: string, record: RunRecord, prompts: Prompt[], overwrite: boolean): number {
  makeDir(dir);
  const runPath = join(dir, RUN_FILE);
  const genPath = join(dir, GENERATIONS_FILE);
  if (existsSync(runPath)) {
    let old: RunRecord;
    try {
      old = JSON.parse(readFileSync(runPath, 'utf8')) as RunRecord;
    } catch (e) {
      throw new LmSteerError('BAD_FILE', `${runPath} is not valid JSON`, 'rerun with --overwrite to start over', {
        cause: e,
      });
    }
    const diff = differences(old.identity ?? {}, record.identity);
    if (diff.length > 0 && !overwrite) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `${dir} holds results of another configuration (${diff.join('; ')})`,
        'rerun with the same settings to resume, use another --out, or pass --overwrite to discard them',
      );
    }
    if (diff.length > 0) rmSync(genPath, { force: true });
  } else if (existsSync(genPath) && !overwrite) {
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `${genPath} exists but ${RUN_FILE} does not, so its configuration is unknown`,
      'use another --out, or pass --overwrite to discard it',
    );
  } else rmSync(genPath, { force: true });
  writeJsonAtomic(runPath, record);
  const lines = readGenerations(genPath, { repair: true });
  const n = Math.min(lines.length, prompts.length);
  for (let i = 0; i < n; i++) {
    if (lines[i]!.prompt.text !== prompts[i]!.text) {
      throw new LmSteerError(
        'BAD_FILE',
        `${genPath}:${i + 1} is for prompt ${JSON.stringify(lines[i]!.prompt.text.slice(0, 40))}, but prompt ${i + 1} of the file is ${JSON.stringify(prompts[i]!.text.slice(0, 40))}`,
        'rerun with --overwrite to start this setting over',
      );
    }
  }
  return n;
}

/** Append whole lines and fsync them: a chunk is on disk before the run goes on (a kill tears at most one line). */
export function appendLines(path: string, lines: Line[]): void {
  const data = Buffer.from(lines.map((l) => JSON.stringify(l) + '\n').join(''), 'utf8');
  const fd = openSync(path, 'a');
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
