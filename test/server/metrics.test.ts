/** The Prometheus text: counters by route and status, histogram buckets that add up, the tokens/s window. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../src/server/metrics.js';

test('metrics render counters, gauges and cumulative histogram buckets', () => {
  const m = new Metrics(() => ({ queueDepth: 3, batchSize: 5, steers: 2 }));
  m.request('POST /v1/completions', 200, 0.07);
  m.request('POST /v1/completions', 200, 3);
  m.request('POST /v1/completions', 429, 0.001);
  m.firstToken(0.2);
  const now = 1_000_000_000;
  m.generated(40, now - 2000);
  m.generated(60, now - 500);
  m.generated(1000, now - 60_000); // outside the window
  m.step();
  const t = m.render(now);
  assert.match(t, /^lmsteer_requests_total\{route="POST \/v1\/completions",status="200"\} 2$/m);
  assert.match(t, /^lmsteer_requests_total\{route="POST \/v1\/completions",status="429"\} 1$/m);
  assert.match(t, /^lmsteer_generated_tokens_total 1100$/m);
  assert.match(t, /^lmsteer_tokens_per_second 10$/m);
  assert.match(t, /^lmsteer_queue_depth 3$/m);
  assert.match(t, /^lmsteer_batch_size 5$/m);
  assert.match(t, /^lmsteer_decode_steps_total 1$/m);
  assert.match(t, /^lmsteer_request_duration_seconds_bucket\{route="POST \/v1\/completions",le="0.05"\} 1$/m);
  assert.match(t, /^lmsteer_request_duration_seconds_bucket\{route="POST \/v1\/completions",le="0.1"\} 2$/m);
  assert.match(t, /^lmsteer_request_duration_seconds_bucket\{route="POST \/v1\/completions",le="\+Inf"\} 3$/m);
  assert.match(t, /^lmsteer_request_duration_seconds_count\{route="POST \/v1\/completions"\} 3$/m);
  assert.match(t, /^lmsteer_time_to_first_token_seconds_bucket\{le="0.25"\} 1$/m);
  // every sample line is "name{labels} number"
  for (const line of t.trim().split('\n'))
    if (!line.startsWith('#')) assert.match(line, /^[a-z_]+(\{[^}]*\})? [\d.e+-]+$/);
});
