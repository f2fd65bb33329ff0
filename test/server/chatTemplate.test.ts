/** Chat messages → prompt text: the model's Jinja template (as HF's apply_chat_template) or the documented fallback. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FALLBACK_STOP, loadChatTemplate } from '../../src/server/chatTemplate.js';
import { LmSteerError } from '../../src/util/errors.js';

const messages = [
  { role: 'system', content: 'Be kind.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'A story?' },
];

function withConfig(config: object, fn: (dir: string) => void, jinja?: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'lmsteer-chat-'));
  try {
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    if (jinja !== undefined) writeFileSync(join(dir, 'chat_template.jinja'), jinja);
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('no template: the fallback format, with special tokens added at encoding and a stop at the next user turn', () => {
  withConfig({ bos_token: '<s>' }, (dir) => {
    const t = loadChatTemplate(dir);
    assert.equal(t.kind, 'fallback');
    const r = t.render(messages);
    assert.equal(r.text, 'Be kind.\n\nUser: Hi\nAssistant: Hello!\nUser: A story?\nAssistant:');
    assert.equal(r.addSpecialTokens, true);
    assert.deepEqual(r.stop, [FALLBACK_STOP]);
  });
  assert.equal(loadChatTemplate(undefined).kind, 'fallback');
});

test("the model's chat_template renders with bos/eos (string or AddedToken) and add_generation_prompt", () => {
  const tpl =
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
  withConfig({ chat_template: tpl, bos_token: { content: '<s>' }, eos_token: '</s>' }, (dir) => {
    const t = loadChatTemplate(dir);
    assert.equal(t.kind, 'model');
    const r = t.render(messages.slice(1, 2));
    assert.equal(r.text, '<s><|user|>Hi</s><|assistant|>');
    assert.equal(r.addSpecialTokens, false);
    assert.deepEqual(r.stop, []);
  });
  // a list of named templates: "default" is used; chat_template.jinja wins over the config
  withConfig(
    {
      chat_template: [
        { name: 'tool_use', template: 'T' },
        { name: 'default', template: 'D{{ messages|length }}' },
      ],
    },
    (dir) => {
      assert.equal(loadChatTemplate(dir).render(messages).text, 'D4');
    },
  );
  withConfig(
    { chat_template: 'config' },
    (dir) => assert.equal(loadChatTemplate(dir).render(messages).text, 'file'),
    'file',
  );
});

test('a template that raises refuses the conversation with BAD_ARGUMENT; a broken one is BAD_FILE', () => {
  const tpl = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok";
  withConfig({ chat_template: tpl }, (dir) => {
    assert.throws(
      () => loadChatTemplate(dir).render(messages),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_ARGUMENT' && /System role/.test(e.message),
    );
    assert.equal(loadChatTemplate(dir).render(messages.slice(1)).text, 'ok');
  });
  withConfig({ chat_template: '{% for %}' }, (dir) => {
    assert.throws(
      () => loadChatTemplate(dir),
      (e: unknown) => e instanceof LmSteerError && e.code === 'BAD_FILE',
    );
  });
});
