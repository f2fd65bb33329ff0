/**
 * `lmsteer eval merge`: the output folders of `lmsteer eval --shard i/n` (i = 0..n−1, on any machines) → one
 * folder with what the unsharded run writes: each setting's generations.jsonl (shard i holds prompts i, i+n, …
 * in order, so prompt j is line ⌊j/n⌋ of shard j mod n), run.json, metrics.json, and the report and plots.
 * The lines are copied as they are and the rows computed from them as run.ts computes them, so the merged
 * report equals an unsharded run's with the same seed.
 *
 * Checked first: every shard 0..n−1 given once, the same eval.json (but for the shard), the same run.json
 * identity per setting (but for the shard), and every shard complete (rerun an incomplete one to resume it).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../formats/atomicWrite.js';
import { lockOutDir, makeDir } from '../formats/outDir.js';
import { LmSteerError } from '../util/errors.js';
import { EVAL_FILE, EVAL_FORMAT, finishReport, settingMetrics, shardIndices, type EvalRecord } from './run.js';
import { differences, GENERATIONS_FILE, readGenerations, RUN_FILE, RUN_FORMAT, type RunRecord } from './runFolder.js';
import type { EvalReport } from './report.js';

export interface MergeResult {
  report: EvalReport;
  files: { reportJson: string; reportMd: string; plots: string[] };
  /** Prompts per setting, all shards together. */
  prompts: number;
}

function readJson<T>(path: string, what: string): T {
  if (!existsSync(path))
    throw new LmSteerError(
      'NOT_FOUND',
      `${path} does not exist`,
      `give the --out folders of \`lmsteer eval --shard i/n\` runs (${what})`,
    );
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new LmSteerError('BAD_FILE', `${path} is not valid JSON`, 'the folder was edited or damaged', { cause: e });
  }
}

const withoutShard = <T extends object>(o: T): T => {
  const { shard: _s, ...rest } = o as T & { shard?: unknown };
  return rest as T;
};

export async function mergeShards(
  shardDirs: readonly string[],
  outDir: string,
  opts: { overwrite?: boolean } = {},
): Promise<MergeResult> {
  if (shardDirs.length === 0) throw new LmSteerError('BAD_ARGUMENT', 'give the shard folders to merge');
  const records = shardDirs.map((d) => ({ dir: d, rec: readJson<EvalRecord>(join(d, EVAL_FILE), 'eval.json') }));
  for (const { dir, rec } of records) {
    if (rec.format !== EVAL_FORMAT)
      throw new LmSteerError('BAD_FILE', `${join(dir, EVAL_FILE)} is not an lmsteer evaluation record`);
    if (!rec.shard)
      throw new LmSteerError('BAD_ARGUMENT', `${dir} is an unsharded run`, 'merge the folders of --shard i/n runs');
  }
  const n = records[0]!.rec.shard!.count;
  const byIndex = Array.from<(typeof records)[number] | undefined>({ length: n });
  for (const r of records) {
    const { index, count } = r.rec.shard!;
    if (count !== n)
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `${r.dir} is shard ${index}/${count}, ${records[0]!.dir} is of ${n} shards`,
        'merge the shards of one run',
      );
    if (byIndex[index])
      throw new LmSteerError('BAD_ARGUMENT', `${byIndex[index]!.dir} and ${r.dir} are both shard ${index}/${n}`);
    byIndex[index] = r;
  }
  const missing = byIndex.map((r, i) => (r ? -1 : i)).filter((i) => i >= 0);
  if (missing.length)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      `shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${n}`).join(', ')} missing`,
      `give all ${n} shard folders`,
    );
  const shards = byIndex as (typeof records)[number][];
  const first = withoutShard({ ...shards[0]!.rec, config: withoutShard(shards[0]!.rec.config) });
  for (const s of shards.slice(1)) {
    const diff = differences(
      first as unknown as Record<string, unknown>,
      withoutShard({ ...s.rec, config: withoutShard(s.rec.config) }) as unknown as Record<string, unknown>,
    );
    if (diff.length)
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `${s.dir} is another evaluation than ${shards[0]!.dir} (${diff.slice(0, 4).join('; ')})`,
        'merge shards of one command, run with the same flags',
      );
  }
  const total = first.prompts;

  // Per setting: the same identity everywhere, every shard complete; then interleave.
  const merged = first.settings.map((setting) => {
    const runs = shards.map((s) => readJson<RunRecord>(join(s.dir, setting.dir, RUN_FILE), 'run.json'));
    const identity = withoutShard(runs[0]!.identity);
    runs.forEach((r, i) => {
      const diff = differences(identity, withoutShard(r.identity));
      if (diff.length)
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `${join(shards[i]!.dir, setting.dir)} was generated with another configuration (${diff.slice(0, 4).join('; ')})`,
          'rerun that shard with the same flags',
        );
    });
    const lines = shards.map((s, i) => {
      const path = join(s.dir, setting.dir, GENERATIONS_FILE);
      const want = shardIndices(total, { index: i, count: n }).length;
      const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
      const got = text.split('\n').slice(0, -1);
      if (got.length < want)
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `shard ${i}/${n} (${s.dir}) has ${got.length} of its ${want} prompts for setting ${setting.label}`,
          'rerun that shard (the same command) to finish it',
        );
      readGenerations(path); // every line well-formed
      return got.slice(0, want);
    });
    const out: string[] = [];
    for (let j = 0; j < total; j++) out.push(lines[j % n]![Math.floor(j / n)]!);
    return { setting, identity, info: runs[0]!.info, out };
  });

  const lock = lockOutDir(outDir, 'eval merge');
  try {
    if (existsSync(join(outDir, EVAL_FILE)) && !opts.overwrite)
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `${outDir} already holds an evaluation`,
        'merge into a new folder, or pass --overwrite',
      );
    const results = merged.map(({ setting, identity, info, out }) => {
      const dir = join(outDir, setting.dir);
      makeDir(dir);
      writeFileAtomic(join(dir, GENERATIONS_FILE), out.map((l) => `${l}\n`).join(''));
      writeJsonAtomic(join(dir, RUN_FILE), {
        format: RUN_FORMAT,
        identity,
        info: { ...info, mergedFrom: shards.map((s) => join(s.dir, setting.dir)) },
      });
      const row = settingMetrics(
        {
          label: setting.label,
          dir,
          values: setting.values,
          steerValue: setting.steerValue,
          baseline: setting.baseline,
        },
        total,
        first.samples,
        first.attribute,
        first.seed,
      );
      writeJsonAtomic(join(dir, 'metrics.json'), row);
      return { steerValue: setting.steerValue, row };
    });
    const { report, files, plots } = await finishReport(outDir, first as EvalRecord, results);
    return { report, files: { reportJson: files.jsonPath, reportMd: files.mdPath, plots }, prompts: total };
  } finally {
    lock.release();
  }
}
