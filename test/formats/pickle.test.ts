import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PyGlobal, PyObject, unpickle } from '../../src/formats/pickle.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
type E = Error & { code?: string };

// Written by CPython 3 `pickle.dumps(v, protocol=p)` for
// v = {'a': [1, -2, 300, 70000, -70000, 2**70, -2**63, 1.5, None, True, False], 't': (1, ('x',), (1,2), (1,2,3), ()),
//      'u': 'héllo', 'b': b'\x00\x01', 'n': {1: 'one'}, 's': {3}, 'o': OrderedDict([('k', 2)])}; v['shared'] = v['a']
const PICKLES: Record<number, string> = {
  0: '286470300a56610a70310a286c70320a49310a61492d320a61493330300a614937303030300a61492d37303030300a614c313138303539313632303731373431313330333432344c0a614c2d393232333337323033363835343737353830384c0a6146312e350a614e614930310a614930300a617356740a70330a2849310a2856780a70340a7470350a2849310a49320a7470360a2849310a49320a49330a7470370a28747470380a7356750a70390a5668e96c6c6f0a7031300a7356620a7031310a635f636f646563730a656e636f64650a7031320a28565c7530303030010a7031330a566c6174696e310a7031340a747031350a527031360a73566e0a7031370a28647031380a49310a566f6e650a7031390a737356730a7032300a635f5f6275696c74696e5f5f0a7365740a7032310a28286c7032320a49330a61747032330a527032340a73566f0a7032350a63636f6c6c656374696f6e730a4f726465726564446963740a7032360a2874527032370a566b0a7032380a49320a7373567368617265640a7032390a67320a732e',
  2: '80027d71002858010000006171015d7102284b014afeffffff4d2c014a701101004a90eefeff8a090000000000000000408a080000000000000080473ff80000000000004e8889655801000000747103284b0158010000007871048571054b014b028671064b014b024b03877107297471085801000000757109580600000068c3a96c6c6f710a580100000062710b635f636f646563730a656e636f64650a710c58020000000001710d58060000006c6174696e31710e86710f52711058010000006e71117d71124b0158030000006f6e657113735801000000737114635f5f6275696c74696e5f5f0a7365740a71155d71164b036185711752711858010000006f711963636f6c6c656374696f6e730a4f726465726564446963740a711a2952711b58010000006b711c4b02735806000000736861726564711d6802752e',
  4: '800495c6000000000000007d94288c0161945d94284b014afeffffff4d2c014a701101004a90eefeff8a090000000000000000408a080000000000000080473ff80000000000004e8889658c017494284b018c01789485944b014b0286944b014b024b0387942974948c0175948c0668c3a96c6c6f948c01629443020001948c016e947d944b018c036f6e6594738c0173948f94284b03908c016f948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b02738c06736861726564946802752e',
  5: '800595c6000000000000007d94288c0161945d94284b014afeffffff4d2c014a701101004a90eefeff8a090000000000000000408a080000000000000080473ff80000000000004e8889658c017494284b018c01789485944b014b0286944b014b024b0387942974948c0175948c0668c3a96c6c6f948c01629443020001948c016e947d944b018c036f6e6594738c0173948f94284b03908c016f948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b02738c06736861726564946802752e',
};

for (const [protocol, bytes] of Object.entries(PICKLES)) {
  test(`decodes CPython's protocol ${protocol} pickle of plain data`, () => {
    const v = unpickle(hex(bytes)) as Map<string, unknown>;
    assert.ok(v instanceof Map);
    assert.deepEqual(v.get('a'), [1, -2, 300, 70000, -70000, 2n ** 70n, -(2n ** 63n), 1.5, null, true, false]);
    assert.deepEqual(v.get('t'), [1, ['x'], [1, 2], [1, 2, 3], []]);
    assert.equal(v.get('u'), 'héllo');
    assert.deepEqual(v.get('b'), new Uint8Array([0, 1]));
    assert.deepEqual(v.get('n'), new Map([[1, 'one']]));
    assert.deepEqual(v.get('s'), new Set([3]));
    assert.deepEqual(v.get('o'), new Map([['k', 2]]));
    assert.equal(v.get('shared'), v.get('a'), 'the memo shares one object');
  });
}

test('argparse.Namespace becomes a plain object of its fields', () => {
  // pickle.dumps(argparse.Namespace(epsilon=0.001, dummy_steer=None, rank=4), protocol=2)
  const ns = unpickle(
    hex(
      '80026361726770617273650a4e616d6573706163650a7100298171017d7102285807000000657073696c6f6e7103473f50624dd2f1a9fc580b00000064756d6d795f737465657271044e580400000072616e6b71054b0475622e',
    ),
  );
  assert.deepEqual(ns, { epsilon: 0.001, dummy_steer: null, rank: 4 });
});

test('a malicious pickle (GLOBAL os.system + REDUCE) stays an inert description; nothing runs', () => {
  const marker = join(tmpdir(), `lmsteer-pwned-${process.pid}`);
  const cmd = Buffer.from(`touch ${marker}`);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(cmd.length);
  // \x80\x02 c os\nsystem\n ( X <cmd> t R .
  const bytes = Buffer.concat([
    Buffer.from([0x80, 2]),
    Buffer.from('cos\nsystem\n('),
    Buffer.from('X'),
    len,
    cmd,
    Buffer.from('tR.'),
  ]);
  const v = unpickle(bytes);
  assert.ok(v instanceof PyObject);
  assert.equal(v.className, 'os.system');
  assert.deepEqual(v.args, [`touch ${marker}`]);
  assert.equal(existsSync(marker), false);
  // A bare GLOBAL is only a name.
  const g = unpickle(Buffer.from('\x80\x02cbuiltins\neval\n.', 'latin1'));
  assert.ok(g instanceof PyGlobal && g.fullName === 'builtins.eval');
});

test('a __proto__ field in a Namespace does not touch prototypes', () => {
  // Namespace with state {'__proto__': {'polluted': 1}} built by hand: NEWOBJ, EMPTY_DICT, key, EMPTY_DICT, key, 1, SETITEM, SETITEM, BUILD
  const b = Buffer.concat([
    Buffer.from('\x80\x02cargparse\nNamespace\n)\x81}', 'latin1'),
    Buffer.from('\x8c\x09__proto__}\x8c\x08polluted\x4b\x01ss', 'latin1'),
    Buffer.from('b.', 'latin1'),
  ]);
  const v = unpickle(b) as Record<string, unknown>;
  assert.ok(Object.prototype.hasOwnProperty.call(v, '__proto__'));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
});

test('malformed pickles give BAD_FILE naming the source', () => {
  const full = hex(PICKLES[2]!);
  assert.throws(
    () => unpickle(full.subarray(0, 40), { source: 'x.pkl' }),
    (e: E) => e.code === 'BAD_FILE' && /x\.pkl: truncated/.test(e.message),
  );
  assert.throws(
    () => unpickle(Buffer.from([0x80, 2, 0xff])),
    (e: E) => e.code === 'BAD_FILE' && /unknown opcode 0xff/.test(e.message),
  );
  assert.throws(() => unpickle(Buffer.from('\x80\x02h\x07.', 'latin1')), /memo key 7/);
  assert.throws(() => unpickle(Buffer.from('\x80\x02R.', 'latin1')), /stack underflow/);
  assert.throws(() => unpickle(Buffer.from('\x80\x02(X\x01\x00\x00\x00aQ.', 'latin1')), /no loader/);
});

test('a 256 KB LONG4 decodes in linear time, to the right value', () => {
  const n = 256 * 1024;
  const b = Buffer.alloc(5 + n + 1);
  b[0] = 0x8b; // LONG4
  b.writeInt32LE(n, 1);
  b[5] = 0x05; // value 5 + 2^(8·(n−1))·0x40 (positive: top bit clear)
  b[5 + n - 1] = 0x40;
  b[5 + n] = 0x2e; // STOP
  const v = unpickle(b) as bigint;
  assert.equal(typeof v, 'bigint');
  assert.equal(v & 0xffn, 5n);
  assert.equal(v >> BigInt(8 * (n - 1)), 0x40n);
  const neg = unpickle(Buffer.from([0x8a, 2, 0xfe, 0xff, 0x2e])); // LONG1 -2
  assert.equal(neg, -2);
});

test('whitelisted builtins called with bad arguments are BAD_FILE, not a crash', () => {
  // OrderedDict(5), set(5), OrderedDict([1, 2]) (items that are not pairs)
  const call = (global: string, arg: string) =>
    unpickle(Buffer.from(`\x80\x02c${global}\n${arg}\x85R.`, 'latin1'), { source: 'bad.pkl' });
  for (const [g, a] of [
    ['collections\nOrderedDict', 'K\x05'],
    ['builtins\nset', 'K\x05'],
    ['collections\nOrderedDict', ']K\x01aK\x02a'], // [1] then append 2: EMPTY_LIST, BININT1 1, APPEND...
  ] as const) {
    assert.throws(
      () => call(g, a),
      (e: E) => e.code === 'BAD_FILE' && /bad\.pkl: .*arguments it does not take/.test(e.message),
      g,
    );
  }
});

test('APPENDS of many items and a list that contains itself do not overflow the stack', () => {
  const n = 300_000;
  const parts = [Buffer.from([0x80, 2, 0x5d, 0x28])]; // EMPTY_LIST MARK
  parts.push(Buffer.alloc(n * 2, Buffer.from([0x4b, 0x01]))); // n × BININT1 1
  parts.push(Buffer.from([0x65, 0x2e])); // APPENDS STOP
  assert.equal((unpickle(Buffer.concat(parts)) as number[]).length, n);
  const self = unpickle(Buffer.from('\x80\x02]q\x00h\x00a.', 'latin1')) as unknown[]; // l = []; l.append(l)
  assert.equal(self[0], self);
});
