/**
 * The hostile-input corpus (test/helpers/hostileCorpus.ts) and a seeded mutation fuzz of real files: every
 * user-causable failure is an LmSteerError with a one-line message (the CLI prints it and exits 2, no stack
 * trace); nothing hangs, nothing allocates from an unchecked size. The gigabyte versions of these cases are
 * scripts/hostile-big.mjs (opt-in).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLlama2c } from '../../src/formats/llama2c.js';
import { openSafetensors } from '../../src/formats/safetensors.js';
import { loadTorchBytes } from '../../src/formats/torchPt.js';
import { parseLlama2cTokenizer } from '../../src/tokenizer/llama2cTokenizer.js';
import { parseJsonBody } from '../../src/server/openai.js';
import { LmSteerError } from '../../src/util/errors.js';
import { runCli } from '../helpers/cli.js';
import { hostileCases, type HostileCase } from '../helpers/hostileCorpus.js';
import { mulberry32 } from '../helpers/random.js';
import { sharedPath, skipUnlessShared } from '../helpers/shared.js';

const skip = skipUnlessShared('models/stories260K/hf') || skipUnlessShared('models/stories260K/llama2c');

/** A user error: an LmSteerError with one short line of message and no quoted bytes it must not show. */
function assertUserError(e: unknown, c: Pick<HostileCase, 'name' | 'message' | 'never'>): void {
  assert.ok(e instanceof LmSteerError, `${c.name}: expected an LmSteerError, got ${(e as Error)?.stack ?? e}`);
  assert.ok(!e.message.includes('\n'), `${c.name}: message spans lines: ${JSON.stringify(e.message)}`);
  assert.ok(e.message.length < 400, `${c.name}: message too long (${e.message.length})`);
  if (c.message) assert.match(e.message, c.message, c.name);
  for (const s of c.never ?? []) assert.ok(!e.message.includes(s), `${c.name}: message shows ${JSON.stringify(s)}`);
}

describe('hostile corpus', { skip }, () => {
  let root: string;
  let cases: HostileCase[];
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'lmsteer-hostile-'));
    cases = hostileCases(root);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('every case fails as a user error, or works, as the issue requires', async () => {
    const items = new Set<number>();
    for (const c of cases) {
      items.add(c.item);
      let result: unknown;
      let error: unknown;
      try {
        result = await c.run();
      } catch (e) {
        error = e;
      }
      if (c.expect === 'ok') assert.equal(error, undefined, `${c.name}: ${(error as Error)?.stack}`);
      else {
        assert.ok(error !== undefined, `${c.name}: was accepted`);
        assertUserError(error, c);
      }
      (result as { close?: () => void } | undefined)?.close?.();
    }
    for (const item of [2, 4, 5, 6, 7, 8, 9, 10, 12]) assert.ok(items.has(item), `no case for item ${item}`);
  });

  test('through the CLI: exit 2, one "lmsteer:" line (+ hint), no stack trace', async () => {
    const env = { LMSTEER_CACHE: join(root, 'cache') };
    for (const c of cases.filter((x) => x.cli)) {
      const r = await runCli(c.cli!, { env });
      assert.equal(r.code, 2, `${c.name}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, /^lmsteer: /, c.name);
      assert.ok(!/\n\s+at /.test(r.stderr), `${c.name}: stack trace\n${r.stderr}`);
      assert.ok(r.stderr.trim().split('\n').length <= 2, `${c.name}: more than message + hint\n${r.stderr}`);
    }
  });
});

/** `n` copies of `bytes`, each with a few bytes replaced (seeded): in `[from, to)`. */
function* mutations(bytes: Uint8Array, seed: number, n: number, from = 0, to = bytes.length): Generator<Uint8Array> {
  const rand = mulberry32(seed);
  for (let i = 0; i < n; i++) {
    const m = Uint8Array.from(bytes);
    const k = 1 + Math.floor(rand() * 4);
    for (let j = 0; j < k; j++) {
      const at = from + Math.floor(rand() * (to - from));
      const r = rand();
      // bytes that matter most to parsers: extremes, digits, JSON punctuation
      m[at] = r < 0.25 ? 0xff : r < 0.4 ? 0 : r < 0.55 ? 0x39 : r < 0.7 ? 0x22 : Math.floor(rand() * 256);
    }
    yield m;
  }
}

/** Run `fn`: it may work or throw an LmSteerError, nothing else. */
function userErrorOrOk(name: string, fn: () => unknown): void {
  try {
    (fn() as { close?: () => void } | undefined)?.close?.();
  } catch (e) {
    assertUserError(e, { name });
  }
}

describe('mutation fuzz (seeded)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-fuzz-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('reference .pt', { skip: skipUnlessShared('steers/reference-format/stories260K-sample.pt') }, () => {
    const bytes = readFileSync(sharedPath('steers/reference-format/stories260K-sample.pt')!);
    let i = 0;
    for (const m of mutations(bytes, 1, 150)) userErrorOrOk(`pt mutation ${i++}`, () => loadTorchBytes(m, 'm.pt'));
  });

  test('safetensors header', { skip }, () => {
    const bytes = readFileSync(sharedPath('models/stories260K/hf/model.safetensors')!);
    const headerEnd = 8 + Number(Buffer.from(bytes).readBigUInt64LE(0));
    let i = 0;
    for (const m of mutations(bytes, 2, 150, 0, headerEnd)) {
      const p = join(dir, 'm.safetensors');
      writeFileSync(p, m);
      userErrorOrOk(`safetensors mutation ${i++}`, () => openSafetensors(p, { requireFinite: true }));
    }
  });

  test('llama2.c header and tokenizer.bin', { skip }, () => {
    const model = readFileSync(sharedPath('models/stories260K/llama2c/model.bin')!);
    let i = 0;
    for (const m of mutations(model, 3, 100, 0, 40)) {
      const p = join(dir, 'm.bin');
      writeFileSync(p, m);
      userErrorOrOk(`llama2.c mutation ${i++}`, () => openLlama2c(p));
    }
    const tok = readFileSync(sharedPath('models/stories260K/llama2c/tokenizer.bin')!);
    for (const m of mutations(tok, 4, 150))
      userErrorOrOk(`tokenizer.bin mutation ${i++}`, () => parseLlama2cTokenizer(m, 't.bin'));
  });

  test('request bodies', () => {
    const body = Buffer.from(
      JSON.stringify({
        prompt: 'Once',
        max_tokens: 4,
        steer: { a: 1 },
        messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }] }],
      }),
    );
    let i = 0;
    for (const m of mutations(body, 5, 300))
      userErrorOrOk(`body mutation ${i++}`, () => parseJsonBody(Buffer.from(m).toString('utf8')));
  });
});
