import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensors, writeSafetensors } from '../../src/formats/safetensors.js';
import { MapWeightStore } from '../../src/formats/weights.js';
import { parseDecoderConfig } from '../../src/models/registry.js';
import { weightsKey } from '../../src/runtime/session.js';
import { tinyCheckpoint } from '../helpers/tinyModels.js';

const tiny = tinyCheckpoint('llama', { layers: 1 });
const cfg = parseDecoderConfig(tiny.config, 'tiny');

function tensors(): Record<string, { dtype: 'float32'; shape: number[]; data: Float32Array }> {
  const out: Record<string, { dtype: 'float32'; shape: number[]; data: Float32Array }> = {};
  for (const n of tiny.weights.names()) out[n] = tiny.weights.get(n);
  return out;
}

function keyOf(path: string): string {
  const f = openSafetensors(path);
  try {
    return weightsKey(cfg, f);
  } finally {
    f.close();
  }
}

test('a safetensors file is keyed by its identity: stable when unchanged, new for a new mtime or header', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-key-'));
  try {
    const p = join(dir, 'model.safetensors');
    writeSafetensors(p, tensors(), { metadata: { note: 'aaaa' } });
    const t = new Date('2026-01-01T00:00:00Z');
    utimesSync(p, t, t);
    const k1 = keyOf(p);
    assert.equal(keyOf(p), k1, 'reopening an unchanged file gives the same key');

    const later = new Date('2026-01-02T00:00:00Z');
    utimesSync(p, later, later);
    const k2 = keyOf(p);
    assert.notEqual(k2, k1, 'same bytes, new mtime → new key');

    // Rewrite one header byte in place (same size, same inode) and put the mtime back: the header hash tells.
    const size = statSync(p).size;
    const fd = openSync(p, 'r+');
    const at = 8 + JSON.stringify({ __metadata__: { note: 'aaaa' } }).indexOf('aaaa') + 1;
    writeSync(fd, Buffer.from('b'), 0, 1, at);
    closeSync(fd);
    utimesSync(p, later, later);
    assert.equal(statSync(p).size, size);
    const f = openSafetensors(p);
    assert.equal(f.metadata.note, 'abaa', 'the edit landed in the header');
    f.close();
    assert.notEqual(keyOf(p), k2, 'modified header, same size and mtime → new key');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the key includes the build options and the config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-key-'));
  try {
    const p = join(dir, 'model.safetensors');
    writeSafetensors(p, tensors());
    const f = openSafetensors(p);
    const fp32 = weightsKey(cfg, f);
    assert.equal(weightsKey(cfg, f, { dtype: 'fp32' }), fp32);
    const q8 = weightsKey(cfg, f, { dtype: 'q8' });
    const q4 = weightsKey(cfg, f, { dtype: 'q4' });
    assert.equal(new Set([fp32, q8, q4]).size, 3);
    assert.notEqual(weightsKey({ ...cfg, normEps: cfg.normEps * 2 }, f), fp32);
    f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a hub blob is keyed by its content name, not by the snapshot path or mtime', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-key-'));
  try {
    const blobs = join(dir, 'models--o--m', 'blobs');
    mkdirSync(blobs, { recursive: true });
    const blob = join(blobs, 'ab'.repeat(32));
    writeSafetensors(blob, tensors());
    const snaps = ['c1', 'c2'].map((c) => {
      const s = join(dir, 'models--o--m', 'snapshots', c);
      mkdirSync(s, { recursive: true });
      symlinkSync(blob, join(s, 'model.safetensors'));
      return join(s, 'model.safetensors');
    });
    const k = keyOf(snaps[0]);
    assert.equal(keyOf(snaps[1]), k, 'two snapshots of one blob share the built graph');
    const t = new Date('2026-03-01T00:00:00Z');
    utimesSync(blob, t, t);
    assert.equal(keyOf(snaps[0]), k, 'a content-addressed blob ignores its mtime');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an in-memory store (no identity) is keyed by its bytes', () => {
  const a = tinyCheckpoint('llama', { layers: 1 }).weights;
  const map = new Map(a.names().map((n) => [n, { ...a.get(n), data: Float32Array.from(a.get(n).data) }]));
  const b = new MapWeightStore(map);
  assert.equal(weightsKey(cfg, a), weightsKey(cfg, b));
  map.get('model.norm.weight')!.data[0] += 1e-3;
  assert.notEqual(weightsKey(cfg, a), weightsKey(cfg, b));
});
