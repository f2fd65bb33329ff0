/**
 * Label maps: a dataset's raw labels (strings as read from the file) → steer values, the number each example's
 * trained slot is set to. The reference code turns every dataset into values in [−1, 1]
 * (Glaciohound/LM-Steer experiments/training/data.py): toxicity toxic −1 / clean +1, SST-2 `label*2 − 1`,
 * SST-5 `label/2 − 1` (SetFit/sst5 classes 0..4, so −1, −0.5, 0, 0.5, 1).
 *
 *   binary     0/1, neg/pos, negative/positive, false/true, −1/+1 → −1/+1. NB: with toxicity data labelled
 *              1 = toxic this gives toxic = +1, the opposite of the reference; use `1=-1,0=1` there.
 *   sst5       classes 0..4 (SetFit, yaolu jsonl) or 1..5 (SST's `__label__N` text files, prrao87) →
 *              class/2 − 1 on the 0-based class. `sst5` detects the convention per file (a 0 means 0-based,
 *              a 5 means 1-based, `__label__N` means 1-based); `sst5-0` / `sst5-1` force one.
 *   identity   numeric labels as they are.
 *   custom     `a=1,b=-1`: each raw label (compared exactly, after trimming) to a number.
 */
import { LmSteerError } from '../util/errors.js';

export type LabelMapSpec =
  | { kind: 'binary' }
  | { kind: 'sst5'; base: 'auto' | 0 | 1 }
  | { kind: 'identity' }
  | { kind: 'custom'; table: Map<string, number> };

/** One raw label with where it came from, for messages. */
export interface RawLabel {
  value: string;
  file: string;
  line: number;
}

/** What mapping a file's labels did, for the dataset summary (e.g. `sst5 classes 1..5 (1-based)`). */
export interface LabelMapReport {
  file: string;
  description: string;
}

const BINARY: Record<string, number> = {
  '0': -1,
  '1': 1,
  '-1': -1,
  '+1': 1,
  neg: -1,
  pos: 1,
  negative: -1,
  positive: 1,
  false: -1,
  true: 1,
};

/** Parse a `--label-map` value: `binary`, `sst5`, `sst5-0`, `sst5-1`, `identity`, or `a=1,b=-1`. */
export function parseLabelMap(spec: string): LabelMapSpec {
  const s = spec.trim();
  if (s === 'binary') return { kind: 'binary' };
  if (s === 'identity') return { kind: 'identity' };
  if (s === 'sst5') return { kind: 'sst5', base: 'auto' };
  if (s === 'sst5-0') return { kind: 'sst5', base: 0 };
  if (s === 'sst5-1') return { kind: 'sst5', base: 1 };
  if (s.includes('=')) {
    const table = new Map<string, number>();
    for (const part of s.split(',')) {
      const eq = part.lastIndexOf('=');
      const key = part.slice(0, eq).trim();
      const valueText = part.slice(eq + 1).trim();
      const value = Number(valueText);
      if (eq < 0 || key === '' || valueText === '' || !Number.isFinite(value)) {
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `label map "${spec}": "${part}" is not raw=number`,
          'write the custom map as raw=value pairs, e.g. "toxic=-1,clean=1"',
        );
      }
      if (table.has(key))
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `label map "${spec}" maps "${key}" twice`,
          'give each raw label one value',
        );
      table.set(key, value);
    }
    return { kind: 'custom', table };
  }
  throw new LmSteerError(
    'BAD_ARGUMENT',
    `unknown label map "${spec}"`,
    'use binary, sst5, sst5-0, sst5-1, identity, or a custom map like "neg=-1,pos=1"',
  );
}

/** SST's fastText-style label `__label__N` → `N`; other labels unchanged. */
export function stripFastTextLabel(raw: string): string {
  return raw.startsWith('__label__') ? raw.slice('__label__'.length) : raw;
}

/**
 * Map one file's raw labels to steer values. All labels of a file are mapped together because the sst5
 * convention (0- or 1-based) is a property of the file, not of one label.
 */
export function applyLabelMap(
  map: LabelMapSpec,
  labels: readonly RawLabel[],
  file: string,
): { values: number[]; report: LabelMapReport } {
  const bad = (l: RawLabel, allowed: string): never => {
    throw new LmSteerError(
      'BAD_DATA',
      `${l.file}:${l.line}: label "${l.value}" is not in the label map (${allowed})`,
      'fix that line, drop it, or choose another --label-map (binary, sst5, identity, or a custom "a=1,b=-1")',
    );
  };
  switch (map.kind) {
    case 'binary': {
      const values = labels.map(
        (l) =>
          BINARY[stripFastTextLabel(l.value).trim().toLowerCase()] ??
          bad(l, `binary: ${Object.keys(BINARY).join(', ')}`),
      );
      return { values, report: { file, description: 'binary labels → −1/+1' } };
    }
    case 'identity': {
      const values = labels.map((l) => {
        const t = stripFastTextLabel(l.value).trim();
        const v = Number(t);
        return t !== '' && Number.isFinite(v) ? v : bad(l, 'identity: numeric labels');
      });
      return { values, report: { file, description: 'numeric labels used as they are' } };
    }
    case 'custom': {
      const allowed = `custom: ${[...map.table.keys()].join(', ')}`;
      const values = labels.map(
        (l) => map.table.get(l.value.trim()) ?? map.table.get(stripFastTextLabel(l.value.trim())) ?? bad(l, allowed),
      );
      return {
        values,
        report: { file, description: `custom map ${[...map.table].map(([k, v]) => `${k}=${v}`).join(',')}` },
      };
    }
    case 'sst5':
      return applySst5(map.base, labels, file, bad);
  }
}

function applySst5(
  base: 'auto' | 0 | 1,
  labels: readonly RawLabel[],
  file: string,
  bad: (l: RawLabel, allowed: string) => never,
): { values: number[]; report: LabelMapReport } {
  const classes = labels.map((l) => {
    const t = stripFastTextLabel(l.value.trim());
    const c = Number(t);
    return t !== '' && Number.isInteger(c) && c >= 0 && c <= 5 ? c : bad(l, 'sst5: classes 0..4 or 1..5');
  });
  let b = base;
  let why = 'as asked';
  if (b === 'auto') {
    const zeroAt = classes.indexOf(0);
    const fiveAt = classes.indexOf(5);
    if (zeroAt >= 0 && fiveAt >= 0) {
      throw new LmSteerError(
        'BAD_DATA',
        `${file}: sst5 labels include both 0 (line ${labels[zeroAt]!.line}) and 5 (line ${labels[fiveAt]!.line}), so neither 0..4 nor 1..5`,
        'check the file; SST-5 has five classes',
      );
    }
    const fastText = labels.some((l) => l.value.trim().startsWith('__label__'));
    if (zeroAt >= 0) [b, why] = [0, 'a label 0 was seen'];
    else if (fiveAt >= 0) [b, why] = [1, 'a label 5 was seen'];
    else if (fastText) [b, why] = [1, '__label__N is SST’s 1-based text format'];
    else [b, why] = [0, 'neither 0 nor 5 seen; assumed 0..4 like SetFit/sst5 — use sst5-1 if the file is 1-based'];
  }
  const hi = b === 0 ? 4 : 5;
  const values = classes.map((c, i) =>
    c < b || c > hi ? bad(labels[i]!, `sst5 classes ${b}..${hi}`) : (c - b) / 2 - 1,
  );
  return { values, report: { file, description: `sst5 classes ${b}..${hi} (${b}-based: ${why}) → class/2 − 1` } };
}
