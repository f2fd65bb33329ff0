/**
 * A Python pickle reader (protocols 0–5, the opcodes torch.save and argparse objects produce) that executes
 * nothing. Pickle is a stack machine whose GLOBAL/REDUCE opcodes normally import and call arbitrary Python;
 * here GLOBAL only yields a name (`PyGlobal`) and REDUCE/NEWOBJ/BUILD yield inert descriptions (`PyObject`)
 * unless the caller whitelisted that exact class in `classes` with a pure data handler. No package does this
 * for Node without running code, hence hand-written; the opcode semantics follow CPython's Lib/pickle.py.
 */
import { LmSteerError } from '../util/errors.js';

/** A `module.name` reference from GLOBAL/STACK_GLOBAL; never resolved to anything that runs. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get fullName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An object the unpickler did not interpret: the class it claims to be, its constructor args and state. */
export class PyObject {
  state?: unknown;
  kwargs?: unknown;
  /** Items SETITEM(S) added (dict subclasses). */
  dictItems: Array<[unknown, unknown]> = [];
  /** Items APPEND(S) added (list subclasses). */
  listItems: unknown[] = [];
  constructor(
    readonly className: string,
    readonly args: readonly unknown[],
  ) {}
}

/** Python dicts become Maps (keys may be ints or tuples); tuples become frozen arrays, lists arrays. */
export type PyDict = Map<unknown, unknown>;

/** A pure data handler for one whitelisted class: build the value from constructor args, apply BUILD state. */
export interface PyClassHandler {
  reduce(args: readonly unknown[]): unknown;
  /** Apply BUILD's state to an object `reduce` returned, in place (the memo already holds it). */
  build?(obj: unknown, state: unknown): void;
}

export interface UnpickleOptions {
  /** Whitelisted classes by `module.name`, on top of `defaultClasses`. */
  classes?: Record<string, PyClassHandler>;
  /** Resolves PERSID/BINPERSID ids (torch: storages). Without it persistent ids are an error. */
  persistentLoad?: (pid: unknown) => unknown;
  /** File name for error messages. */
  source?: string;
}

/** Set `key` on a plain object without invoking the `__proto__` setter (pickles are untrusted). */
export function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Python builtins that carry plain data and appear in ordinary pickles. */
export const defaultClasses: Record<string, PyClassHandler> = {
  'collections.OrderedDict': {
    reduce: (args) => new Map(args.length ? (args[0] as Iterable<[unknown, unknown]>) : []),
  },
  'builtins.set': { reduce: (args) => new Set(args.length ? (args[0] as Iterable<unknown>) : []) },
  'builtins.frozenset': { reduce: (args) => new Set(args.length ? (args[0] as Iterable<unknown>) : []) },
  'builtins.bytearray': { reduce: (args) => (args[0] instanceof Uint8Array ? args[0] : new Uint8Array(0)) },
  // Protocols 0–2 name builtins by their Python 2 module (pickle's fix_imports).
  '__builtin__.set': { reduce: (args) => new Set(args.length ? (args[0] as Iterable<unknown>) : []) },
  '__builtin__.frozenset': { reduce: (args) => new Set(args.length ? (args[0] as Iterable<unknown>) : []) },
  // Protocol 2 writes Python-3 bytes as _codecs.encode(str, 'latin1').
  '_codecs.encode': {
    reduce: ([s, enc]) => {
      if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1'))
        return new PyObject('_codecs.encode', [s, enc]);
      return Uint8Array.from(s, (ch) => ch.charCodeAt(0) & 0xff);
    },
  },
  // argparse.Namespace(**kw) pickles as NEWOBJ(()) + BUILD(state dict): a plain object of its fields.
  'argparse.Namespace': {
    reduce: () => ({}),
    build: (obj, state) => {
      if (!(state instanceof Map)) return;
      for (const [k, v] of state) setOwn(obj as Record<string, unknown>, String(k), v);
    },
  },
};

const MARK_OBJ = Symbol('mark');

class Reader {
  pos = 0;
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    private readonly fail: (msg: string) => never,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number): void {
    if (n < 0 || this.pos + n > this.bytes.length)
      this.fail(`truncated: needs ${n} more bytes at offset ${this.pos}, file has ${this.bytes.length}`);
  }
  u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`length ${v} at offset ${this.pos - 8} is too large`);
    return Number(v);
  }
  f64be(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, false);
    this.pos += 8;
    return v;
  }
  take(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) this.fail(`truncated: unterminated text argument at offset ${this.pos}`);
    const s = latin1(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/**
 * Little-endian two's complement (LONG1/LONG4) → number when safe, else bigint. Through one hex string, so
 * linear in the length (shifting a growing bigint byte by byte is quadratic: a 1 MB LONG4 took minutes).
 */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return toNumberIfSafe(v);
}
function toNumberIfSafe(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

const tuple = (items: unknown[]): readonly unknown[] => Object.freeze(items);

/** Decode one pickle. Throws BAD_FILE (naming `source`) for malformed or truncated input. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions = {}): unknown {
  const source = opts.source ?? 'pickle';
  const fail = (msg: string): never => {
    throw new LmSteerError(
      'BAD_FILE',
      `${source}: ${msg}`,
      'the file is damaged or not a pickle written by torch.save / pickle.dump',
    );
  };
  const classes: Record<string, PyClassHandler> = { ...defaultClasses, ...opts.classes };
  const handled = new WeakMap<object, PyClassHandler>(); // objects a handler built, for BUILD
  const r = new Reader(bytes, fail);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!))
      fail(`stack underflow at offset ${r.pos - 1}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail(`stack underflow at offset ${r.pos - 1}`);
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail(`no MARK before offset ${r.pos - 1}`);
    return stack.splice(m!);
  };
  const getMemo = (i: number): unknown => {
    if (!memo.has(i)) fail(`memo key ${i} is not defined (offset ${r.pos})`);
    return memo.get(i);
  };
  const className = (callable: unknown): string =>
    callable instanceof PyGlobal
      ? callable.fullName
      : callable instanceof PyObject
        ? `<${callable.className}(...)>`
        : '<value>';
  const construct = (callable: unknown, args: unknown): unknown => {
    if (!Array.isArray(args)) fail(`REDUCE/NEWOBJ arguments are not a tuple at offset ${r.pos - 1}`);
    const name = className(callable);
    const handler = callable instanceof PyGlobal ? classes[name] : undefined;
    if (!handler) return new PyObject(name, args as unknown[]);
    let obj: unknown;
    try {
      obj = handler.reduce(args as unknown[]);
    } catch (e) {
      if (e instanceof LmSteerError) throw e;
      fail(`${name} called with arguments it does not take (${(e as Error).message}) at offset ${r.pos - 1}`);
    }
    if (obj !== null && typeof obj === 'object') handled.set(obj, handler);
    return obj;
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (items.length % 2) fail(`odd number of items for SETITEMS at offset ${r.pos - 1}`);
    for (let i = 0; i < items.length; i += 2) {
      if (target instanceof Map) target.set(items[i], items[i + 1]);
      else if (target instanceof PyObject) target.dictItems.push([items[i], items[i + 1]]);
      else fail(`SETITEM on a ${typeof target} at offset ${r.pos - 1}`);
    }
  };
  const appendItems = (target: unknown, items: unknown[]): void => {
    // (loops, not push(...items): spreading a million items overflows the call stack)
    if (Array.isArray(target) && !Object.isFrozen(target)) for (const x of items) target.push(x);
    else if (target instanceof Set) items.forEach((x) => target.add(x));
    else if (target instanceof PyObject) for (const x of items) target.listItems.push(x);
    else fail(`APPEND on a ${typeof target} at offset ${r.pos - 1}`);
  };

  for (;;) {
    const op = r.u8();
    switch (op) {
      case 0x80: // PROTO
        if (r.u8() > 5) fail('pickle protocol above 5 is not supported');
        break;
      case 0x95: // FRAME: a length prefix only; frames are contiguous in the stream
        r.u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length && stack.length === marks[marks.length - 1]) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      // --- constants
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(r.i32());
        break;
      case 0x4b: // BININT1
        stack.push(r.u8());
        break;
      case 0x4d: // BININT2
        stack.push(r.u16());
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(r.take(r.u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = r.i32();
        if (n < 0) fail('negative LONG4 length');
        stack.push(decodeLong(r.take(n)));
        break;
      }
      case 0x49: {
        // INT (text): also protocol 0's booleans
        const s = r.line();
        if (s === '01') stack.push(true);
        else if (s === '00') stack.push(false);
        else stack.push(parseIntText(s, fail));
        break;
      }
      case 0x4c: // LONG (text)
        stack.push(parseIntText(r.line().replace(/L$/, ''), fail));
        break;
      case 0x47: // BINFLOAT: big-endian double
        stack.push(r.f64be());
        break;
      case 0x46: {
        // FLOAT (text)
        const v = Number(r.line());
        stack.push(v);
        break;
      }
      // --- strings and bytes
      case 0x58: // BINUNICODE
        stack.push(decodeUtf8(r.take(r.u32()), fail));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(decodeUtf8(r.take(r.u8()), fail));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(decodeUtf8(r.take(r.u64()), fail));
        break;
      case 0x56: // UNICODE (raw-unicode-escape line)
        stack.push(
          r
            .line()
            .replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, a, b) =>
              String.fromCodePoint(parseInt(a ?? b, 16)),
            ),
        );
        break;
      case 0x54: // BINSTRING (py2 str): latin-1, as Python 3 does with encoding='latin1'
        stack.push(latin1(r.take(r.i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1(r.take(r.u8())));
        break;
      case 0x53: {
        // STRING (quoted repr line); only plain quoted text is supported
        const s = r.line();
        const m = /^(['"])(.*)\1$/s.exec(s);
        if (!m) fail(`unsupported STRING literal ${JSON.stringify(s.slice(0, 40))}`);
        stack.push(m![2]);
        break;
      }
      case 0x42: // BINBYTES
        stack.push(r.take(r.u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(r.take(r.u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(r.take(r.u64()).slice());
        break;
      case 0x96: // BYTEARRAY8
        stack.push(r.take(r.u64()).slice());
        break;
      // --- containers
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]));
        break;
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x64: {
        // DICT
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x74: // TUPLE
        stack.push(tuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b, c]));
        break;
      }
      case 0x91: // FROZENSET
        stack.push(new Set(popMark()));
        break;
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      // --- memo
      case 0x71: // BINPUT
        memo.set(r.u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(r.u32(), top());
        break;
      case 0x70: // PUT
        memo.set(parseIntText(r.line(), fail) as number, top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        stack.push(getMemo(r.u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(getMemo(r.u32()));
        break;
      case 0x67: // GET
        stack.push(getMemo(parseIntText(r.line(), fail) as number));
        break;
      // --- objects: names and inert descriptions, never calls
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = r.line();
        const name = r.line();
        stack.push(new PyGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(new PyGlobal(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const callable = pop();
        stack.push(construct(callable, args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = pop();
        stack.push(construct(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        const obj = construct(cls, args);
        if (obj instanceof PyObject) obj.kwargs = kwargs;
        stack.push(obj);
        break;
      }
      case 0x69: {
        // INST "module\nname\n" with MARKed args
        const module = r.line();
        const name = r.line();
        stack.push(construct(new PyGlobal(module, name), popMark()));
        break;
      }
      case 0x6f: {
        // OBJ: MARK cls args...
        const items = popMark();
        if (items.length === 0) fail('OBJ without a class');
        stack.push(construct(items[0], items.slice(1)));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = top();
        const handler = obj !== null && typeof obj === 'object' ? handled.get(obj) : undefined;
        if (handler?.build) handler.build(obj, state);
        else if (obj instanceof PyObject) obj.state = state;
        else if (obj instanceof Map && state instanceof Map) for (const [k, v] of state) obj.set(k, v);
        // Anything else (e.g. a tensor rebuilt by a handler) keeps its value; the state is dropped.
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail('persistent id found but no loader given');
        stack.push(opts.persistentLoad!(pid));
        break;
      }
      case 0x50: {
        // PERSID
        const pid = r.line();
        if (!opts.persistentLoad) fail('persistent id found but no loader given');
        stack.push(opts.persistentLoad!(pid));
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84: // EXT1/2/4: the copyreg extension registry
        throw new LmSteerError('UNSUPPORTED', `${source}: pickle extension codes (EXT opcodes) are not supported`);
      case 0x97:
      case 0x98: // NEXT_BUFFER / READONLY_BUFFER: out-of-band buffers never appear in files
        throw new LmSteerError('UNSUPPORTED', `${source}: out-of-band pickle buffers are not supported`);
      default:
        fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')} at offset ${r.pos - 1}`);
    }
  }
}

function decodeUtf8(b: Uint8Array, fail: (m: string) => never): string {
  try {
    return utf8.decode(b);
  } catch {
    return fail('invalid UTF-8 in a string');
  }
}

function parseIntText(s: string, fail: (m: string) => never): number | bigint {
  if (!/^[-+]?\d+$/.test(s.trim())) fail(`bad integer literal ${JSON.stringify(s.slice(0, 40))}`);
  return toNumberIfSafe(BigInt(s.trim()));
}
