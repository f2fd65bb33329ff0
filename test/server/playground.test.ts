/**
 * The playground in a real browser (headless Debian chromium through playwright-core): sliders for every
 * steer slot, keyboard-operable; Generate streams two outputs side by side (A equals the API's own answer for
 * the same settings); evidence highlighting and the words a steer moves appear; every control has a label.
 * Saves test-artifacts/playground.png.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { postJson, serve, skip as skipShared } from './fixtures.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = skipShared || (existsSync(CHROMIUM) ? false : `needs ${CHROMIUM} (apt-get install chromium)`);

test(
  'playground: move a slider, generate side by side, see the evidence highlighting and the steer words',
  { skip, timeout: 120_000 },
  async () => {
    const f = await serve();
    const profile = mkdtempSync(join(tmpdir(), 'lmsteer-chromium-'));
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 1400 },
    });
    try {
      const page = ctx.pages()[0] ?? (await ctx.newPage());
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      await page.goto(f.url + '/');
      // one slider per settable slot, in both settings
      await page.waitForSelector('#slider-a-0');
      assert.equal(await page.locator('.sliders[data-set="a"] input[type=range]').count(), 3);
      assert.equal(await page.locator('.sliders[data-set="b"] input[type=range]').count(), 3);
      assert.equal(await page.locator('label[for="slider-a-0"]').textContent(), 'sentiment');

      // keyboard: ten steps of 0.1 to the right
      await page.focus('#slider-a-0');
      for (let i = 0; i < 10; i++) await page.keyboard.press('ArrowRight');
      assert.equal(await page.inputValue('#slider-a-0'), '1');
      assert.equal(
        await page.locator('.sliders[data-set="a"] .slider').first().locator('input[type=number]').inputValue(),
        '1.0',
      );

      await page.fill('#prompt', 'Once upon a time');
      await page.locator('summary', { hasText: 'Sampling settings' }).click();
      await page.fill('#max-tokens', '24');
      await page.fill('#seed', '4');
      await page.click('#generate');
      await page.waitForFunction(
        () =>
          /finish/.test(document.querySelector('#out-a .meta')?.textContent ?? '') &&
          /finish/.test(document.querySelector('#out-b .meta')?.textContent ?? ''),
        null,
        { timeout: 60_000 },
      );
      const textA = await page.locator('#out-a .gen').textContent();
      const textB = await page.locator('#out-b .gen').textContent();
      assert.ok(textA && textB, 'an output is empty');
      // A is exactly what the API gives for the same settings
      const api = await postJson(`${f.url}/v1/completions`, {
        prompt: 'Once upon a time',
        max_tokens: 24,
        seed: 4,
        temperature: 0.8,
        top_p: 1,
        top_k: 0,
        steer: { sentiment: 1, 'style.formal': 0, 'style.casual': 0 },
      });
      assert.equal(textA, api.json.choices[0].text);
      assert.match((await page.locator('#out-a .steer-echo').textContent()) ?? '', /sentiment \+1\.0/);
      assert.match((await page.locator('#out-b .steer-echo').textContent()) ?? '', /sentiment \+0\.0/);

      // evidence highlighting of both outputs (automatic after generating)
      await page.waitForSelector('#evidence .evidence .ev.pos, #evidence .evidence .ev.neg', { timeout: 30_000 });
      const highlighted = await page.locator('#evidence .evidence').first().locator('.ev').allTextContents();
      assert.equal(highlighted.join(''), ' Once upon a time' + textA);
      assert.equal(await page.locator('#evidence .evidence').count(), 2);

      // the words the steer moves
      await page.click('#show-dims');
      await page.waitForSelector('.dims-table', { timeout: 30_000 });
      assert.ok((await page.locator('.dims-table').count()) >= 1);

      // every form control has a label
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll('input, select, textarea, button')]
          .filter((el) => {
            const e = el as HTMLInputElement;
            if (e.type === 'hidden' || (e as HTMLElement).closest('[hidden]')) return false;
            const text = el.tagName === 'BUTTON' ? el.textContent?.trim() : '';
            return !(e.labels?.length || el.getAttribute('aria-label') || text);
          })
          .map((el) => el.outerHTML.slice(0, 80)),
      );
      assert.deepEqual(unlabelled, []);

      mkdirSync('test-artifacts', { recursive: true });
      await page.screenshot({ path: 'test-artifacts/playground.png', fullPage: true });
      assert.deepEqual(errors, []);
    } finally {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
      await f.close();
    }
  },
);
