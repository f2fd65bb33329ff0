/**
 * Server metrics in Prometheus' text format (version 0.0.4). Hand-written rather than prom-client: seven
 * metrics, no labels beyond route/status, and no global registry to reset between servers in one process.
 */

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** tokens/s is measured over this window. */
const RATE_WINDOW_MS = 10_000;

class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  sum = 0;
  count = 0;
  observe(v: number): void {
    this.sum += v;
    this.count++;
    LATENCY_BUCKETS.forEach((b, i) => {
      if (v <= b) this.counts[i]!++;
    });
  }
}

function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export class Metrics {
  private readonly requests = new Map<string, number>(); // "route\tstatus" → count
  private readonly latency = new Map<string, Histogram>(); // route → histogram
  private readonly ttft = new Histogram();
  private tokens = 0;
  private steps = 0;
  private readonly recent: { t: number; n: number }[] = []; // per-second token buckets for the rate

  constructor(private readonly gauges: () => { queueDepth: number; batchSize: number; steers: number }) {}

  request(route: string, status: number, seconds: number): void {
    const key = `${route}\t${status}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let h = this.latency.get(route);
    if (!h) this.latency.set(route, (h = new Histogram()));
    h.observe(seconds);
  }

  firstToken(seconds: number): void {
    this.ttft.observe(seconds);
  }

  generated(n: number, now = Date.now()): void {
    this.tokens += n;
    const sec = Math.floor(now / 1000) * 1000;
    const last = this.recent[this.recent.length - 1];
    if (last && last.t === sec) last.n += n;
    else this.recent.push({ t: sec, n });
    while (this.recent.length && this.recent[0]!.t < now - RATE_WINDOW_MS) this.recent.shift();
  }

  step(): void {
    this.steps++;
  }

  tokensPerSecond(now = Date.now()): number {
    const n = this.recent.filter((b) => b.t >= now - RATE_WINDOW_MS).reduce((a, b) => a + b.n, 0);
    return n / (RATE_WINDOW_MS / 1000);
  }

  render(now = Date.now()): string {
    const g = this.gauges();
    const out: string[] = [];
    const head = (name: string, type: string, help: string) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    head('lmsteer_requests_total', 'counter', 'HTTP requests answered, by route and status.');
    for (const [key, n] of this.requests) {
      const [route, status] = key.split('\t');
      out.push(`lmsteer_requests_total{route="${label(route!)}",status="${status}"} ${n}`);
    }
    head('lmsteer_generated_tokens_total', 'counter', 'Tokens sampled, all requests together.');
    out.push(`lmsteer_generated_tokens_total ${this.tokens}`);
    head('lmsteer_decode_steps_total', 'counter', 'Batched decoder steps run.');
    out.push(`lmsteer_decode_steps_total ${this.steps}`);
    head('lmsteer_tokens_per_second', 'gauge', `Tokens sampled per second over the last ${RATE_WINDOW_MS / 1000} s.`);
    out.push(`lmsteer_tokens_per_second ${this.tokensPerSecond(now)}`);
    head('lmsteer_queue_depth', 'gauge', 'Requests waiting for a batch slot.');
    out.push(`lmsteer_queue_depth ${g.queueDepth}`);
    head('lmsteer_batch_size', 'gauge', 'Rows in the running batch.');
    out.push(`lmsteer_batch_size ${g.batchSize}`);
    head('lmsteer_steers_loaded', 'gauge', 'Steers loaded.');
    out.push(`lmsteer_steers_loaded ${g.steers}`);
    const hist = (name: string, h: Histogram, labels: string) => {
      const sep = labels ? ',' : '';
      LATENCY_BUCKETS.forEach((b, i) => out.push(`${name}_bucket{${labels}${sep}le="${b}"} ${h.counts[i]}`));
      out.push(`${name}_bucket{${labels}${sep}le="+Inf"} ${h.count}`);
      const l = labels ? `{${labels}}` : '';
      out.push(`${name}_sum${l} ${h.sum}`, `${name}_count${l} ${h.count}`);
    };
    head(
      'lmsteer_request_duration_seconds',
      'histogram',
      'Time from request to the last byte of the response, by route.',
    );
    for (const [route, h] of this.latency) hist('lmsteer_request_duration_seconds', h, `route="${label(route)}"`);
    head('lmsteer_time_to_first_token_seconds', 'histogram', 'Time from a generation request to its first token.');
    hist('lmsteer_time_to_first_token_seconds', this.ttft, '');
    return out.join('\n') + '\n';
  }
}
