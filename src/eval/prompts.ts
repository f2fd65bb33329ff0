/**
 * Prompt files for evaluation: DExperts / RealToxicityPrompts JSONL (`{"prompt": {"text": ...}, ...}`, every
 * other field kept in `record`) or plain text, one prompt per line. The format follows the extension
 * (.jsonl/.json/.ndjson → JSONL, .txt → text) or, otherwise, the first non-blank line ('{' → JSONL).
 */
import { extname } from 'node:path';
import { FILE_LIMITS, readTextFile } from '../formats/safeRead.js';
import { LmSteerError } from '../util/errors.js';

export interface Prompt {
  text: string;
  /** 1-based line number in the file, for messages and to join results back. */
  line: number;
  /** The whole JSON record of a JSONL line (e.g. RTP's prompt toxicity, continuation); absent for text files. */
  record?: Record<string, unknown>;
}

export type PromptFormat = 'jsonl' | 'text';

export interface ReadPromptsOptions {
  format?: PromptFormat | 'auto';
  /** Keep only the first `limit` prompts. */
  limit?: number;
}

export async function readPrompts(path: string, opts: ReadPromptsOptions = {}): Promise<Prompt[]> {
  // a regular file under a cap (safeRead.ts): a FIFO or /dev/zero here would hang or exhaust memory
  const content = readTextFile(path, FILE_LIMITS.dataset, 'prompt file');
  const format = opts.format && opts.format !== 'auto' ? opts.format : detectFormat(path, content);
  const prompts = parsePrompts(content, path, format);
  if (prompts.length === 0) {
    throw new LmSteerError(
      'BAD_DATA',
      `prompt file ${path} holds no prompts`,
      format === 'jsonl' ? 'expected one {"prompt": {"text": ...}} object per line' : 'expected one prompt per line',
    );
  }
  if (opts.limit !== undefined) {
    if (!(Number.isInteger(opts.limit) && opts.limit > 0))
      throw new LmSteerError('BAD_ARGUMENT', `prompt limit is ${opts.limit}; expected a positive integer`);
    return prompts.slice(0, opts.limit);
  }
  return prompts;
}

export function detectFormat(path: string, content: string): PromptFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.json' || ext === '.ndjson') return 'jsonl';
  if (ext === '.txt') return 'text';
  const first = content.split('\n').find((l) => l.trim() !== '');
  return first?.trimStart().startsWith('{') ? 'jsonl' : 'text';
}

/** Parse file content; `source` names the file in errors. Blank lines are skipped in both formats. */
export function parsePrompts(content: string, source: string, format: PromptFormat): Prompt[] {
  const lines = content.replace(/^\uFEFF/, '').split('\n');
  const out: Prompt[] = [];
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    if (format === 'text') out.push({ text: line, line: i + 1 });
    else out.push(parseJsonLine(line, source, i + 1));
  });
  return out;
}

function parseJsonLine(line: string, source: string, lineNo: number): Prompt {
  const where = `${source}:${lineNo}`;
  const shape =
    'expected a JSON object with {"prompt": {"text": "..."}} (or "prompt"/"text" as a string) on every line';
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch (e) {
    throw new LmSteerError('BAD_DATA', `prompt file ${where} is not valid JSON: ${(e as Error).message}`, shape, {
      cause: e,
    });
  }
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
    throw new LmSteerError(
      'BAD_DATA',
      `prompt file ${where} holds ${Array.isArray(rec) ? 'an array' : JSON.stringify(rec)}, not an object`,
      shape,
    );
  }
  const r = rec as Record<string, unknown>;
  const p = r.prompt;
  const text =
    typeof p === 'object' && p !== null && typeof (p as Record<string, unknown>).text === 'string'
      ? ((p as Record<string, unknown>).text as string)
      : typeof p === 'string'
        ? p
        : p === undefined && typeof r.text === 'string'
          ? r.text
          : undefined;
  if (text === undefined)
    throw new LmSteerError('BAD_DATA', `prompt file ${where} has no prompt text (field prompt.text)`, shape);
  return { text, line: lineNo, record: r };
}
