import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MODEL, loadModel, locateModelSpec } from '../../src/runtime/loadModel.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import {
  embeddedModelDir,
  PACKAGE_ROOT,
  PACKAGE_VERSION,
  SHIPPED_STEERS_DIR,
  shippedSteerDir,
} from '../../src/util/packageFiles.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLOSED = { offline: false, endpoint: 'http://127.0.0.1:9', retries: 0 }; // any hub request would fail

test('the package root and version are those of this checkout', () => {
  assert.equal(resolve(PACKAGE_ROOT), ROOT);
  assert.equal(
    PACKAGE_VERSION,
    (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
  );
});

test('stories260K (any case, no @revision) names the embedded copy; other names do not', () => {
  const dir = join(ROOT, 'assets', 'stories260K');
  assert.equal(embeddedModelDir(DEFAULT_MODEL), dir);
  assert.equal(embeddedModelDir('STORIES260k'), dir);
  for (const spec of ['stories260K@main', 'karpathy/tinyllamas', 'gpt2', 'stories15M', '']) {
    assert.equal(embeddedModelDir(spec), undefined, spec);
  }
});

test('the embedded files are the ones SOURCE.md lists (sha256), with their licence', () => {
  const dir = embeddedModelDir(DEFAULT_MODEL)!;
  const source = readFileSync(join(dir, 'SOURCE.md'), 'utf8');
  for (const f of ['model.bin', 'tokenizer.bin']) {
    const sha = createHash('sha256')
      .update(readFileSync(join(dir, f)))
      .digest('hex');
    assert.match(source, new RegExp('`' + f.replace('.', '\\.') + '` \\| [\\d,]+ \\| `' + sha + '`'), f);
  }
  assert.match(readFileSync(join(dir, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) 2023 Andrej\n/);
});

test('the default model resolves to the embedded copy without the hub', async () => {
  const local = await locateModelSpec(DEFAULT_MODEL, CLOSED);
  assert.equal(local.kind, 'llama2c');
  assert.equal(local.kind === 'llama2c' && local.modelPath, join(embeddedModelDir(DEFAULT_MODEL)!, 'model.bin'));
  // the hub's copy is still a hub id: with the hub unreachable and no cache it fails
  await assert.rejects(locateModelSpec('stories260K@main', { ...CLOSED, cacheDir: join(ROOT, '.no-such-cache') }));
});

test('shipped steers are found by bare name only', () => {
  assert.equal(shippedSteerDir('stories260K-sentiment'), join(SHIPPED_STEERS_DIR, 'stories260K-sentiment'));
  for (const name of ['nope', '../steers/stories260K-sentiment', 'steers/stories260K-sentiment', '.', '..', '']) {
    assert.equal(shippedSteerDir(name), undefined, name);
  }
});

test('the shipped sentiment steer belongs to the embedded model (same output embeddings)', async () => {
  const model = await loadModel(DEFAULT_MODEL, { cacheDir: false, threads: 1, hub: CLOSED });
  try {
    const steers = SteerSet.load(model, [shippedSteerDir('stories260K-sentiment')!]); // refused on a mismatch
    assert.equal(steers.entries[0]!.steer.config.baseModel.embeddingFingerprint, model.fingerprint());
  } finally {
    model.close();
  }
});
