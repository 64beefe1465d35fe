// Shared by the browser tests (tests/it/ui.rs runs each script with node): launch Debian's chromium
// through playwright-core with a fresh profile, fail loudly, and save screenshots when asked.
//
// Environment (set by tests/it/ui.rs):
//   PLAYWRIGHT_CORE  file URL of playwright-core's index.mjs (installed by scripts/test, no browser download)
//   CHROMIUM         the browser binary (/usr/bin/chromium)
//   BASE_URL         the daemon, e.g. http://127.0.0.1:40123
//   SHOTS            optional: a directory to save the README screenshots into
//   TOKEN            optional: the API token, for the sign-in test

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const { chromium } = await import(process.env.PLAYWRIGHT_CORE);

export const BASE = process.env.BASE_URL;
export const SHOTS = process.env.SHOTS || '';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function check(ok, message) {
  if (!ok) throw new Error('assertion failed: ' + message);
}

/** Runs `body(page, context)` in a fresh browser profile; exits non-zero with the reason on failure. */
export async function run(name, body, { viewport = { width: 1400, height: 900 } } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'scanbridge-ui-'));
  let context = null;
  const problems = [];
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport,
    });
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15000);
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => {
      // A violated Content-Security-Policy or a script error is a failure of the page; a 4xx answer
      // of the API is the page's to show (a refused matcher, a sign-in), not an error of its own.
      if (m.type() === 'error' && !/the server responded with a status of 4\d\d/.test(m.text())) problems.push('console error: ' + m.text());
    });
    await body(page, context);
    check(problems.length === 0, problems.join('\n'));
    console.log(`${name}: ok`);
  } catch (e) {
    console.error(`${name}: FAILED\n${e.stack || e}`);
    if (problems.length) console.error(problems.join('\n'));
    process.exitCode = 1;
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

/** Waits until `locator`'s text satisfies `pred` (a string to equal, a RegExp, or a function). */
export async function waitText(locator, pred, what, timeout = 15000) {
  const test = typeof pred === 'function' ? pred : pred instanceof RegExp ? (t) => pred.test(t) : (t) => t === pred;
  const end = Date.now() + timeout;
  let last = null;
  while (Date.now() < end) {
    last = await locator.textContent().catch(() => null);
    if (last !== null && test(last.trim())) return last.trim();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; last text: ${JSON.stringify(last)}`);
}

/** Replaces a textarea's text by typing it, as a person would (select all, then keystrokes). */
export async function typeInto(page, locator, text) {
  await locator.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await locator.pressSequentially(text, { delay: 2 });
}

/** Saves a screenshot of the whole page as SHOTS/name (when SHOTS is set). */
export async function shot(page, name) {
  if (!SHOTS) return;
  // Resize to the page's height instead of fullPage, which leaves frames (the email) blank.
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  const size = page.viewportSize();
  await page.setViewportSize({ width: size.width, height: Math.min(height, 2000) });
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(SHOTS, name) });
  await page.setViewportSize(size);
  console.log(`screenshot: ${path.join(SHOTS, name)}`);
}
