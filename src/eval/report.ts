/**
 * The result of an evaluation sweep: `report.json` (all numbers, the configuration, scorer fingerprints) and
 * `report.md`, a table laid out like the paper's (Han et al. 2024, Tables 1–2): one row per setting, a column
 * per metric present, optionally followed by the paper's published numbers as reference rows.
 *
 * Numbers people can trust: each metric with its 95% interval when the row has one (summary.ts), how many
 * generations the PPL < 1e4 filter kept, pooled and median perplexity beside the filtered mean, the share of
 * junk generations, and a ⚠ on a setting whose generations collapsed (most dropped by the filter, or junk).
 */
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../formats/atomicWrite.js';
import { LmSteerError } from '../util/errors.js';

export interface EvalMetricsRow {
  maxToxicity?: number;
  toxicityProb?: number;
  /** Mean per-generation perplexity (ppl < 1e4), the paper's fluency number. */
  ppl?: number;
  /** exp(total NLL / total tokens) over every generation, dropped ones included. */
  pooledPpl?: number;
  /** Median per-generation perplexity, dropped ones included. */
  medianPpl?: number;
  /** Generations in the PPL mean, and left out of it (PPL ≥ 1e4, or no token). */
  pplKept?: number;
  pplDropped?: number;
  /** Share of generations with replacement or control characters, in [0, 1]; shown as a percentage. */
  junkRate?: number;
  dist1?: number;
  dist2?: number;
  dist3?: number;
  /** Share of samples classified positive, in [0, 1]; shown as a percentage. */
  positiveRate?: number;
  /** 95% intervals [lo, hi] of the metrics above, by metric name (Wilson or bootstrap over prompts). */
  ci?: Partial<Record<MetricKey, [number, number]>>;
}

export type MetricKey =
  | 'maxToxicity'
  | 'toxicityProb'
  | 'ppl'
  | 'pooledPpl'
  | 'medianPpl'
  | 'dist1'
  | 'dist2'
  | 'dist3'
  | 'positiveRate'
  | 'junkRate';

export interface EvalRow extends EvalMetricsRow {
  /** What was evaluated, e.g. 'gpt2-large, detoxify steer' or 'neutral prompts'. */
  setting: string;
  steerValue?: number;
  prompts?: number;
  samplesPerPrompt?: number;
  /** The unsteered model, the row every setting is read against. */
  baseline?: boolean;
}

export interface ReferenceRow extends EvalMetricsRow {
  setting: string;
  steerValue?: number;
  /** Where the numbers come from, e.g. 'Han et al. 2024, Table 1'. */
  source: string;
}

export interface EvalReport {
  title: string;
  /** ISO time the report was made. */
  createdAt: string;
  /** Model, steer file, prompt file, sampling settings, seeds: whatever reproduces the run. */
  config?: Record<string, unknown>;
  scorers?: { name: string; attribute: string; version: string }[];
  rows: EvalRow[];
  reference?: ReferenceRow[];
}

interface Column {
  key: keyof EvalRow;
  header: string;
  format(v: number): string;
}

const pplFormat = (v: number) => (v >= 1e4 ? v.toExponential(1) : v.toFixed(2));

// Decimals as the paper prints them.
const COLUMNS: Column[] = [
  { key: 'steerValue', header: 'Steer value', format: (v) => String(v) },
  { key: 'maxToxicity', header: 'Max. toxicity ↓', format: (v) => v.toFixed(3) },
  { key: 'toxicityProb', header: 'Toxicity prob. ↓', format: (v) => v.toFixed(3) },
  { key: 'ppl', header: 'PPL ↓', format: pplFormat },
  { key: 'pplKept', header: 'PPL kept', format: (v) => String(v) },
  { key: 'pooledPpl', header: 'Pooled PPL', format: pplFormat },
  { key: 'medianPpl', header: 'Median PPL', format: pplFormat },
  { key: 'dist1', header: 'Dist-1 ↑', format: (v) => v.toFixed(2) },
  { key: 'dist2', header: 'Dist-2 ↑', format: (v) => v.toFixed(2) },
  { key: 'dist3', header: 'Dist-3 ↑', format: (v) => v.toFixed(2) },
  { key: 'positiveRate', header: 'Positive %', format: (v) => (100 * v).toFixed(2) },
  { key: 'junkRate', header: 'Junk % ↓', format: (v) => (100 * v).toFixed(1) },
];

/** Shares of a setting's generations past which it is flagged as collapsed. */
export const COLLAPSE = { dropped: 0.1, junk: 0.1 };

/** Why a row's generations look collapsed (empty when they do not). */
export function collapseReasons(r: EvalMetricsRow): string[] {
  const out: string[] = [];
  const total = (r.pplKept ?? 0) + (r.pplDropped ?? 0);
  if (total > 0 && r.pplDropped! / total >= COLLAPSE.dropped)
    out.push(
      `${r.pplDropped} of ${total} generations (${((100 * r.pplDropped!) / total).toFixed(0)}%) have PPL ≥ 10⁴ or no token and are left out of the PPL mean${Number.isFinite(r.pooledPpl) ? `; pooled PPL over all of them ${pplFormat(r.pooledPpl!)}` : ''}`,
    );
  if (r.junkRate !== undefined && r.junkRate >= COLLAPSE.junk)
    out.push(`${(100 * r.junkRate).toFixed(0)}% of generations contain replacement or control characters`);
  return out;
}

/** Stamp the creation time and check the rows. */
export function buildReport(r: Omit<EvalReport, 'createdAt'> & { createdAt?: string }): EvalReport {
  if (r.rows.length === 0)
    throw new LmSteerError('BAD_ARGUMENT', `report '${r.title}' has no rows`, 'evaluate at least one setting');
  return { ...r, createdAt: r.createdAt ?? new Date().toISOString() };
}

function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

export function renderReportMarkdown(report: EvalReport): string {
  const all: (EvalRow | ReferenceRow)[] = [...report.rows, ...(report.reference ?? [])];
  const cols = COLUMNS.filter((c) => all.some((r) => typeof r[c.key as keyof typeof r] === 'number'));
  const value = (r: EvalRow | ReferenceRow, c: Column) => {
    const v = r[c.key as keyof typeof r];
    if (c.key === 'pplKept') {
      const dropped = r.pplDropped ?? 0;
      return typeof v === 'number' ? `${v}/${v + dropped}` : '—';
    }
    if (!(typeof v === 'number' && Number.isFinite(v))) return '—';
    const ci = r.ci?.[c.key as MetricKey];
    return ci && Number.isFinite(ci[0]) && Number.isFinite(ci[1])
      ? `${c.format(v)} [${c.format(ci[0])}, ${c.format(ci[1])}]`
      : c.format(v);
  };
  const flagged = report.rows.map((r) => collapseReasons(r));
  const name = (r: EvalRow, i: number) =>
    `${cell(r.setting)}${r.baseline ? ' (baseline)' : ''}${flagged[i]!.length ? ' ⚠' : ''}`;
  const lines = [`# ${report.title}`, '', `Created ${report.createdAt}.`, ''];
  if (report.config && Object.keys(report.config).length > 0) {
    for (const [k, v] of Object.entries(report.config))
      lines.push(`- **${k}**: ${cell(typeof v === 'string' ? v : JSON.stringify(v))}`);
    lines.push('');
  }
  if (report.scorers?.length) {
    lines.push(
      'Scorers: ' + report.scorers.map((s) => `\`${s.name}\` (${s.attribute}; ${cell(s.version)})`).join(', ') + '.',
      '',
    );
  }
  lines.push(`| Setting | ${cols.map((c) => c.header).join(' | ')} |`);
  lines.push(`|---|${cols.map(() => '---:').join('|')}|`);
  report.rows.forEach((r, i) => lines.push(`| ${name(r, i)} | ${cols.map((c) => value(r, c)).join(' | ')} |`));
  for (const r of report.reference ?? [])
    lines.push(`| *${cell(r.setting)} (${cell(r.source)})* | ${cols.map((c) => `*${value(r, c)}*`).join(' | ')} |`);
  lines.push('');
  report.rows.forEach((r, i) => {
    if (flagged[i]!.length) lines.push(`⚠ **${cell(r.setting)}: collapsed?** ${flagged[i]!.join('; ')}.`, '');
  });
  if (report.reference?.length) lines.push('Rows in italics are published numbers, for reference.', '');
  const notes: string[] = [];
  if (cols.some((c) => c.key === 'maxToxicity' || c.key === 'toxicityProb'))
    notes.push(
      "Max. toxicity: mean over prompts of the highest score among that prompt's samples; toxicity prob.: share of prompts with any sample scored > 0.5.",
    );
  if (cols.some((c) => c.key === 'ppl'))
    notes.push(
      'PPL: mean over generations of their perplexity given the prompt (generations with PPL ≥ 10⁴ left out).',
    );
  if (cols.some((c) => c.key === 'pplKept'))
    notes.push(
      'PPL kept: generations in that mean / all; pooled PPL: exp(total NLL / total tokens) over all; median PPL: over all.',
    );
  if (cols.some((c) => c.key === 'junkRate'))
    notes.push('Junk %: generations containing U+FFFD (invalid UTF-8 bytes) or control characters.');
  if (report.rows.some((r) => r.ci && Object.keys(r.ci).length > 0))
    notes.push(
      '[lo, hi]: 95% interval — Wilson for toxicity prob. (one yes/no per prompt) and junk % (per generation), a bootstrap over prompts (1000 resamples) for the rest. Settings whose intervals overlap are not distinguishable on these prompts.',
    );
  if (cols.some((c) => c.key === 'dist1'))
    notes.push("Dist-n: distinct n-grams over total words among each prompt's samples, averaged over prompts.");
  if (cols.some((c) => c.key === 'positiveRate'))
    notes.push(
      "Positive %: share of each prompt's samples classified positive (prompt + continuation), averaged over prompts.",
    );
  if (notes.length) lines.push(...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

/** Write `report.json` and `report.md` into `dir` (which must exist), atomically. */
export function writeReport(dir: string, report: EvalReport): { jsonPath: string; mdPath: string } {
  const jsonPath = join(dir, 'report.json');
  const mdPath = join(dir, 'report.md');
  writeJsonAtomic(jsonPath, report); // NaN becomes null in JSON
  writeFileAtomic(mdPath, renderReportMarkdown(report));
  return { jsonPath, mdPath };
}
