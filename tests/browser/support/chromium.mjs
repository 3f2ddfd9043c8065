// Debian's Chromium, driven by playwright-core (which never downloads a browser).
//
// `make test-browser` installs the chromium package when it is missing and it
// may (root with apt-get); here a missing browser is an error, never a skip.

import { accessSync, constants } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { REPO } from '../../js/support/livebase.mjs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SCREENSHOTS = join(REPO, 'build', 'screenshots');

// Headless, and nothing that reaches for the network on its own (this machine's
// network is closed: background fetches would fail, many at a time).
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

/** A headless Chromium with a new, empty profile (playwright-core makes a temporary one per launch). */
export async function launchChromium() {
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(
      `no Chromium at ${CHROMIUM}: run \`make test-browser\` (as root it installs Debian's chromium), ` +
        'or apt-get install chromium, or set CHROMIUM=/path/to/chromium',
    );
  }
  await mkdir(SCREENSHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

/** Save a full-page screenshot as build/screenshots/<name>.png; answers its path. */
export async function screenshot(page, name) {
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
