// Headless Chromium for the JS tests and the benchmark (playwright-core driving the
// system's Chromium; CHROMIUM overrides /usr/bin/chromium), with a fresh profile.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'orgtracking-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    context,
    async page() {
      const page = await context.newPage();
      page.on('pageerror', (e) => { page.errors.push(e); });
      page.errors = [];
      return page;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Polls `f` until it returns a truthy value or `ms` pass; returns the last value. */
export async function until(f, ms = 5000, every = 25) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, every));
  }
}
