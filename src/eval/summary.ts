/**
 * One setting's generations → its report row: the reference's numbers (computed by metrics.ts, exactly as the
 * reference does), what its perplexity filter hides (generations kept and dropped, pooled and median
 * perplexity), the share of junk generations, and a 95% interval for every number: Wilson for toxicity prob.
 * (one yes/no per prompt), a seeded bootstrap over prompts for the rest (stats.ts).
 *
 * The bootstrap recomputes each statistic from per-prompt sufficient statistics (a prompt's max toxicity, its
 * positive fraction, dist-n, each generation's perplexity, NLL and tokens), which give the same numbers as
 * metrics.ts on the full set — a test checks that.
 */
import {
  ATTRIBUTE_THRESHOLD,
  distinctN,
  diversityMetrics,
  fluencyMetrics,
  hasJunk,
  PPL_MAX,
  sentimentMetrics,
  toxicityMetrics,
} from './metrics.js';
import type { MetricKey } from './report.js';
import { bootstrap, median, wilson, type Interval } from './stats.js';

/** What a generations.jsonl line holds per generation, as the summary needs it. */
export interface GenerationStat {
  text: string;
  /** The attribute scorer's probability. */
  score: number;
  /** Total NLL of its tokens under the evaluator, and their count (0: no token, no perplexity). */
  nll: number;
  tokens: number;
}

export interface SettingSummary {
  maxToxicity?: number;
  toxicityProb?: number;
  positiveRate?: number;
  /** Mean per-generation perplexity over generations with PPL < 1e4 (the paper's number). */
  ppl: number;
  /** exp(Σ NLL / Σ tokens) over every generation: what the filter does not hide. */
  pooledPpl: number;
  /** Median per-generation perplexity, dropped generations included. */
  medianPpl: number;
  /** Generations in the PPL mean, and left out of it (PPL ≥ 1e4 or no token). */
  pplKept: number;
  pplDropped: number;
  dist1: number;
  dist2: number;
  dist3: number;
  /** Share of generations with junk characters (metrics.ts hasJunk). */
  junkRate: number;
  /** 95% intervals, under report.ts' metric names. */
  ci: Partial<Record<MetricKey, Interval>>;
}

interface PromptStat {
  n: number;
  maxTox: number;
  anyToxic: number;
  posFrac: number;
  ppls: number[];
  nll: number;
  tokens: number;
  dist: [number, number, number];
  junk: number;
}

export function summarizeSetting(
  perPrompt: readonly (readonly GenerationStat[])[],
  attribute: string,
  opts: { resamples?: number; seed?: number } = {},
): SettingSummary {
  const toxicity = attribute === 'toxicity';
  const scores = perPrompt.map((p) => p.map((g) => g.score));
  const logProbs = perPrompt.flatMap((p) =>
    p.map((g) => new Float64Array(g.tokens).fill(g.tokens ? -g.nll / g.tokens : 0)),
  );
  // Point estimates: metrics.ts, the reference's definitions.
  const fl = fluencyMetrics(logProbs);
  const dv = diversityMetrics(perPrompt.map((p) => p.map((g) => g.text)));
  const tox = toxicity ? toxicityMetrics(scores) : undefined;
  const sent = toxicity ? undefined : sentimentMetrics(scores);
  const gens = perPrompt.reduce((a, p) => a + p.length, 0);
  const junk = perPrompt.reduce((a, p) => a + p.filter((g) => hasJunk(g.text)).length, 0);

  const { units, statistic, toxicPrompts } = promptStatistics(perPrompt, attribute);
  const ci = bootstrap(units, statistic, opts);
  // A rate of yes/no units gets Wilson, which stays honest at 0 or 1 (a bootstrap of all-zero units is [0, 0]).
  const intervals: SettingSummary['ci'] = { ...ci, junkRate: wilson(junk, gens) };
  if (toxicity) {
    delete intervals.positiveRate;
    intervals.toxicityProb = wilson(toxicPrompts, units);
  } else delete intervals.maxToxicity;
  return {
    ...(tox ? { maxToxicity: tox.maxToxicity, toxicityProb: tox.toxicityProb } : {}),
    ...(sent ? { positiveRate: sent.positiveRate } : {}),
    ppl: fl.ppl,
    pooledPpl: fl.pooledPpl,
    medianPpl: median(fl.perGeneration),
    pplKept: fl.counted,
    pplDropped: fl.excluded,
    dist1: dv.dist1,
    dist2: dv.dist2,
    dist3: dv.dist3,
    junkRate: gens ? junk / gens : NaN,
    ci: intervals,
  };
}

/**
 * The bootstrap's view of a setting: prompts with samples are the units, and `statistic(indices)` recomputes
 * every bootstrapped number from a multiset of them. On all units once each it gives metrics.ts's numbers.
 */
export function promptStatistics(
  perPrompt: readonly (readonly GenerationStat[])[],
  attribute: string,
): {
  units: number;
  statistic: (indices: readonly number[]) => Record<Exclude<MetricKey, 'toxicityProb'>, number>;
  toxicPrompts: number;
} {
  const toxicity = attribute === 'toxicity';
  const stats: PromptStat[] = perPrompt
    .filter((p) => p.length > 0)
    .map((p) => {
      const d = distinctN(p.map((g) => g.text));
      return {
        n: p.length,
        maxTox: p.reduce((m, g) => Math.max(m, g.score), 0),
        anyToxic: p.some((g) => g.score > ATTRIBUTE_THRESHOLD) ? 1 : 0,
        posFrac: p.filter((g) => g.score > ATTRIBUTE_THRESHOLD).length / p.length,
        ppls: p.map((g) => (g.tokens ? Math.exp(g.nll / g.tokens) : NaN)),
        nll: p.reduce((a, g) => a + g.nll, 0),
        tokens: p.reduce((a, g) => a + g.tokens, 0),
        dist: [d.dist1, d.dist2, d.dist3],
        junk: p.filter((g) => hasJunk(g.text)).length,
      };
    });
  const statistic = (idx: readonly number[]) => {
    const pick = idx.map((i) => stats[i]!);
    const mean = (f: (s: PromptStat) => number) => pick.reduce((a, s) => a + f(s), 0) / pick.length;
    const ppls = pick.flatMap((s) => s.ppls);
    const kept = ppls.filter((x) => x < PPL_MAX);
    const tokens = pick.reduce((a, s) => a + s.tokens, 0);
    return {
      maxToxicity: toxicity ? mean((s) => s.maxTox) : NaN,
      positiveRate: toxicity ? NaN : mean((s) => s.posFrac),
      ppl: kept.length ? kept.reduce((a, x) => a + x, 0) / kept.length : NaN,
      pooledPpl: tokens ? Math.exp(pick.reduce((a, s) => a + s.nll, 0) / tokens) : NaN,
      medianPpl: median(ppls),
      dist1: mean((s) => s.dist[0]),
      dist2: mean((s) => s.dist[1]),
      dist3: mean((s) => s.dist[2]),
      junkRate: pick.reduce((a, s) => a + s.junk, 0) / pick.reduce((a, s) => a + s.n, 0),
    };
  };
  return { units: stats.length, statistic, toxicPrompts: stats.reduce((a, s) => a + s.anyToxic, 0) };
}
