import { accessSync, constants } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium; CHROMIUM_PATH points elsewhere. Playwright never downloads a browser here. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Throws a message that says how to install Chromium when it is missing. */
export function assertChromiumInstalled(): void {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
  } catch {
    throw new Error(
      [
        `Chromium was not found at ${CHROMIUM_PATH}.`,
        "The browser test drives Debian's Chromium (it never downloads a browser). Install it with:",
        '',
        '    sudo apt-get update && sudo apt-get install -y chromium',
        '',
        'or set CHROMIUM_PATH to an installed Chromium or Chrome binary.',
      ].join('\n'),
    );
  }
}

export function launchChromium(): Promise<Browser> {
  assertChromiumInstalled();
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
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
  });
}
