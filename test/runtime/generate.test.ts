import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate, type GenerateOptions, type GenerateRequest } from '../../src/runtime/generate.js';
import { LmSteerError } from '../../src/util/errors.js';
import {
  EOS,
  FakeDecoder,
  FakeTokenizer,
  randomLogits,
  scriptedLogits,
  type LogitsFn,
} from '../helpers/fakeDecoder.js';

const tok = new FakeTokenizer();
const V = tok.vocabSize;
const model = randomLogits(V, 1);
const fresh = (fn: LogitsFn = model) => new FakeDecoder(V, fn);
const PROMPTS = ['the cat', 'Hello world! the cat sat on the mat.', 'a', 'b c'];
const isErr = (code: string, re: RegExp) => (e: unknown) =>
  e instanceof LmSteerError && e.code === code && re.test(e.message) && !!e.hint;

function argmax(xs: Float32Array): number {
  let b = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[b]) b = i;
  return b;
}

test('greedy decoding is deterministic and matches a plain reference loop', async () => {
  const opts: GenerateOptions = { temperature: 0, maxNewTokens: 12 };
  const reqs = PROMPTS.map((prompt) => ({ prompt }));
  const a = await generate(fresh(), tok, reqs, opts);
  const b = await generate(fresh(), tok, reqs, opts);
  assert.deepEqual(a, b);
  PROMPTS.forEach((p, i) => {
    const prompt = tok.encode(p);
    const ids = [...prompt];
    const out: number[] = [];
    for (let t = 0; t < 12; t++) {
      const id = argmax(model(ids, prompt.length));
      out.push(id);
      ids.push(id);
      if (id === EOS) break;
    }
    const s = a[i].samples[0];
    assert.deepEqual(s.tokenIds, out);
    assert.equal(s.promptTokens, prompt.length);
    assert.equal(a[i].promptTokens, prompt.length);
    assert.equal(s.finishReason, out[out.length - 1] === EOS ? 'eos' : 'length');
    assert.equal(s.text, tok.decode(out, { skipSpecialTokens: true }));
  });
});

test('same seed → same samples; another seed or another sample index → different ones', async () => {
  const opts: GenerateOptions = { maxNewTokens: 16, seed: 3, stopAtEos: false };
  const reqs = [{ prompt: 'the', numSamples: 3 }];
  const a = await generate(fresh(), tok, reqs, opts);
  const b = await generate(fresh(), tok, reqs, opts);
  const c = await generate(fresh(), tok, reqs, { ...opts, seed: 4 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a[0].samples[0].tokenIds, c[0].samples[0].tokenIds);
  assert.notDeepEqual(a[0].samples[0].tokenIds, a[0].samples[1].tokenIds);
  assert.notDeepEqual(a[0].samples[1].tokenIds, a[0].samples[2].tokenIds);
});

test('a row gives the same output whether alone or batched with other prompts of other lengths', async () => {
  const opts: GenerateOptions = { maxNewTokens: 10, topK: 30, seed: 11 };
  const reqs = PROMPTS.map((prompt) => ({ prompt, numSamples: 2 }));
  const together = await generate(fresh(), tok, reqs, { ...opts, maxBatch: 100 });
  for (const maxBatch of [1, 3]) assert.deepEqual(await generate(fresh(), tok, reqs, { ...opts, maxBatch }), together);
  // With per-request seeds (how the server batches unrelated requests), a request alone = the same request in a mix.
  const mixed = await generate(
    fresh(),
    tok,
    PROMPTS.map((prompt, i) => ({ prompt, numSamples: 2, seed: 100 + i })),
    opts,
  );
  for (let i = 0; i < PROMPTS.length; i++) {
    const alone = await generate(fresh(), tok, [{ prompt: PROMPTS[i], numSamples: 2, seed: 100 + i }], opts);
    assert.deepEqual(alone[0], mixed[i]);
    const viaOpts = await generate(fresh(), tok, [{ prompt: PROMPTS[i], numSamples: 2 }], { ...opts, seed: 100 + i });
    assert.deepEqual(viaOpts[0], mixed[i]);
  }
});

test('topK = 1 and a tiny topP equal greedy', async () => {
  const reqs = PROMPTS.map((prompt) => ({ prompt }));
  const greedy = await generate(fresh(), tok, reqs, { temperature: 0, maxNewTokens: 10 });
  assert.deepEqual(await generate(fresh(), tok, reqs, { topK: 1, maxNewTokens: 10, seed: 5 }), greedy);
  assert.deepEqual(await generate(fresh(), tok, reqs, { topP: 1e-6, temperature: 1.3, maxNewTokens: 10 }), greedy);
});

test('minNewTokens masks EOS until reached; EOS then ends the row and is kept in tokenIds', async () => {
  const eager = scriptedLogits(V, []); // EOS always the top token
  let [r] = await generate(fresh(eager), tok, [{ prompt: 'a' }], { temperature: 0 });
  assert.deepEqual(r.samples[0], { text: '', tokenIds: [EOS], finishReason: 'eos', promptTokens: 2 });
  [r] = await generate(fresh(eager), tok, [{ prompt: 'a' }], { temperature: 0, minNewTokens: 3 });
  const s = r.samples[0];
  assert.equal(s.tokenIds.length, 4);
  assert.ok(s.tokenIds.slice(0, 3).every((id) => id !== EOS));
  assert.equal(s.tokenIds[3], EOS);
  assert.equal(s.finishReason, 'eos');
  // stopAtEos false: EOS is an ordinary token (never masked), the row runs to maxNewTokens
  [r] = await generate(fresh(eager), tok, [{ prompt: 'a' }], { temperature: 0, stopAtEos: false, maxNewTokens: 3 });
  assert.deepEqual(r.samples[0].tokenIds, [EOS, EOS, EOS]);
  assert.equal(r.samples[0].finishReason, 'length');
});

test('stop strings cut the text (across token boundaries too) and end the row with "stop"', async () => {
  const w = (x: string) => tok.word(x);
  const script = [w('the'), w(' cat'), w('E'), w('ND'), w(' sat')];
  const deltas: string[] = [];
  const [r] = await generate(
    fresh(scriptedLogits(V, script)),
    tok,
    [{ prompt: 'a' }],
    { temperature: 0, stop: ['END'] },
    {
      onToken: (_row, d) => deltas.push(d),
    },
  );
  assert.deepEqual(r.samples[0], {
    text: 'the cat',
    tokenIds: script.slice(0, 4),
    finishReason: 'stop',
    promptTokens: 2,
  });
  assert.deepEqual(deltas, ['the', ' cat', '', '']);
  // per-request stop overrides the shared one; a request-level maxNewTokens too
  const [x, y] = await generate(
    fresh(scriptedLogits(V, script)),
    tok,
    [
      { prompt: 'a', stop: [' c'] },
      { prompt: 'b', maxNewTokens: 2 },
    ],
    { temperature: 0, stop: ['END'] },
  );
  assert.equal(x.samples[0].text, 'the');
  assert.deepEqual(y.samples[0], {
    text: 'the cat',
    tokenIds: script.slice(0, 2),
    finishReason: 'length',
    promptTokens: 2,
  });
});

test('streaming: each row’s deltas concatenate to its final text, a split multi-byte character arrives whole', async () => {
  const script = [tok.word('Hello'), ...tok.bytes('—'), tok.word(' world'), ...tok.bytes('🍰'), tok.word('!')];
  const deltas = new Map<number, string[]>();
  const finished: number[] = [];
  const res = await generate(
    fresh(scriptedLogits(V, script)),
    tok,
    [{ prompt: 'a', numSamples: 2 }, { prompt: 'the cat sat' }],
    { temperature: 0, maxNewTokens: 20 },
    {
      onToken: (row, d, id, origin) => {
        assert.ok(!d.includes('\uFFFD'));
        assert.ok(row === origin.request * 2 + origin.sample);
        deltas.set(row, [...(deltas.get(row) ?? []), d]);
      },
      onFinish: (row, s) => {
        finished.push(row);
        assert.equal(deltas.get(row)!.join(''), s.text);
      },
    },
  );
  const texts = res.flatMap((r) => r.samples.map((s) => s.text));
  assert.deepEqual(texts, ['Hello— world🍰!', 'Hello— world🍰!', 'Hello— world🍰!']);
  for (let row = 0; row < 3; row++) {
    assert.equal(deltas.get(row)!.join(''), texts[row]);
    assert.equal(deltas.get(row)!.length, script.length + 1); // + the EOS token's (empty) delta
  }
  assert.deepEqual(finished.sort(), [0, 1, 2]);
});

test('at most maxBatch rows run at once; rows join as others finish; finished rows leave; the pool is disposed', async () => {
  const dec = fresh(scriptedLogits(V, [tok.word('a'), tok.word('b')]));
  const reqs: GenerateRequest[] = [
    { prompt: 'a', numSamples: 3, maxNewTokens: 1 },
    { prompt: 'b c', numSamples: 2 },
  ];
  const out = await generate(dec, tok, reqs, { temperature: 0, maxBatch: 2 });
  assert.deepEqual(
    out.map((r) => r.samples.map((x) => x.text)),
    [
      ['a', 'a', 'a'],
      ['ab', 'ab'],
    ],
  );
  const opens = dec.calls.filter((c) => c.kind === 'open');
  assert.deepEqual(
    opens.map((c) => c.batchSize),
    [2],
    'one pool of maxBatch slots for the whole call',
  );
  assert.ok(dec.calls.every((c) => c.batchSize <= 2));
  // no finished row is ever fed again: every extend carries only rows still generating (no EOS fillers)
  for (const c of dec.calls.filter((c) => c.kind === 'extend')) assert.ok(c.tokens.every((t) => t[0] !== EOS));
  assert.equal(dec.disposed, 1);
  assert.equal(dec.live, 0);
});

test('rows sharing a prompt: its prefix is prefilled once, then each row takes its last token in one step', async () => {
  const dec = fresh();
  const res = await generate(dec, tok, [{ prompt: 'the cat sat', numSamples: 4 }], { maxNewTokens: 5, seed: 2 });
  const prefills = dec.calls.filter((c) => c.kind === 'prefill');
  assert.equal(prefills.length, 1);
  assert.equal(prefills[0]!.batchSize, 1, 'the shared prefix runs once');
  const prompt = tok.encode('the cat sat');
  assert.deepEqual(prefills[0]!.tokens[0], prompt.slice(0, -1));
  const alone = await Promise.all(
    [0, 1, 2, 3].map(async (j) => {
      // each sample alone: request seed s gives stream (s, 0, j), so compare through the per-request seed path
      const [r] = await generate(fresh(), tok, [{ prompt: 'the cat sat', numSamples: j + 1 }], {
        maxNewTokens: 5,
        seed: 2,
      });
      return r!.samples[j]!;
    }),
  );
  assert.deepEqual(res[0]!.samples, alone);
});

test('steer: shared p1/p2t with each request’s scales as rows of steer_scale; no steer → none passed', async () => {
  const d = 4;
  const K = 2;
  const p1 = { dtype: 'float32' as const, shape: [d, K], data: new Float32Array(d * K).fill(0.1) };
  const p2t = { dtype: 'float32' as const, shape: [K, d], data: Float32Array.from([9, -9, 0, 0, 0, 0, 9, -9]) };
  const steer = { p1, p2t };
  const reqs: GenerateRequest[] = [{ prompt: 'the cat', steerScale: Float32Array.from([1, 0.5]) }, { prompt: 'a' }];
  const dec = fresh();
  const both = await generate(dec, tok, reqs, { temperature: 0, maxNewTokens: 6, steer });
  const [open, prefill] = dec.calls;
  assert.equal(open!.kind, 'open');
  assert.equal(open!.steer!.p1, p1, 'the caller’s directions reach the decoder as they are');
  // rows join ordered by prompt length: 'a' (2 tokens) first, unsteered; then 'the cat' with its scales
  assert.equal(prefill!.kind, 'prefill');
  assert.deepEqual(prefill!.scales, [0, 0, 1, 0.5]);
  const plain = await generate(
    fresh(),
    tok,
    reqs.map((r) => ({ prompt: r.prompt })),
    { temperature: 0, maxNewTokens: 6 },
  );
  assert.notDeepEqual(both[0], plain[0], 'the steer changes the steered row');
  assert.deepEqual(both[1], plain[1], 'a zero scale leaves the row unsteered');
  const alone = await generate(fresh(), tok, [reqs[0]!], { temperature: 0, maxNewTokens: 6, steer });
  assert.deepEqual(alone[0], both[0]);
  const dec2 = fresh();
  await generate(dec2, tok, [{ prompt: 'a' }], { maxNewTokens: 2 });
  assert.equal(dec2.calls[0]!.steer, undefined);
});

test('an AbortSignal cancels between steps with CANCELLED and disposes the batch', async () => {
  const dec = fresh();
  const ac = new AbortController();
  let n = 0;
  await assert.rejects(
    generate(
      dec,
      tok,
      [{ prompt: 'a', numSamples: 2 }],
      { maxNewTokens: 50, stopAtEos: false },
      {
        signal: ac.signal,
        onToken: () => {
          if (++n === 5) ac.abort();
        },
      },
    ),
    isErr('CANCELLED', /cancelled/),
  );
  assert.equal(dec.live, 0);
  assert.ok(n <= 6, `stopped soon after the abort (${n} tokens)`);
  const dec2 = fresh();
  await assert.rejects(
    generate(dec2, tok, [{ prompt: 'a' }], {}, { signal: AbortSignal.abort() }),
    isErr('CANCELLED', /cancelled/),
  );
  assert.equal(dec2.calls.length, 0);
});

test('non-finite logits from the model are BAD_DATA naming the request and sample', async () => {
  const broken: LogitsFn = (t) => {
    const out = model(t, 0);
    if (t.length > 4) out[3] = NaN;
    return out;
  };
  const dec = fresh(broken);
  await assert.rejects(
    generate(dec, tok, [{ prompt: 'a' }, { prompt: 'b', numSamples: 2 }], { maxNewTokens: 8 }),
    isErr('BAD_DATA', /request 0 sample 0.*NaN/),
  );
  assert.equal(dec.live, 0);
});

test('a prompt of just BOS is allowed; empty requests give empty results', async () => {
  const [r] = await generate(fresh(), tok, [{ prompt: '' }], { maxNewTokens: 3, stopAtEos: false });
  assert.equal(r.promptTokens, 1);
  assert.equal(r.samples[0].tokenIds.length, 3);
  assert.deepEqual(await generate(fresh(), tok, [], {}), []);
});

test('every validation error names the field and value, with a hint', async () => {
  const noBos = new FakeTokenizer({ bos: false });
  const cases: [GenerateRequest[], GenerateOptions, string, RegExp, FakeTokenizer?][] = [
    [[{ prompt: '' }], {}, 'BAD_ARGUMENT', /requests\[0\]\.prompt "" encodes to zero tokens/, noBos],
    [[{ prompt: 'a' }, { prompt: { ids: [] } }], {}, 'BAD_ARGUMENT', /requests\[1\]\.prompt has zero tokens/],
    [[{ prompt: { ids: [1, V] } }], {}, 'BAD_ARGUMENT', new RegExp(`token id ${V}.*vocabulary of ${V}`)],
    [[{ prompt: { ids: [1, -1] } }], {}, 'BAD_ARGUMENT', /requests\[0\]\.prompt\.ids\[1\] must be .*got -1/],
    [[{ prompt: { ids: [1, 2.5] } }], {}, 'BAD_ARGUMENT', /prompt\.ids\[1\].*2\.5/],
    [[{ prompt: 5 as unknown as string }], {}, 'BAD_ARGUMENT', /requests\[0\]\.prompt must be/],
    [[{ prompt: 'a' }], { maxNewTokens: 0 }, 'BAD_ARGUMENT', /opts\.maxNewTokens must be an integer ≥ 1 \(got 0\)/],
    [[{ prompt: 'a' }], { maxNewTokens: -3 }, 'BAD_ARGUMENT', /opts\.maxNewTokens.*-3/],
    [[{ prompt: 'a' }], { maxNewTokens: 2.5 }, 'BAD_ARGUMENT', /opts\.maxNewTokens.*2\.5/],
    [[{ prompt: 'a' }], { maxNewTokens: NaN }, 'BAD_ARGUMENT', /opts\.maxNewTokens.*NaN/],
    [[{ prompt: 'a', maxNewTokens: 0 }], {}, 'BAD_ARGUMENT', /requests\[0\]\.maxNewTokens/],
    [
      [{ prompt: 'the cat' }],
      { maxNewTokens: 10, maxPositions: 8 },
      'LIMIT',
      /maxNewTokens 10 plus the prompt's 3 tokens exceeds .*maxPositions.* 8/,
    ],
    [
      [{ prompt: 'the cat sat on the mat' }],
      { maxPositions: 4 },
      'LIMIT',
      new RegExp(`has ${tok.encode('the cat sat on the mat').length} tokens.*maxPositions\\) is 4`),
    ],
    [[{ prompt: 'a', numSamples: 0 }], {}, 'BAD_ARGUMENT', /numSamples must be an integer from 1 to 10000 \(got 0\)/],
    [[{ prompt: 'a', numSamples: 10001 }], {}, 'BAD_ARGUMENT', /numSamples.*10001/],
    [[{ prompt: 'a', numSamples: NaN }], {}, 'BAD_ARGUMENT', /numSamples.*NaN/],
    [[{ prompt: 'a' }], { minNewTokens: -1 }, 'BAD_ARGUMENT', /opts\.minNewTokens/],
    [[{ prompt: 'a' }], { minNewTokens: 9, maxNewTokens: 4 }, 'BAD_ARGUMENT', /minNewTokens 9 exceeds maxNewTokens 4/],
    [[{ prompt: 'a' }], { temperature: NaN }, 'BAD_ARGUMENT', /opts\.temperature.*NaN/],
    [[{ prompt: 'a' }], { temperature: -1 }, 'BAD_ARGUMENT', /opts\.temperature.*-1/],
    [[{ prompt: 'a' }], { topK: -1 }, 'BAD_ARGUMENT', /opts\.topK/],
    [[{ prompt: 'a' }], { topP: 0 }, 'BAD_ARGUMENT', /opts\.topP must be a number in \(0, 1\] \(got 0\)/],
    [[{ prompt: 'a', topP: 1.5 }], {}, 'BAD_ARGUMENT', /requests\[0\]\.topP.*1\.5/],
    [[{ prompt: 'a' }], { seed: NaN }, 'BAD_ARGUMENT', /opts\.seed.*NaN/],
    [[{ prompt: 'a' }], { seed: 0.5 }, 'BAD_ARGUMENT', /opts\.seed/],
    [[{ prompt: 'a' }], { stop: [''] }, 'BAD_ARGUMENT', /opts\.stop\[0\] must be an array of non-empty strings/],
    [[{ prompt: 'a' }], { maxBatch: 0 }, 'BAD_ARGUMENT', /opts\.maxBatch/],
    [[{ prompt: 'a' }], { top_k: 3 } as GenerateOptions, 'BAD_ARGUMENT', /opts has unknown field\(s\) 'top_k'/],
    [
      [{ prompt: 'a', steerScale: new Float32Array(2) }],
      {},
      'BAD_ARGUMENT',
      /requests\[0\]\.steerScale is given but opts\.steer is not/,
    ],
    [
      [{ prompt: 'a', steerScale: [1, 2] as unknown as Float32Array }],
      {},
      'BAD_ARGUMENT',
      /steerScale must be a Float32Array/,
    ],
  ];
  for (const [reqs, opts, code, re, t] of cases) {
    await assert.rejects(
      generate(fresh(), t ?? tok, reqs, opts),
      isErr(code, re),
      `${JSON.stringify(reqs)} ${JSON.stringify(opts)}`,
    );
  }
  const steer = {
    p1: { dtype: 'float32' as const, shape: [4, 2], data: new Float32Array(8) },
    p2t: { dtype: 'float32' as const, shape: [2, 4], data: new Float32Array(8) },
  };
  await assert.rejects(
    generate(fresh(), tok, [{ prompt: 'a', steerScale: new Float32Array(3) }], { steer }),
    isErr('SHAPE_MISMATCH', /steerScale has 3 values.*K = 2/),
  );
  // Values are checked where they enter (SteerSet.resolve); a raw NaN scale shows up as NaN logits, named.
  await assert.rejects(
    generate(fresh(), tok, [{ prompt: 'a', steerScale: Float32Array.from([1, NaN]) }], { steer }),
    isErr('BAD_DATA', /request 0 sample 0.*NaN/),
  );
  const bad = { ...steer, p2t: { dtype: 'float32' as const, shape: [2, 5], data: new Float32Array(10) } };
  await assert.rejects(
    generate(fresh(), tok, [{ prompt: 'a' }], { steer: bad }),
    (e: unknown) => e instanceof LmSteerError && e.code === 'SHAPE_MISMATCH' && /opts\.steer\.p2t/.test(e.message),
  );
  await assert.rejects(
    generate(fresh(), tok, 'a' as unknown as GenerateRequest[], {}),
    isErr('BAD_ARGUMENT', /requests must be an array/),
  );
});

test('a repetition penalty changes what a row repeats; presence/frequency penalties apply to new tokens only', async () => {
  // a model that always prefers the token it just produced
  const sticky: LogitsFn = (t) => {
    const out = new Float32Array(V);
    out[t[t.length - 1]!] = 3;
    out[tok.word(' cat')] = 2.5;
    return out;
  };
  const run = (o: GenerateOptions) =>
    generate(fresh(sticky), tok, [{ prompt: 'a' }], { temperature: 0, maxNewTokens: 4, stopAtEos: false, ...o });
  const plain = (await run({}))[0]!.samples[0]!.tokenIds;
  assert.deepEqual(plain, [tok.word('a'), tok.word('a'), tok.word('a'), tok.word('a')]);
  const rep = (await run({ repetitionPenalty: 2 }))[0]!.samples[0]!.tokenIds;
  assert.equal(rep[0], tok.word(' cat'), 'the prompt token counts as seen: 3/2 < 2.5');
  const pres = (await run({ presencePenalty: 1 }))[0]!.samples[0]!.tokenIds;
  assert.equal(pres[0], tok.word('a'), 'presence ignores the prompt');
  assert.equal(pres[1], tok.word(' cat'), 'after one new "a": 3 − 1 < 2.5');
});
