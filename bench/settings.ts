/** What every benchmark measure shares: the settings of the runs and the shape of a result. */
import { readFileSync } from 'node:fs';
import type { Summary } from './stats.js';

export const THREADS = 2;
/** Context before decoding, decode steps per timed window, windows per run. */
export const SETTINGS = {
  promptTokens: 200,
  windowSteps: 16,
  b1Runs: 3,
  b1Windows: 2,
  batchRows: 25,
  batchWindows: 3,
  steerRank: 768,
  steerSlots: 2,
  trainTexts: 32,
  trainMinTokens: 40,
  trainMaxTokens: 60,
  trainSteps: 3,
  extractRows: 32,
  extractTokens: 48,
  evalPrompts: 4,
  evalSamples: 25,
  evalNewTokens: 20,
  evalTopK: 50,
};

export interface MeasureResult {
  measure: string;
  config: Record<string, unknown>;
  metrics: Record<string, Summary>;
  peakRssMiB: number;
  /** RSS once the model is loaded, before the timed work (MiB). */
  loadedRssMiB?: number;
  notes: string[];
}

export function readVersion(pkg: string): string | undefined {
  try {
    const url = new URL(`../node_modules/${pkg}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
  } catch {
    return undefined;
  }
}
