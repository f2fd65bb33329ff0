/**
 * Terminal rendering of the lens: ANSI colours when writing to a TTY, plain text otherwise or when NO_COLOR is
 * set (https://no-color.org). Token text is sanitised so a token cannot emit escape sequences of its own.
 */
import { tokenLabel, type SteerDim } from './dims.js';
import type { TextEvidence } from './evidence.js';

/** Colour iff FORCE_COLOR is set (and not "0"), or the stream is a TTY and NO_COLOR is unset or empty. */
export function shouldColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  if (env.NO_COLOR) return false;
  return stream.isTTY === true;
}

/** Control characters (ESC, CSI, …) shown as visible escapes; newlines and tabs kept. */
export function sanitize(s: string): string {
  return s.replace(
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

const sgr = (code: string, s: string) => `\x1b[${code}m${s}\x1b[0m`;
const fmt = (x: number) => (x >= 0 ? '+' : '-') + Math.abs(x).toFixed(3);

export function dimsTerminal(dims: SteerDim[], opts: { color: boolean }): string {
  const list = (ts: SteerDim['positive']) => sanitize(ts.map((t) => tokenLabel(t.token)).join(', '));
  const lines: string[] = [];
  for (const d of dims) {
    const head = `#${d.index + 1}  σ = ${d.singularValue.toPrecision(4)}  cos(u, v) = ${d.alignment.toFixed(2)}`;
    lines.push(opts.color ? sgr('1', head) : head);
    const plus = '  + ';
    const minus = '  − ';
    lines.push((opts.color ? sgr('34', plus) : plus) + list(d.positive));
    lines.push((opts.color ? sgr('33', minus) : minus) + list(d.negative));
  }
  return lines.join('\n') + '\n';
}

// xterm-256 backgrounds, light → strong, all light enough for black text.
const BLUE = [195, 153, 117, 111];
const ORANGE = [230, 223, 222, 215];

export function evidenceTerminal(ev: TextEvidence, opts: { color: boolean }): string {
  const maxAbs = Math.max(0, ...ev.tokens.map((t) => Math.abs(t.evidence ?? 0)));
  const inSpan = new Int32Array(ev.tokens.length);
  ev.spans.forEach(([a, b], i) => inSpan.fill(i + 1, a, b));
  let out = '';
  ev.tokens.forEach(({ text, evidence }, t) => {
    const s = sanitize(text);
    const opens = inSpan[t] !== 0 && (t === 0 || inSpan[t - 1] !== inSpan[t]);
    const closes = inSpan[t] !== 0 && (t + 1 === ev.tokens.length || inSpan[t + 1] !== inSpan[t]);
    if (!opts.color) {
      out += (opens ? '[[' : '') + s + (closes ? `]]${inSpan[t]}` : '');
      return;
    }
    const codes = ['30'];
    if (evidence !== null && evidence !== 0 && maxAbs > 0) {
      const ramp = evidence > 0 ? BLUE : ORANGE;
      codes.push(`48;5;${ramp[Math.min(ramp.length - 1, Math.floor((Math.abs(evidence) / maxAbs) * ramp.length))]}`);
    }
    if (inSpan[t]) codes.push('1', '4');
    // Colour each line piece separately so backgrounds do not bleed across line ends.
    out += s
      .split('\n')
      .map((piece) => (piece && codes.length > 1 ? sgr(codes.join(';'), piece) : piece))
      .join('\n');
  });
  const summary = ev.spans.map(([a, b], i) => {
    const sum = ev.tokens.slice(a, b).reduce((x, tok) => x + (tok.evidence ?? 0), 0);
    return `  ${i + 1}. tokens ${a}–${b - 1} (${fmt(sum)}): ${sanitize(
      JSON.stringify(
        ev.tokens
          .slice(a, b)
          .map((x) => x.text)
          .join(''),
      ),
    )}`;
  });
  const legend = opts.color
    ? `${sgr('30;48;5;111', ' + ')} likelier at +1   ${sgr('30;48;5;215', ' − ')} likelier at −1   ${sgr('1;4', 'bold underlined')}: evidence spans`
    : 'Evidence spans are [[marked]]N.';
  return `${out}\n\n${legend}\n${summary.length ? summary.join('\n') : '  no span has positive evidence'}\n`;
}
