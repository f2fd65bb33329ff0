/**
 * The one steer set: named values → a steer_scale row, with defaults, every naming rule, the base slot and
 * every error; loading, adding and removing steers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packScale, packSteers } from '../../src/steer/pack.js';
import { saveSteer } from '../../src/steer/steerFile.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import { BASE_SLOT, LEGACY_DUMMY_SLOT } from '../../src/steer/steer.js';
import { LmSteerError } from '../../src/util/errors.js';
import { randomSteer } from './randomSteer.js';

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
        slots: [{ name: LEGACY_DUMMY_SLOT, defaultValue: 1 }, 'formal', 'casual'],
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
    // the legacy dummy slot of the file is read as `base`, default 1, and is listed and settable like the rest
    assert.deepEqual(absent.effective, { sent: 2, 'style.base': 1, 'style.formal': 0, 'style.casual': -1 });
    assert.deepEqual(Array.from(absent.scale!), row([[2], [1, 0, -1]]));
    const r = set.resolve({ 'style.formal': 3, sent: 0 });
    assert.deepEqual(r.effective, { sent: 0, 'style.base': 1, 'style.formal': 3, 'style.casual': -1 });
    assert.deepEqual(Array.from(r.scale!), row([[0], [1, 3, -1]]));
    // the bare slot name and the full name reach the same slot
    assert.deepEqual(set.resolve({ formal: 3, 'sent.pos': 0 }).effective, r.effective);
  });
});

test('unknown names, non-numbers and a slot set twice are BAD_ARGUMENT naming the known values', () => {
  setup(({ a, b }) => {
    const set = SteerSet.load(base, [a, b]);
    assert.throws(() => set.resolve({ joy: 1 }), isCode('BAD_ARGUMENT', /joy.*sent\.pos, style\.base, style\.formal/s));
    assert.throws(() => set.resolve({ sent: NaN }), isCode('BAD_ARGUMENT', /sent/));
    assert.throws(() => set.resolve({ formal: 1, 'style.formal': 2 }), isCode('BAD_ARGUMENT', /both set/));
    assert.throws(
      () => set.resolve({ [LEGACY_DUMMY_SLOT]: 1 }),
      isCode('BAD_ARGUMENT', /unknown steer value "__dummy__"/),
    );
    // 'style' has two slots besides base: its bare name is ambiguous
    assert.throws(() => set.resolve({ style: 1 }), isCode('BAD_ARGUMENT', /ambiguous.*style\.formal, style\.casual/));
    assert.throws(() => set.resolve({ sent: 1e5 }), isCode('LIMIT', /beyond ±10000/));
    assert.throws(() => SteerSet.load(base, [a], {}, { maxValue: 10 }).resolve({ sent: 11 }), isCode('LIMIT', /±10/));
    assert.throws(() => SteerSet.empty().resolve({ sent: 1 }), isCode('BAD_ARGUMENT', /no steer is loaded/));
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
      ['style.base', 'style.formal', 'style.casual'],
    );
    assert.match(two.info()[1]!.slots[0]!.note ?? '', /always-on/);
    assert.throws(
      () => SteerSet.load({ ...base, fingerprint: () => 'emb1-other' }, [a]),
      isCode('MODEL_MISMATCH', /emb1-other/),
    );
  });
});

test('naming rules: steer.slot always; a slot name when unique; a steer name for its main slot (besides base)', () => {
  const a = randomSteer({ d: 4, rank: 1, name: 'detox', slots: ['toxic', { name: BASE_SLOT, defaultValue: 1 }] });
  const b = randomSteer({ d: 4, rank: 1, name: 'mood', slots: ['positive', 'formal'] });
  const set = SteerSet.of([a, b]);
  assert.deepEqual(set.values(), [
    [0, 1],
    [0, 0],
  ]);
  assert.deepEqual(set.values({ toxic: -5, 'mood.formal': 2 }), [
    [-5, 1],
    [0, 2],
  ]);
  assert.deepEqual(
    set.values(
      new Map([
        ['detox', 3],
        ['positive', 1.5],
        ['base', 0],
      ]),
    ),
    [
      [3, 0],
      [1.5, 0],
    ],
  );
  assert.deepEqual(set.knownValueNames(), ['detox.toxic', 'detox.base', 'mood.positive', 'mood.formal']);
  assert.throws(() => set.values({ mood: 1 }), isCode('BAD_ARGUMENT', /ambiguous.*mood\.positive, mood\.formal/));
  // `names` overrides the steers' own (two copies of one steer under two names)
  const twice = SteerSet.of([b, b], ['l', 'r']);
  assert.deepEqual(twice.values({ 'l.formal': 2 }), [
    [0, 2],
    [0, 0],
  ]);
  assert.throws(() => SteerSet.of([b, b]), isCode('BAD_ARGUMENT', /both named "mood"/));
  assert.throws(() => twice.values({ formal: 1 }), isCode('BAD_ARGUMENT', /ambiguous.*l\.formal, r\.formal/));
  assert.throws(() => set.values({ toxic: NaN }), isCode('BAD_ARGUMENT', /"toxic" is NaN/));
  assert.throws(() => set.values({ toxic: Infinity }), isCode('BAD_ARGUMENT', /Infinity/));
});

test('every slot at 0 gives an all-zero scale row (the base model), the base slot included', () => {
  const a = randomSteer({ d: 4, rank: 2, name: 'detox', slots: ['toxic', { name: BASE_SLOT, defaultValue: 1 }] });
  const set = SteerSet.of([a]);
  assert.ok(
    set.resolve({ detox: 0 }).scale!.some((v) => v !== 0),
    'base stays at 1 when only the main slot is 0',
  );
  assert.ok(set.resolve(set.offValues()).scale!.every((v) => v === 0));
});
