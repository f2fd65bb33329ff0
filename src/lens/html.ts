/**
 * Self-contained HTML for the lens: the table of a steer's word dimensions and a text with evidence-coloured
 * tokens. No scripts, no external assets; every piece of text is escaped. Colour is never the only cue:
 * spans are also outlined, bold and announced to screen readers, and each token carries its value in `title`.
 */
import { tokenLabel, type SteerDim } from './dims.js';
import type { TextEvidence } from './evidence.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

// Blue (+) / orange (−) are distinguishable with the common colour-vision deficiencies (ColorBrewer PuOr/RdBu).
const POSITIVE: [number, number, number] = [33, 102, 172];
const NEGATIVE: [number, number, number] = [230, 97, 1];
/** At most this share of the base colour is mixed into white, which keeps black text at ≥ 4.5:1 (WCAG AA). */
const MAX_MIX = 0.5;

/** Background for a token with evidence `x`, scaled by the largest |evidence| of the text. */
export function evidenceColor(x: number | null, maxAbs: number): string {
  if (x === null || x === 0 || !(maxAbs > 0)) return '#ffffff';
  const t = Math.min(1, Math.abs(x) / maxAbs) * MAX_MIX;
  const base = x > 0 ? POSITIVE : NEGATIVE;
  return (
    '#' +
    base
      .map((c) =>
        Math.round(255 + (c - 255) * t)
          .toString(16)
          .padStart(2, '0'),
      )
      .join('')
  );
}

/** WCAG 2 contrast ratio between two #rrggbb colours. */
export function contrastRatio(a: string, b: string): number {
  const lum = (hex: string) => {
    const [r, g, bl] = [1, 3, 5].map((i) => {
      const c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * bl!;
  };
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x! + 0.05) / (y! + 0.05);
}

const fmt = (x: number) => (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(3);

export function dimsTableHtml(dims: SteerDim[], caption = 'Word dimensions of the steer'): string {
  const list = (ts: SteerDim['positive']) =>
    ts
      .map(
        (t) => `<span title="id ${t.id}, score ${escapeHtml(fmt(t.score))}">${escapeHtml(tokenLabel(t.token))}</span>`,
      )
      .join(', ');
  const rows = dims
    .map(
      (d) =>
        `<tr><th scope="row">${d.index + 1}</th><td class="num">${d.singularValue.toPrecision(4)}</td>` +
        `<td class="num">${d.alignment.toFixed(2)}</td><td>${list(d.positive)}</td><td>${list(d.negative)}</td></tr>`,
    )
    .join('\n');
  return `<table>
<caption>${escapeHtml(caption)}</caption>
<thead><tr><th scope="col">Direction</th><th scope="col">Singular value</th><th scope="col">cos(u, v)</th>
<th scope="col">Top tokens (highest E·v)</th><th scope="col">Bottom tokens (lowest E·v)</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>`;
}

export interface EvidenceLabels {
  /** What a positive value means, e.g. "more like +1 (positive sentiment)". */
  positive?: string;
  negative?: string;
}

export function evidenceHtml(ev: TextEvidence, labels: EvidenceLabels = {}): string {
  const pos = labels.positive ?? 'likelier with the steer at +1';
  const neg = labels.negative ?? 'likelier with the steer at −1';
  const maxAbs = Math.max(0, ...ev.tokens.map((t) => Math.abs(t.evidence ?? 0)));
  const spanAt = new Map(ev.spans.map(([a, b], i) => [a, { end: b, n: i + 1 }]));
  let html = '';
  for (let t = 0; t < ev.tokens.length;) {
    const span = spanAt.get(t);
    const end = span ? span.end : t + 1;
    let inner = '';
    for (let k = t; k < end; k++) {
      const { text, evidence } = ev.tokens[k]!;
      const title = evidence === null ? 'no evidence (first token)' : `evidence ${fmt(evidence)}`;
      inner += `<span class="tok" style="background:${evidenceColor(evidence, maxAbs)}" title="${escapeHtml(title)}">${escapeHtml(text)}</span>`;
    }
    html += span
      ? `<mark class="span"><span class="sr-only">[span ${span.n}: </span>${inner}<span class="sr-only">]</span><sup aria-hidden="true">${span.n}</sup></mark>`
      : inner;
    t = end;
  }
  const spanList = ev.spans
    .map(([a, b], i) => {
      const sum = ev.tokens.slice(a, b).reduce((s, x) => s + (x.evidence ?? 0), 0);
      const text = ev.tokens
        .slice(a, b)
        .map((x) => x.text)
        .join('');
      return `<li>Span ${i + 1} (tokens ${a}–${b - 1}, total ${escapeHtml(fmt(sum))}): <q>${escapeHtml(text)}</q></li>`;
    })
    .join('\n');
  return `<p class="legend"><span class="swatch" style="background:${evidenceColor(1, 1)}"></span> ${escapeHtml(pos)}
<span class="swatch" style="background:${evidenceColor(-1, 1)}"></span> ${escapeHtml(neg)}
— <mark class="span">outlined</mark>: the spans with the most evidence.</p>
<p class="text">${html}</p>
${ev.spans.length ? `<ol class="spans">\n${spanList}\n</ol>` : '<p>No span has positive evidence.</p>'}`;
}

export interface LensPage {
  title: string;
  dims?: { heading?: string; dims: SteerDim[] };
  evidence?: { heading?: string; text: TextEvidence; labels?: EvidenceLabels };
}

/** A complete page with either or both parts. */
export function renderLensHtml(page: LensPage): string {
  const sections: string[] = [];
  if (page.dims)
    sections.push(
      `<section><h2>${escapeHtml(page.dims.heading ?? 'Word dimensions')}</h2>\n${dimsTableHtml(page.dims.dims)}</section>`,
    );
  if (page.evidence) {
    sections.push(
      `<section><h2>${escapeHtml(page.evidence.heading ?? 'Evidence in the text')}</h2>\n${evidenceHtml(page.evidence.text, page.evidence.labels)}</section>`,
    );
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; color: #000; background: #fff; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; font-weight: 600; padding: .5rem 0; }
th, td { border: 1px solid #767676; padding: .35rem .5rem; vertical-align: top; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.text { white-space: pre-wrap; font-family: ui-monospace, monospace; line-height: 2; }
.tok { color: #000; }
mark.span { background: none; color: inherit; outline: 2px solid #000; outline-offset: 1px; font-weight: 700; }
mark.span sup { font-size: .7em; margin-left: .1em; }
.swatch { display: inline-block; width: 1em; height: 1em; border: 1px solid #000; vertical-align: middle; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
</style>
</head>
<body>
<h1>${escapeHtml(page.title)}</h1>
${sections.join('\n')}
</body>
</html>
`;
}
