/**
 * Line and scatter plots as standalone SVG strings (loss curves, attribute vs steer value, attribute vs
 * perplexity). vega-lite compiles a small spec to vega, and vega renders it headless (`renderer: 'none'`,
 * then `toSVG()`), so no canvas or browser is needed.
 *
 * Axes span every point and error bar with a margin (5% of the range, or ±10% of the value for a single
 * point), so a point on the edge of the data is drawn whole and a one-point plot has a readable axis.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { LmSteerError } from './errors.js';

export interface PlotSeries {
  name: string;
  points: [number, number][];
  /** Optional text per point (e.g. the steer value), drawn next to it; same length as `points`. */
  labels?: (string | number)[];
  /** Optional error bars per point, [lo, hi] (NaN: none); same length as `points`. */
  yErrors?: [number, number][];
  xErrors?: [number, number][];
  /** Draw this series dashed (e.g. a baseline). */
  dashed?: boolean;
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: PlotSeries[];
  logX?: boolean;
  logY?: boolean;
  /** Plot area in pixels. Defaults 480 × 300. */
  width?: number;
  height?: number;
}

interface Row {
  x: number;
  y: number;
  series: string;
  i: number;
  label: string;
  ylo?: number;
  yhi?: number;
  xlo?: number;
  xhi?: number;
}

/** Validate and flatten the series. Non-finite points (a diverged loss) are dropped: vega cannot place them. */
function rows(o: PlotOptions): Row[] {
  if (o.series.length === 0)
    throw new LmSteerError('BAD_ARGUMENT', `plot '${o.title}' has no series`, 'pass at least one series of points');
  const names = new Set<string>();
  const out: Row[] = [];
  for (const s of o.series) {
    if (names.has(s.name))
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `plot '${o.title}' has two series named '${s.name}'`,
        'give every series its own name',
      );
    names.add(s.name);
    for (const [what, arr] of [
      ['labels', s.labels],
      ['y errors', s.yErrors],
      ['x errors', s.xErrors],
    ] as const) {
      if (arr && arr.length !== s.points.length) {
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `series '${s.name}' has ${s.points.length} points but ${arr.length} ${what}`,
          `give one of the ${what} per point, or none`,
        );
      }
    }
    s.points.forEach(([x, y], i) => {
      if (!Number.isFinite(x) || !Number.isFinite(y)) return;
      for (const [v, log, axis] of [
        [x, o.logX, 'x'],
        [y, o.logY, 'y'],
      ] as const) {
        if (log && v <= 0) {
          throw new LmSteerError(
            'BAD_ARGUMENT',
            `series '${s.name}' point ${i} has ${axis} = ${v}, which a log ${axis} axis cannot show`,
            `use a linear ${axis} axis or drop non-positive values`,
          );
        }
      }
      const row: Row = { x, y, series: s.name, i, label: s.labels ? String(s.labels[i]) : '' };
      const ok = (e: [number, number] | undefined, log?: boolean) =>
        e && Number.isFinite(e[0]) && Number.isFinite(e[1]) && (!log || (e[0] > 0 && e[1] > 0));
      if (ok(s.yErrors?.[i], o.logY)) [row.ylo, row.yhi] = s.yErrors![i]!;
      if (ok(s.xErrors?.[i], o.logX)) [row.xlo, row.xhi] = s.xErrors![i]!;
      out.push(row);
    });
  }
  return out;
}

/** [lo, hi] covering `values` with a margin; linear or log. Undefined without finite values. */
export function paddedDomain(values: readonly number[], log = false): [number, number] | undefined {
  const v = values.filter((x) => Number.isFinite(x) && (!log || x > 0)).map((x) => (log ? Math.log10(x) : x));
  if (v.length === 0) return undefined;
  let lo = Math.min(...v);
  let hi = Math.max(...v);
  const pad = hi > lo ? 0.05 * (hi - lo) : log ? 0.1 : Math.max(Math.abs(lo) * 0.1, 1);
  lo -= pad;
  hi += pad;
  return log ? [10 ** lo, 10 ** hi] : [lo, hi];
}

function spec(o: PlotOptions, kind: 'line' | 'scatter'): TopLevelSpec {
  const data = rows(o);
  const names = o.series.map((s) => s.name);
  const dashed = o.series.filter((s) => s.dashed).map((s) => s.name);
  const xDomain = paddedDomain(
    data.flatMap((r) => [r.x, r.xlo ?? NaN, r.xhi ?? NaN]),
    o.logX,
  );
  const yDomain = paddedDomain(
    data.flatMap((r) => [r.y, r.ylo ?? NaN, r.yhi ?? NaN]),
    o.logY,
  );
  const axisScale = (log: boolean | undefined, domain: [number, number] | undefined) => ({
    type: log ? 'log' : 'linear',
    zero: false,
    ...(domain ? { domain, nice: true } : {}),
  });
  const encoding = {
    x: { field: 'x', type: 'quantitative', title: o.xLabel, scale: axisScale(o.logX, xDomain) },
    y: { field: 'y', type: 'quantitative', title: o.yLabel, scale: axisScale(o.logY, yDomain) },
    color: { field: 'series', type: 'nominal', title: null, scale: { domain: names } },
  } as const;
  const solid = dashed.length ? [{ filter: { not: { field: 'series', oneOf: dashed } } }] : [];
  // Markers on lines only while they stay readable (a 5000-step loss curve would be a smear of dots).
  const mark =
    kind === 'line'
      ? { type: 'line' as const, point: data.length <= 200, clip: true }
      : { type: 'point' as const, filled: true, size: 60, clip: true };
  const lineEnc = kind === 'line' ? { ...encoding, order: { field: 'i', type: 'quantitative' } } : encoding;
  const layers: object[] = [{ mark, encoding: lineEnc, transform: solid }];
  if (dashed.length)
    layers.push({
      mark: { type: kind === 'line' ? 'line' : 'point', strokeDash: [6, 4], clip: true },
      encoding: lineEnc,
      transform: [{ filter: { field: 'series', oneOf: dashed } }],
    });
  const withY = data.filter((r) => r.ylo !== undefined);
  if (withY.length)
    layers.push({
      data: { values: withY },
      mark: { type: 'rule', strokeWidth: 1.5, clip: true },
      encoding: { x: encoding.x, y: { ...encoding.y, field: 'ylo' }, y2: { field: 'yhi' }, color: encoding.color },
    });
  const withX = data.filter((r) => r.xlo !== undefined);
  if (withX.length)
    layers.push({
      data: { values: withX },
      mark: { type: 'rule', strokeWidth: 1.5, clip: true },
      encoding: { x: { ...encoding.x, field: 'xlo' }, x2: { field: 'xhi' }, y: encoding.y, color: encoding.color },
    });
  if (o.series.some((s) => s.labels)) {
    layers.push({
      mark: { type: 'text', align: 'left', dx: 6, dy: -6, fontSize: 10 },
      encoding: { x: encoding.x, y: encoding.y, color: encoding.color, text: { field: 'label', type: 'nominal' } },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title,
    width: o.width ?? 480,
    height: o.height ?? 300,
    background: 'white',
    data: { values: data },
    layer: layers,
  } as TopLevelSpec;
}

async function render(s: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(s).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Lines through each series' points, in the given order. */
export function linePlotSvg(o: PlotOptions): Promise<string> {
  return render(spec(o, 'line'));
}

/** Unconnected points, one colour per series, with optional per-point labels. */
export function scatterPlotSvg(o: PlotOptions): Promise<string> {
  return render(spec(o, 'scatter'));
}
