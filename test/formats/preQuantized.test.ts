import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rejectPreQuantized } from '../../src/formats/preQuantized.js';
import { MapWeightStore } from '../../src/formats/weights.js';
import { parseWeightDType } from '../../src/graph/buildOptions.js';
import { tensor } from '../../src/util/tensor.js';

const store = (...names: string[]) => new MapWeightStore(new Map(names.map((n) => [n, tensor([1])])));

test('a GPTQ/AWQ checkpoint is refused naming the method and a quantized tensor; float ones pass', () => {
  assert.doesNotThrow(() =>
    rejectPreQuantized({ model_type: 'llama' }, store('model.layers.0.self_attn.q_proj.weight'), 'm'),
  );
  assert.throws(
    () =>
      rejectPreQuantized(
        { quantization_config: { quant_method: 'gptq', bits: 4 } },
        store('model.layers.0.self_attn.q_proj.qweight', 'model.layers.0.self_attn.q_proj.scales'),
        'TheBloke/x-GPTQ',
      ),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === 'UNSUPPORTED' &&
      /quant_method "gptq"/.test(e.message) &&
      /q_proj\.qweight/.test(e.message) &&
      /--dtype q8 or q4/.test(e.hint ?? ''),
  );
  assert.throws(() => rejectPreQuantized({}, store('model.layers.0.mlp.up_proj.qzeros'), 'awq'), /qzeros/);
});

test('--dtype accepts fp32, q8, q4 and names them otherwise', () => {
  assert.equal(parseWeightDType('q4'), 'q4');
  assert.throws(
    () => parseWeightDType('int4'),
    (e: Error & { code?: string; hint?: string }) => e.code === 'BAD_ARGUMENT' && /fp32, q8, q4/.test(e.hint ?? ''),
  );
});
