/**
 * Writing torch.save files the way PyTorch lays them out (a tiny pickle writer and the zip container), for
 * tests of the .pt reader: well-formed ones and hostile ones.
 */
import { strToU8, zipSync } from 'fflate';

export class Pickle {
  private parts: number[] = [];
  raw(...b: number[]): this {
    this.parts.push(...b);
    return this;
  }
  text(s: string): this {
    return this.raw(...Buffer.from(s, 'latin1'));
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.raw(0x8c, b.length, ...b); // SHORT_BINUNICODE
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    return this.raw(0x4a, ...b);
  }
  float(x: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    return this.raw(0x47, ...b);
  }
  global(module: string, name: string, stack = false): this {
    return stack ? this.str(module).str(name).raw(0x93) : this.text(`c${module}\n${name}\n`);
  }
  tuple(xs: number[]): this {
    this.raw(0x28);
    xs.forEach((x) => this.int(x));
    return this.raw(0x74);
  }
  bytes(): Uint8Array {
    return Uint8Array.from([...this.parts, 0x2e]); // STOP
  }
}

export interface TensorSpec {
  key: string;
  storage: 'FloatStorage' | 'HalfStorage';
  numel: number;
  offset: number;
  size: number[];
  stride: number[];
  parameter: boolean;
}

/** A float32 [1, 2, 2] tensor stored under `key` (4 values from offset 0), changed by `over`. */
export function smallTensorSpec(key: string, over: Partial<TensorSpec> = {}): TensorSpec {
  return {
    key,
    storage: 'FloatStorage',
    numel: 4,
    offset: 0,
    size: [1, 2, 2],
    stride: [4, 2, 1],
    parameter: false,
    ...over,
  };
}

export function writeTensor(p: Pickle, t: TensorSpec, stack: boolean): void {
  if (t.parameter) p.global('torch._utils', '_rebuild_parameter', stack).raw(0x28);
  p.global('torch._utils', '_rebuild_tensor_v2', stack).raw(0x28);
  p.raw(0x28).str('storage').global('torch', t.storage, stack).str(t.key).str('cpu').int(t.numel).raw(0x74, 0x51); // persistent id
  p.int(t.offset).tuple(t.size).tuple(t.stride).raw(0x89); // requires_grad False
  p.global('collections', 'OrderedDict', stack).raw(0x29, 0x52); // backward hooks
  p.raw(0x74, 0x52);
  if (t.parameter) p.raw(0x88).global('collections', 'OrderedDict', stack).raw(0x29, 0x52).raw(0x74, 0x52);
}

/** `torch.save([Namespace(**args), {projector1, projector2}, steps])` as a zip. */
export function torchSave(
  args: Record<string, number | string | null>,
  tensors: [TensorSpec, TensorSpec],
  data: Record<string, Uint8Array>,
  opts: { protocol4?: boolean; steps?: number; byteorder?: string } = {},
): Uint8Array {
  const stack = opts.protocol4 ?? false;
  const p = new Pickle().raw(0x80, stack ? 4 : 2);
  if (stack) p.raw(0x95, 0, 0, 0, 0, 0, 0, 0, 0); // FRAME (length ignored by readers that stream)
  p.raw(0x5d, 0x28); // EMPTY_LIST MARK
  p.global('argparse', 'Namespace', stack).raw(0x29, 0x81).raw(0x7d, 0x28); // NEWOBJ, state dict
  for (const [k, v] of Object.entries(args)) {
    p.str(k);
    if (v === null) p.raw(0x4e);
    else if (typeof v === 'string') p.str(v);
    else if (Number.isInteger(v)) p.int(v);
    else p.float(v);
  }
  p.raw(0x75, 0x62); // SETITEMS BUILD
  p.raw(0x7d, 0x94, 0x28); // EMPTY_DICT MEMOIZE MARK
  p.str('projector1');
  writeTensor(p, tensors[0], stack);
  p.str('projector2');
  writeTensor(p, tensors[1], stack);
  p.raw(0x75)
    .int(opts.steps ?? 7)
    .raw(0x65); // SETITEMS, steps, APPENDS
  const files: Record<string, Uint8Array> = {
    'archive/data.pkl': p.bytes(),
    'archive/version': strToU8('3\n'),
    'archive/byteorder': strToU8(opts.byteorder ?? 'little'),
  };
  for (const [k, v] of Object.entries(data)) files[`archive/data/${k}`] = v;
  return zipSync(files, { level: 0 });
}
