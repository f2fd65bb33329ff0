/**
 * Serving an ONNX export: the server runs it through the same batch engine as generate(), so a request
 * answers exactly the text generate() gives on the same export (same seed, same steer values).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyExport } from '../helpers/optimumExport.js';
import { loadModel } from '../../src/runtime/loadModel.js';
import { OnnxExportDecoder } from '../../src/runtime/onnxExportDecoder.js';
import { generate } from '../../src/runtime/generate.js';
import { startServer } from '../../src/server/server.js';
import { SteerSet } from '../../src/steer/steerSet.js';
import { makeSteer, postJson } from './fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'lmsteer-serve-export-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('a server over an ONNX export answers the same texts as generate() on the export, steered and not', async () => {
  const ex = writeTinyExport(join(root, 'model'), 'llama', { merged: true });
  const model = await loadModel(ex.dir, { cacheDir: join(root, 'cache'), threads: 1 });
  assert.ok(model.decoder instanceof OnnxExportDecoder);
  const steerDir = makeSteer(model, root, 'mood', 3);
  const steers = SteerSet.load(model, [steerDir]);
  const server = await startServer(model, steers, { port: 0 });
  try {
    for (const value of [0, 30]) {
      const body = { model: model.id, prompt: 'w1 w5 w9', max_tokens: 8, n: 3, seed: 7, steer: { mood: value } };
      const res = await postJson(`${server.url}/v1/completions`, body);
      assert.equal(res.status, 200, JSON.stringify(res.json));
      const { scale } = steers.resolve({ mood: value });
      const [want] = await generate(
        model.decoder,
        model.tokenizer,
        [{ prompt: 'w1 w5 w9', numSamples: 3, seed: 7, steerScale: scale }],
        { maxNewTokens: 8, steer: steers.directions },
      );
      assert.deepEqual(
        res.json.choices.map((c: { text: string }) => c.text),
        want!.samples.map((s) => s.text),
        `steer value ${value}`,
      );
    }
  } finally {
    await server.close();
    model.close();
  }
});
