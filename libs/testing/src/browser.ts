import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium, headless; see README for installing it. `args` are further command-line switches. */
export function launchBrowser(args: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
  });
}
export type { Browser, Page } from 'playwright-core';
