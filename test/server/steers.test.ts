/** A request's steer values → its steer_scale row: server defaults, overrides by any accepted name, errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packScale, packSteers } from '../../src/steer/pack.js';
import { saveSteer } from '../../src/steer/steerFile.js';
import { SteerSet } from '../../src/server/steers.js';
import { DUMMY_SLOT } from '../../src/steer/steer.js';
import { LmSteerError } from '../../src/util/errors.js';
import { randomSteer } from '../steer/randomSteer.js';

const base = { id: 'test/tiny', fingerprint: () => 'emb1-test', cfg: { hiddenSize: 6 } };

function setup(fn: (dirs: { a: string; b: string }) => void): void {
  const tmp = mkdtempSync(join(tmpdir(), 'lmsteer-steerset-'));
  try {
    const a = join(tmp, 'a');
    const b = join(tmp, 'b');
    saveSteer(a, randomSteer({ d: 6, rank: 2, slots: ['pos'], eps: 0.1, seed: 1, name: 'sent' }));
    saveSteer(
      b,
      randomSteer({
        d: 6,
        rank: 1,
        slots: [{ name: DUMMY_SLOT, defaultValue: 1 }, 'formal', 'casual'],
        eps: 0.2,
        seed: 2,
        name: 'style',
      }),
    );
    fn({ a, b });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const isCode = (code: string, re: RegExp) => (e: unknown) =>
  e instanceof LmSteerError && e.code === code && re.test(e.message + ' ' + e.hint);

test('server defaults apply to slots a request leaves out; a request overrides only what it names', () => {
  setup(({ a, b }) => {
    const set = SteerSet.load(base, [a, b], { sent: 2, casual: -1 });
    const steers = set.entries.map((e) => e.steer);
    const packed = packSteers(steers);
    const row = (v: number[][]) => Array.from(packScale(packed, [v], 1).data);
    const absent = set.resolve();
    assert.deepEqual(absent.effective, { sent: 2, 'style.formal': 0, 'style.casual': -1 });
    assert.deepEqual(Array.from(absent.scale!), row([[2], [1, 0, -1]]));
    const r = set.resolve({ 'style.formal': 3, sent: 0 });
    assert.deepEqual(r.effective, { sent: 0, 'style.formal': 3, 'style.casual': -1 });
    assert.deepEqual(Array.from(r.scale!), row([[0], [1, 3, -1]]));
    // the bare slot name and the full name reach the same slot
    assert.deepEqual(set.resolve({ formal: 3, 'sent.pos': 0 }).effective, r.effective);
  });
});

test('unknown names, non-numbers and a slot set twice are BAD_ARGUMENT naming the known values', () => {
  setup(({ a, b }) => {
    const set = SteerSet.load(base, [a, b]);
    assert.throws(() => set.resolve({ joy: 1 }), isCode('BAD_ARGUMENT', /joy.*sent\.pos.*style\.formal/s));
    assert.throws(() => set.resolve({ sent: NaN }), isCode('BAD_ARGUMENT', /sent/));
    assert.throws(() => set.resolve({ formal: 1, 'style.formal': 2 }), isCode('BAD_ARGUMENT', /both set/));
    assert.throws(() => set.resolve({ [DUMMY_SLOT]: 1 }), isCode('BAD_ARGUMENT', /dummy/));
    assert.throws(() => SteerSet.empty().resolve({ sent: 1 }), isCode('BAD_ARGUMENT', /no steers/));
    assert.deepEqual(SteerSet.empty().resolve({}), { effective: {} });
  });
});

test('withSteer / without make new sets; duplicates and unknown names are refused', () => {
  setup(({ a, b }) => {
    const one = SteerSet.load(base, [a]);
    const { set: two, name } = one.withSteer(base, b);
    assert.equal(name, 'style');
    assert.deepEqual(two.names(), ['sent', 'style']);
    assert.deepEqual(one.names(), ['sent']);
    assert.throws(() => two.withSteer(base, b), isCode('BAD_ARGUMENT', /already loaded/));
    assert.deepEqual(two.without('sent').names(), ['style']);
    assert.throws(() => two.without('nope'), isCode('NOT_FOUND', /nope/));
    assert.equal(two.without('sent').without('style').directions, undefined);
    assert.deepEqual(
      two.info()[1]!.slots.map((s) => s.value_name),
      ['style.formal', 'style.casual'],
    );
    assert.throws(
      () => SteerSet.load({ ...base, fingerprint: () => 'emb1-other' }, [a]),
      isCode('MODEL_MISMATCH', /emb1-other/),
    );
  });
});
