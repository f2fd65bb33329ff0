/**
 * Training datasets: texts with a steer value each, read from JSONL, CSV, TSV or plain .txt files (several per
 * run, each optionally with a fixed label: `toxic.txt:-1`), mapped through a label map (labels.ts), optionally
 * balanced as the reference does for toxicity.
 *
 * The reference's toxicity data is balanced in preprocessing: the clean (toxicity = 0) comments are randomly
 * subsampled to as many as there are toxic ones (Glaciohound/LM-Steer data/toxicity/toxicity_preprocess.sh,
 * `random_sample.py $N $n`), and `--subset k` then keeps the first k of each class
 * (experiments/training/data.py, load_toxicity_data). `balance: 'downsample'` and `perClassLimit` do the same
 * for any labels here. Sentiment data is not balanced there, so the default is no balancing.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { readExactly } from '../formats/readAt.js';
import { FILE_LIMITS, openRegularFile } from '../formats/safeRead.js';
import { LmSteerError } from '../util/errors.js';
import { applyLabelMap, parseLabelMap, type LabelMapReport, type LabelMapSpec, type RawLabel } from './labels.js';

export type DataFormat = 'jsonl' | 'csv' | 'tsv' | 'txt';

export interface DatasetSource {
  path: string;
  /** Every example of this file gets this steer value (no label field is read, no label map applied). */
  label?: number;
  format?: DataFormat;
  /** Field (JSONL: dotted path like `prompt.text`; CSV/TSV: header name, or column index when headerless). */
  textField?: string;
  labelField?: string;
  /** CSV/TSV only: whether the first row names the columns; default: detected. */
  header?: boolean;
}

export interface Example {
  text: string;
  /** The steer value of the trained slot. */
  label: number;
  file: string;
  line: number;
}

export interface LoadOptions {
  /** How raw labels become steer values; default `binary`. A string is parsed by parseLabelMap. */
  labelMap?: LabelMapSpec | string;
  /** Defaults for sources that name none. */
  textField?: string;
  labelField?: string;
  /** `downsample`: every label value keeps as many examples as the rarest one (seeded random choice). */
  balance?: 'none' | 'downsample';
  /** Keep at most this many examples per label value, the first ones in file order (reference `--subset`). */
  perClassLimit?: number;
  /** Seed of the balancing choice; default 0. */
  seed?: number;
  /** JSONL/txt: strip one pair of literal double quotes wrapping a whole text (the lowercased SST-5 jsonl has them). Default true. */
  stripQuotes?: boolean;
}

export interface DatasetSummary {
  files: { path: string; format: DataFormat; examples: number; skippedEmpty: number; labels: string }[];
  /** Examples per steer value, after balancing. */
  perLabel: { label: number; count: number }[];
  total: number;
  balancing: string;
}

export interface Dataset {
  examples: Example[];
  summary: DatasetSummary;
  /** sha256 over the (text, label) pairs in order: what a resumed training run checks it still trains on. */
  hash: string;
}

/**
 * A dataset file is read whole (V8 strings stop near 512 M characters, and the examples stay in memory), so
 * files are capped; one line (JSONL/TXT) or record (CSV/TSV) is capped well below that, and checked on the
 * bytes before anything is decoded or parsed: a 200 MB JSONL line aborted V8 when it was tokenized.
 */
export const DATA_LIMITS = { fileBytes: FILE_LIMITS.dataset, lineChars: 4 << 20 };

export const TEXT_FIELDS = ['text', 'sentence', 'content', 'comment_text', 'review', 'document'];
export const LABEL_FIELDS = ['label', 'labels', 'class', 'sentiment', 'polarity', 'toxicity'];

const NUMBER_SUFFIX = /^(.+):([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)$/i;

/** `path` or `path:label` (only a trailing `:number` is a label, so paths with other colons stay whole). */
export function parseSourceSpec(spec: string): DatasetSource {
  const m = NUMBER_SUFFIX.exec(spec);
  // A file literally named `x:1` that exists (and `x` does not) is a path, not a labelled path.
  if (!m || (existsSync(spec) && !existsSync(m[1]!))) return { path: spec };
  return { path: m[1]!, label: Number(m[2]) };
}

export function detectFormat(path: string): DataFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.tsv') return 'tsv';
  if (ext === '.txt' || ext === '') return 'txt';
  throw new LmSteerError(
    'UNSUPPORTED',
    `${path}: unknown dataset format "${ext}"`,
    'use .jsonl, .csv, .tsv or .txt (one text per line)',
  );
}

interface RawExample {
  text: string;
  label?: string;
  line: number;
}

/** Read every source, map labels, balance; throws BAD_DATA naming file and line for anything malformed. */
export function loadDataset(sources: readonly (DatasetSource | string)[], opts: LoadOptions = {}): Dataset {
  if (sources.length === 0)
    throw new LmSteerError(
      'BAD_ARGUMENT',
      'no dataset files given',
      'pass at least one file, e.g. toxic.txt:-1 clean.txt:1',
    );
  const labelMap =
    typeof opts.labelMap === 'string' ? parseLabelMap(opts.labelMap) : (opts.labelMap ?? { kind: 'binary' });
  const examples: Example[] = [];
  const files: DatasetSummary['files'] = [];
  for (const s of sources) {
    const src = typeof s === 'string' ? parseSourceSpec(s) : s;
    const { raws, skippedEmpty, format } = readSource(src, opts);
    let values: number[];
    let report: LabelMapReport;
    if (src.label !== undefined) {
      if (!Number.isFinite(src.label))
        throw new LmSteerError('BAD_ARGUMENT', `${src.path}: fixed label ${src.label} is not a finite number`);
      values = raws.map(() => src.label!);
      report = { file: src.path, description: `fixed label ${src.label}` };
    } else {
      const labels: RawLabel[] = raws.map((r) => ({ value: r.label!, file: src.path, line: r.line }));
      ({ values, report } = applyLabelMap(labelMap, labels, src.path));
    }
    raws.forEach((r, i) => examples.push({ text: r.text, label: values[i]!, file: src.path, line: r.line }));
    files.push({ path: src.path, format, examples: raws.length, skippedEmpty, labels: report.description });
  }
  const { kept, balancing } = balance(examples, opts);
  const counts = new Map<number, number>();
  for (const e of kept) counts.set(e.label, (counts.get(e.label) ?? 0) + 1);
  return {
    examples: kept,
    summary: {
      files,
      perLabel: [...counts].sort((a, b) => a[0] - b[0]).map(([label, count]) => ({ label, count })),
      total: kept.length,
      balancing,
    },
    hash: hashExamples(kept),
  };
}

/** sha256 over (label, text) pairs in order: the identity of a training set (trainLoop checks it on resume). */
export function hashExamples(examples: readonly { text: string; label: number }[]): string {
  const hash = createHash('sha256');
  for (const e of examples) hash.update(`${e.label}\u0000${e.text}\u0001`);
  return hash.digest('hex');
}

/** A few lines for the terminal: files, label mapping, counts per steer value. */
export function describeDataset(ds: Dataset): string {
  const lines = ds.summary.files.map(
    (f) =>
      `  ${f.path} (${f.format}): ${f.examples} examples, ${f.labels}${f.skippedEmpty ? `, ${f.skippedEmpty} empty texts skipped` : ''}`,
  );
  lines.push(
    `  per steer value: ${ds.summary.perLabel.map((p) => `${p.label}: ${p.count}`).join(', ')} (${ds.summary.total} total; ${ds.summary.balancing})`,
  );
  return lines.join('\n');
}

function readSource(
  src: DatasetSource,
  opts: LoadOptions,
): { raws: RawExample[]; skippedEmpty: number; format: DataFormat } {
  if (!existsSync(src.path)) {
    throw new LmSteerError(
      'NOT_FOUND',
      `dataset file ${src.path} does not exist`,
      'check the path (a trailing :number is read as the file’s label)',
    );
  }
  const format = src.format ?? detectFormat(src.path);
  const { fd, size } = openRegularFile(src.path, 'dataset file');
  let bytes: Buffer;
  try {
    if (size > DATA_LIMITS.fileBytes) {
      throw new LmSteerError(
        'BAD_DATA',
        `dataset file ${src.path} is ${size} bytes, more than the ${DATA_LIMITS.fileBytes}-byte limit`,
        'split it into several files, or sample it: a steer trains on thousands of examples, not millions',
      );
    }
    bytes = Buffer.allocUnsafe(size);
    readExactly(fd, bytes, 0, src.path);
  } finally {
    closeSync(fd);
  }
  if (format !== 'csv') checkLineLengths(bytes, src.path);
  const content = bytes.toString('utf8').replace(/^\uFEFF/, '');
  const needLabel = src.label === undefined;
  const strip = opts.stripQuotes ?? true;
  let raws: RawExample[];
  if (format === 'jsonl') raws = readJsonl(src, content, needLabel, opts);
  else if (format === 'txt') raws = readTxt(src, content, needLabel);
  else raws = readTable(src, content, format, needLabel, opts);
  let skippedEmpty = 0;
  const kept: RawExample[] = [];
  for (const r of raws) {
    let text = r.text;
    if (strip && format !== 'csv' && format !== 'tsv' && text.length >= 2 && text.startsWith('"') && text.endsWith('"'))
      text = text.slice(1, -1);
    if (text.trim() === '') skippedEmpty++;
    else kept.push({ ...r, text });
  }
  if (kept.length === 0) {
    throw new LmSteerError(
      'BAD_DATA',
      `dataset file ${src.path} has no examples${skippedEmpty ? ` (${skippedEmpty} empty texts)` : ''}`,
      'check the file and its text field',
    );
  }
  return { raws: kept, skippedEmpty, format };
}

/** Every line at most DATA_LIMITS.lineChars bytes (so characters), found on the raw bytes. */
function checkLineLengths(bytes: Buffer, path: string): void {
  let start = 0;
  for (let line = 1; start <= bytes.length; line++) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    if (end - start > DATA_LIMITS.lineChars) {
      throw new LmSteerError(
        'BAD_DATA',
        `${path}:${line}: the line is ${end - start} bytes, more than the ${DATA_LIMITS.lineChars}-byte limit`,
        'one example per line; training uses only the first --max-length tokens of a text anyway',
      );
    }
    start = end + 1;
  }
}

function readTxt(src: DatasetSource, content: string, needLabel: boolean): RawExample[] {
  const lines = content.split(/\r?\n/);
  const raws: RawExample[] = [];
  // SST's fastText format `__label__N<TAB>text` carries its own labels (sentiment/sst5_prrao87).
  const fastText = lines.filter((l) => l.trim() !== '').every((l) => /^__label__\S+\s/.test(l));
  lines.forEach((l, i) => {
    if (l.trim() === '') return;
    if (fastText) {
      const m = /^(__label__\S+)\s+(.*)$/.exec(l)!;
      raws.push({ text: m[2]!, label: m[1]!, line: i + 1 });
    } else raws.push({ text: l, line: i + 1 });
  });
  if (raws.length > 0 && needLabel && !fastText) {
    throw new LmSteerError(
      'BAD_DATA',
      `${src.path}: a plain text file has no labels`,
      `give the file a fixed label, e.g. ${src.path}:-1, or use JSONL/CSV with a label field`,
    );
  }
  return raws;
}

function readJsonl(src: DatasetSource, content: string, needLabel: boolean, opts: LoadOptions): RawExample[] {
  const raws: RawExample[] = [];
  let textField: string | undefined = src.textField ?? opts.textField;
  let labelField: string | undefined = src.labelField ?? opts.labelField;
  content.split(/\r?\n/).forEach((l, i) => {
    const line = i + 1;
    if (l.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(l);
    } catch (e) {
      throw new LmSteerError(
        'BAD_DATA',
        `${src.path}:${line}: not valid JSON (${(e as Error).message})`,
        'each line of a .jsonl file must be one JSON object',
      );
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      throw new LmSteerError(
        'BAD_DATA',
        `${src.path}:${line}: expected a JSON object, got ${Array.isArray(obj) ? 'an array' : JSON.stringify(obj)}`,
        'each line of a .jsonl file must be one JSON object',
      );
    }
    const rec = obj as Record<string, unknown>;
    textField ??= TEXT_FIELDS.find((f) => getPath(rec, f) !== undefined);
    if (textField === undefined) {
      throw new LmSteerError(
        'BAD_DATA',
        `${src.path}:${line}: no text field (looked for ${TEXT_FIELDS.join(', ')}; keys: ${Object.keys(rec).join(', ')})`,
        'name the field with --text-field',
      );
    }
    const text = getPath(rec, textField);
    if (typeof text !== 'string') {
      throw new LmSteerError(
        'BAD_DATA',
        `${src.path}:${line}: text field "${textField}" is ${text === undefined ? 'missing' : `not a string (${JSON.stringify(text)})`}`,
        'every line needs the same text field',
      );
    }
    let label: string | undefined;
    if (needLabel) {
      labelField ??= LABEL_FIELDS.find((f) => getPath(rec, f) !== undefined);
      const v = labelField === undefined ? undefined : getPath(rec, labelField);
      if (v === undefined || v === null || typeof v === 'object') {
        throw new LmSteerError(
          'BAD_DATA',
          labelField === undefined
            ? `${src.path}:${line}: no label field (looked for ${LABEL_FIELDS.join(', ')}; keys: ${Object.keys(rec).join(', ')})`
            : `${src.path}:${line}: label field "${labelField}" is ${v === undefined ? 'missing' : JSON.stringify(v)}`,
          `name the field with --label-field, or give the file a fixed label: ${src.path}:-1`,
        );
      }
      label = String(v);
    }
    raws.push({ text, label, line });
  });
  return raws;
}

function getPath(rec: Record<string, unknown>, path: string): unknown {
  if (path in rec) return rec[path];
  let cur: unknown = rec;
  for (const k of path.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

/** A header cell looks like an identifier; a data row has sentences and numbers. */
const HEADER_CELL = /^[A-Za-z_][\w .-]{0,63}$/;

function readTable(
  src: DatasetSource,
  content: string,
  format: 'csv' | 'tsv',
  needLabel: boolean,
  opts: LoadOptions,
): RawExample[] {
  let records: { record: string[]; info: { lines: number }; raw: string }[];
  try {
    records = parseCsv(content, {
      delimiter: format === 'tsv' ? '\t' : ',',
      // TSV datasets (GLUE SST-2, ParaDetox) are written without quoting; a stray " must stay text.
      quote: format === 'tsv' ? false : '"',
      relax_column_count: true,
      skip_empty_lines: true,
      max_record_size: DATA_LIMITS.lineChars,
      info: true,
      raw: true,
    }) as unknown as { record: string[]; info: { lines: number }; raw: string }[];
  } catch (e) {
    const err = e as Error & { lines?: number };
    throw new LmSteerError(
      'BAD_DATA',
      `${src.path}${err.lines ? `:${err.lines}` : ''}: cannot parse ${format.toUpperCase()} (${err.message})`,
      format === 'csv' ? 'check quoting; a TSV file should be named .tsv' : 'check the file',
    );
  }
  if (records.length === 0) return [];
  const first = records[0]!.record;
  const textName = src.textField ?? opts.textField;
  const labelName = src.labelField ?? opts.labelField;
  const header =
    src.header ??
    (first.every((c) => HEADER_CELL.test(c.trim())) || (textName !== undefined && first.includes(textName)));
  let textCol: number;
  let labelCol: number | undefined;
  const colsMsg = header ? `columns: ${first.join(', ')}` : `${first.length} columns, no header`;
  const findCol = (name: string | undefined, candidates: string[]): number => {
    if (name !== undefined) {
      if (header) return first.indexOf(name);
      const idx = Number(name);
      return Number.isInteger(idx) && idx >= 0 && idx < first.length ? idx : -1;
    }
    if (header) return first.findIndex((c) => candidates.includes(c.trim().toLowerCase()));
    return -1;
  };
  textCol = findCol(textName, TEXT_FIELDS);
  if (textCol < 0 && !header && textName === undefined) textCol = 0; // headerless `text,label` (e.g. the Jigsaw CSV)
  if (textCol < 0) {
    throw new LmSteerError(
      'BAD_DATA',
      `${src.path}: no text field ${textName ? `"${textName}"` : `(looked for ${TEXT_FIELDS.join(', ')})`} (${colsMsg})`,
      header ? 'name the text column with --text-field' : 'headerless files name columns by index: --text-field 0',
    );
  }
  if (needLabel) {
    labelCol = findCol(labelName, LABEL_FIELDS);
    if (labelCol < 0 && !header && labelName === undefined && first.length >= 2) labelCol = first.length - 1;
    if (labelCol < 0 || labelCol === textCol) {
      throw new LmSteerError(
        'BAD_DATA',
        `${src.path}: no label field ${labelName ? `"${labelName}"` : `(looked for ${LABEL_FIELDS.join(', ')})`} (${colsMsg})`,
        `name the label column with --label-field, or give the file a fixed label: ${src.path}:-1`,
      );
    }
  }
  const raws: RawExample[] = [];
  for (let i = header ? 1 : 0; i < records.length; i++) {
    const { record, info, raw } = records[i]!;
    // info.lines is where the record ends; a quoted field may span lines, and messages want where it starts.
    const line = info.lines - (raw.replace(/\r?\n$/, '').match(/\n/g)?.length ?? 0);
    if (textCol >= record.length)
      throw new LmSteerError(
        'BAD_DATA',
        `${src.path}:${line}: row has ${record.length} columns, the text is column ${textCol + 1}`,
        'fix that row',
      );
    let label: string | undefined;
    if (labelCol !== undefined) {
      label = record[labelCol];
      if (label === undefined || label.trim() === '')
        throw new LmSteerError('BAD_DATA', `${src.path}:${line}: empty label`, 'fix that row or drop it');
    }
    raws.push({ text: record[textCol]!, label, line });
  }
  return raws;
}

function balance(examples: Example[], opts: LoadOptions): { kept: Example[]; balancing: string } {
  const mode = opts.balance ?? 'none';
  const limit = opts.perClassLimit;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new LmSteerError('BAD_ARGUMENT', `per-class limit ${limit} is not a positive integer`);
  }
  if (mode === 'none' && limit === undefined) return { kept: examples, balancing: 'not balanced' };
  const groups = new Map<number, number[]>();
  examples.forEach((e, i) => {
    const g = groups.get(e.label);
    if (g) g.push(i);
    else groups.set(e.label, [i]);
  });
  let size = Infinity;
  if (mode === 'downsample') size = Math.min(...[...groups.values()].map((g) => g.length));
  const rng = xoroshiro128plus(opts.seed ?? 0);
  const keep = new Set<number>();
  for (const idx of groups.values()) {
    let chosen = idx;
    if (chosen.length > size) {
      // Partial Fisher–Yates: a uniformly random subset of `size`, then back to file order.
      const a = [...idx];
      for (let i = 0; i < size; i++) {
        const j = uniformInt(rng, i, a.length - 1);
        [a[i], a[j]] = [a[j]!, a[i]!];
      }
      chosen = a.slice(0, size).sort((x, y) => x - y);
    }
    if (limit !== undefined) chosen = chosen.slice(0, limit);
    for (const i of chosen) keep.add(i);
  }
  const parts = [];
  if (mode === 'downsample') parts.push(`downsampled to ${size} per steer value`);
  if (limit !== undefined) parts.push(`at most ${limit} per steer value`);
  return { kept: examples.filter((_, i) => keep.has(i)), balancing: parts.join(', ') };
}
