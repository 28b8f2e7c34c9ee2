/**
 * The emulator's prompt page (mode prompt) says why it asks again when the
 * login asks for a fresh authentication: max_age in the request JWT (a step-up
 * route's `maxAge`) or prompt=login.
 */
import { describe, expect, it } from 'vitest';
import { client, emulator, useEmulator } from './support.js';

useEmulator();

async function promptPage(extras: { maxAge?: number; promptLogin?: boolean }): Promise<string> {
  emulator.setMode('prompt');
  const url = await client().createAuthUrl('alice', 'S'.repeat(40), { nonce: 'n'.repeat(32), ...extras });
  const res = await fetch(url, { redirect: 'manual' });
  expect(res.status).toBe(200);
  return res.text();
}

/** The text of the page's reason paragraph, or undefined when it has none. */
function reasonOf(page: string): string | undefined {
  return /<p class="reason">([^<]*)<\/p>/.exec(page)?.[1];
}

describe('the prompt page of a step-up', () => {
  it.each([
    [120, 'This login needs a second factor from the last 2 minutes (max_age&#61;120), so Duo asks again even if you approved one earlier.'],
    [60, 'This login needs a second factor from the last minute (max_age&#61;60), so Duo asks again even if you approved one earlier.'],
    [90, 'This login needs a second factor from the last 90 seconds (max_age&#61;90), so Duo asks again even if you approved one earlier.'],
    [7200, 'This login needs a second factor from the last 2 hours (max_age&#61;7200), so Duo asks again even if you approved one earlier.'],
    [0, 'This login needs a fresh second factor (max_age&#61;0), so Duo asks again even if you approved one earlier.'],
  ])('max_age %i: says how recent the second factor must be', async (maxAge, reason) => {
    const page = await promptPage({ maxAge });
    expect(reasonOf(page)).toBe(reason);
    // The reason comes before the decision form, where the user reads before choosing.
    expect(page.indexOf('class="reason"')).toBeLessThan(page.indexOf('<form'));
  });

  it('prompt=login: says that a fresh second factor is asked for', async () => {
    expect(reasonOf(await promptPage({ promptLogin: true }))).toBe(
      'This login needs a fresh second factor (prompt&#61;login), so Duo asks again even if you approved one earlier.',
    );
  });

  it('max_age and prompt=login: names both', async () => {
    expect(reasonOf(await promptPage({ maxAge: 300, promptLogin: true }))).toBe(
      'This login needs a second factor from the last 5 minutes (max_age&#61;300, prompt&#61;login), so Duo asks again even if you approved one earlier.',
    );
  });

  it('a first login (neither): no reason on the page', async () => {
    const page = await promptPage({});
    expect(reasonOf(page)).toBeUndefined();
    expect(page).not.toContain('asks again');
    expect(page).toMatch(/<button[^>]*value="approve"[^>]*>Approve<\/button>/);
  });
});
