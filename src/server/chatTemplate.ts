/**
 * Chat messages → prompt text, as Hugging Face's `apply_chat_template` does: the model's Jinja template
 * (tokenizer_config.json `chat_template`, or a chat_template.jinja file beside it) rendered with @huggingface/jinja
 * with `messages`, `bos_token`, `eos_token` and `add_generation_prompt: true`. Like HF, the rendered text is
 * tokenized without adding special tokens again (the template writes BOS itself when the model wants one).
 *
 * Models without a template (base models such as stories260K or gpt2) get this documented fallback, tokenized
 * with the tokenizer's usual special tokens (so BOS where the model adds one):
 *
 *     <system or developer message>\n\n        (each one, if any)
 *     User: <content>\n
 *     Assistant: <content>\n
 *     …
 *     Assistant:
 *
 * and generation stops at "\nUser:" (on top of any `stop` of the request), so a base model does not write the
 * next user turn itself.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { LmSteerError } from '../util/errors.js';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface RenderedChat {
  text: string;
  /** Whether encoding should add the tokenizer's special tokens (the fallback) or not (a model template). */
  addSpecialTokens: boolean;
  /** Stop strings implied by the format. */
  stop: string[];
}

export interface ChatTemplate {
  /** 'model': the model's own template; 'fallback': the format above. */
  kind: 'model' | 'fallback';
  render(messages: ChatMessage[]): RenderedChat;
}

export const FALLBACK_STOP = '\nUser:';

export const fallbackTemplate: ChatTemplate = {
  kind: 'fallback',
  render(messages) {
    let text = '';
    for (const m of messages) {
      if (m.role === 'system' || m.role === 'developer') text += `${m.content}\n\n`;
      else if (m.role === 'assistant') text += `Assistant: ${m.content}\n`;
      else text += `User: ${m.content}\n`;
    }
    return { text: `${text}Assistant:`, addSpecialTokens: true, stop: [FALLBACK_STOP] };
  },
};

/** A special token in tokenizer_config.json is a string or an AddedToken object {content, …}. */
function tokenText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string')
    return (v as { content: string }).content;
  return '';
}

/** The template source in a model folder, or undefined when it has none. */
function findTemplate(dir: string): { source: string; config: Record<string, unknown>; where: string } | undefined {
  const cfgPath = join(dir, 'tokenizer_config.json');
  let config: Record<string, unknown> = {};
  if (existsSync(cfgPath)) {
    try {
      config = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new LmSteerError(
        'BAD_FILE',
        `${cfgPath} is not valid JSON: ${(e as Error).message}`,
        'fix or remove the file',
      );
    }
  }
  const jinjaPath = join(dir, 'chat_template.jinja');
  if (existsSync(jinjaPath)) return { source: readFileSync(jinjaPath, 'utf8'), config, where: jinjaPath };
  const t = config.chat_template;
  if (typeof t === 'string' && t.trim()) return { source: t, config, where: cfgPath };
  // Older files keep a list of named templates; "default" is the chat one.
  if (Array.isArray(t)) {
    const named = t.find((x) => (x as { name?: string })?.name === 'default') ?? t[0];
    const src = (named as { template?: unknown } | undefined)?.template;
    if (typeof src === 'string') return { source: src, config, where: cfgPath };
  }
  return undefined;
}

/** The chat template of the model folder `dir` (undefined, e.g. a llama2.c file: the fallback). */
export function loadChatTemplate(dir: string | undefined): ChatTemplate {
  const found = dir ? findTemplate(dir) : undefined;
  if (!found) return fallbackTemplate;
  let template: Template;
  try {
    template = new Template(found.source);
  } catch (e) {
    throw new LmSteerError(
      'BAD_FILE',
      `the chat template in ${found.where} does not parse: ${(e as Error).message}`,
      'fix the template, or remove it to use the plain fallback format',
    );
  }
  const bos = tokenText(found.config.bos_token);
  const eos = tokenText(found.config.eos_token);
  return {
    kind: 'model',
    render(messages) {
      try {
        const text = template.render({ messages, bos_token: bos, eos_token: eos, add_generation_prompt: true });
        return { text, addSpecialTokens: false, stop: [] };
      } catch (e) {
        // Templates reject conversations they cannot format (raise_exception: "roles must alternate" …).
        throw new LmSteerError(
          'BAD_ARGUMENT',
          `the model's chat template refused these messages: ${(e as Error).message}`,
          'check the roles and their order',
        );
      }
    },
  };
}
