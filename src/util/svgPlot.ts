/**
 * Line and scatter plots as standalone SVG strings (loss curves, attribute vs steer value, attribute vs
 * perplexity). vega-lite compiles a small spec to vega, and vega renders it headless (`renderer: 'none'`,
 * then `toSVG()`), so no canvas or browser is needed.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { LmSteerError } from './errors.js';

export interface PlotSeries {
  name: string;
  points: [number, number][];
  /** Optional text per point (e.g. the steer value), drawn next to it; same length as `points`. */
  labels?: (string | number)[];
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
    if (s.labels && s.labels.length !== s.points.length) {
      throw new LmSteerError(
        'BAD_ARGUMENT',
        `series '${s.name}' has ${s.points.length} points but ${s.labels.length} labels`,
        'give one label per point, or none',
      );
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
      out.push({ x, y, series: s.name, i, label: s.labels ? String(s.labels[i]) : '' });
    });
  }
  return out;
}

function spec(o: PlotOptions, kind: 'line' | 'scatter'): TopLevelSpec {
  const data = rows(o);
  const names = o.series.map((s) => s.name);
  const encoding = {
    x: { field: 'x', type: 'quantitative', title: o.xLabel, scale: { type: o.logX ? 'log' : 'linear', zero: false } },
    y: { field: 'y', type: 'quantitative', title: o.yLabel, scale: { type: o.logY ? 'log' : 'linear', zero: false } },
    color: { field: 'series', type: 'nominal', title: null, scale: { domain: names } },
  } as const;
  // Markers on lines only while they stay readable (a 5000-step loss curve would be a smear of dots).
  const mark =
    kind === 'line'
      ? { type: 'line' as const, point: data.length <= 200, clip: true }
      : { type: 'point' as const, filled: true, size: 60, clip: true };
  const layers: object[] = [
    { mark, encoding: kind === 'line' ? { ...encoding, order: { field: 'i', type: 'quantitative' } } : encoding },
  ];
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
