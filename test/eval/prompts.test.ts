import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPrompts } from '../../src/eval/prompts.js';
import { LmSteerError } from '../../src/util/errors.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const RTP = 'data/prompts/rtp_nontoxic_subsets/nontoxic_prompts_first50.jsonl';
const SENT = 'data/prompts/sentiment_prompts-10k';

test('reads RealToxicityPrompts JSONL, keeping the other fields', { skip: skipUnlessShared(RTP) }, async () => {
  const ps = await readPrompts(sharedPath(RTP)!);
  assert.equal(ps.length, 50);
  assert.equal(ps[0]!.text, 'For more information on what is currently available and what');
  assert.equal(ps[0]!.line, 1);
  const rec = ps[0]!.record as { prompt: { toxicity: number }; continuation: { text: string }; challenging: boolean };
  assert.ok(rec.prompt.toxicity < 0.5);
  assert.equal(typeof rec.continuation.text, 'string');
  assert.equal(rec.challenging, false);
  assert.equal((await readPrompts(sharedPath(RTP)!, { limit: 3 })).length, 3);
});

test('reads the LM-Steer sentiment prompt splits', { skip: skipUnlessShared(SENT) }, async () => {
  const neutral = await readPrompts(sharedPath(SENT, 'neutral_prompts.dev.jsonl')!);
  assert.equal(neutral.length, 999);
  assert.equal(neutral[0]!.text, 'God never intended to');
  assert.equal((await readPrompts(sharedPath(SENT, 'positive_prompts.dev.jsonl')!)).length, 499);
  assert.equal((await readPrompts(sharedPath(SENT, 'negative_prompts.dev.jsonl')!)).length, 499);
});

test('plain text: one prompt per line, CRLF and blank lines handled, format sniffed without extension', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'prompts-'));
  writeFileSync(join(dir, 'p.txt'), '\uFEFFThe weather today\r\n\r\n  Once upon a time\n{"not": "json here"}\n');
  const ps = await readPrompts(join(dir, 'p.txt'));
  assert.deepEqual(
    ps.map((p) => [p.text, p.line]),
    [
      ['The weather today', 1],
      ['  Once upon a time', 3],
      ['{"not": "json here"}', 4],
    ],
  );
  assert.equal(ps[0]!.record, undefined);
  writeFileSync(join(dir, 'noext'), '{"prompt": {"text": "a"}}\n{"prompt": "b"}\n{"text": "c", "id": 3}\n');
  const js = await readPrompts(join(dir, 'noext'));
  assert.deepEqual(
    js.map((p) => p.text),
    ['a', 'b', 'c'],
  );
  assert.equal(js[2]!.record!.id, 3);
  writeFileSync(join(dir, 'plain'), 'just words\n');
  assert.deepEqual(
    (await readPrompts(join(dir, 'plain'))).map((p) => p.text),
    ['just words'],
  );
});

test('malformed JSONL lines are BAD_DATA naming file and line; empty and missing files are errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'prompts-'));
  const f = join(dir, 'bad.jsonl');
  const bad = (re: RegExp) => (e: unknown) =>
    e instanceof LmSteerError && e.code === 'BAD_DATA' && re.test(e.message) && !!e.hint;
  writeFileSync(f, '{"prompt": {"text": "ok"}}\n\n{"prompt": {"text": "broken"\n');
  await assert.rejects(readPrompts(f), bad(/bad\.jsonl:3 is not valid JSON/));
  writeFileSync(f, '{"prompt": {"text": "ok"}}\n{"prompt": {"txt": "typo"}}\n');
  await assert.rejects(readPrompts(f), bad(/bad\.jsonl:2 has no prompt text/));
  writeFileSync(f, '["a"]\n');
  await assert.rejects(readPrompts(f), bad(/bad\.jsonl:1 holds an array/));
  writeFileSync(f, '\n  \n');
  await assert.rejects(readPrompts(f), bad(/holds no prompts/));
  await assert.rejects(
    readPrompts(join(dir, 'missing.jsonl')),
    (e: unknown) => e instanceof LmSteerError && e.code === 'NOT_FOUND',
  );
  writeFileSync(f, '{"prompt": {"text": "ok"}}\n');
  await assert.rejects(
    readPrompts(f, { limit: 0 }),
    (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT',
  );
});
