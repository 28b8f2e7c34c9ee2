import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertChromiumInstalled, launchChromium } from './chromium.js';
import { assertSampleBuilt, ROOT, startSampleApp, type SampleApp } from './sample-app.js';

/**
 * Where the screenshots go: a temporary directory, removed afterwards, so that a
 * test run changes no tracked file. `npm run screenshots` sets SCREENSHOTS_DIR
 * to docs/screenshots (vitest.screenshots.config.ts) to refresh the README's images.
 */
const SCREENSHOTS_DIR = process.env.SCREENSHOTS_DIR ? resolve(ROOT, process.env.SCREENSHOTS_DIR) : undefined;
const SCREENSHOTS = SCREENSHOTS_DIR ?? mkdtempSync(join(tmpdir(), 'nestjs-duo-screenshots-'));
/** Short, so the test can wait it out; long enough that a page opened right after Duo is still fresh. */
const STEP_UP_SECONDS = 4;

let browser: Browser;

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 }, locale: 'en-US' });
  return { context, page: await context.newPage() };
}

/** /api/me's answer: the user and second factor (200), or the module's error body (401). */
interface ApiMeBody {
  error?: string;
  location?: string;
  username?: string;
  secondFactor?: { passed: boolean; at?: string; factor?: string };
  failOpen?: { reason: string } | null;
}

/** GET /api/me as an API client (Accept: application/json) with the browser's cookies. */
async function apiMe(context: BrowserContext, app: SampleApp): Promise<{ status: number; body: ApiMeBody }> {
  const response = await context.request.get(`${app.baseUrl}/api/me`, { headers: { accept: 'application/json' }, maxRedirects: 0 });
  return { status: response.status(), body: (await response.json()) as ApiMeBody };
}

async function heading(page: Page): Promise<string> {
  return ((await page.locator('h1').first().textContent()) ?? '').trim();
}

function isPrompt(app: SampleApp, url: string): boolean {
  return url.startsWith(`${app.emulatorUrl}/oauth/v1/authorize?`);
}

/** The claims of the request JWT in Duo's authorize URL (read, not verified: the emulator verifies it). */
function authorizeClaims(url: string): Record<string, unknown> {
  const jwt = new URL(url).searchParams.get('request') ?? '';
  return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Opens /account signed out, passes the login form, and stops at Duo's (the emulator's) prompt. */
async function signInToPrompt(page: Page, app: SampleApp, username: string, password: string, shotName?: string): Promise<void> {
  await page.goto(`${app.baseUrl}/account`);
  expect(page.url()).toBe(`${app.baseUrl}/login?returnTo=%2Faccount`);
  expect(await heading(page)).toBe('Sign in');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  if (shotName) await screenshot(page, shotName);
  await Promise.all([page.waitForURL((url) => isPrompt(app, url.href)), page.getByRole('button', { name: 'Sign in' }).click()]);
  expect(await heading(page)).toBe('Approve this login?');
  expect(await page.locator('dd').first().textContent()).toBe(username);
}

async function approve(page: Page, app: SampleApp, path: string): Promise<void> {
  await Promise.all([page.waitForURL(`${app.baseUrl}${path}`), page.getByRole('button', { name: 'Approve' }).click()]);
}

beforeAll(async () => {
  // Fail fast with what to do: install Chromium, or build before testing.
  assertChromiumInstalled();
  assertSampleBuilt();
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  if (!SCREENSHOTS_DIR) rmSync(SCREENSHOTS, { recursive: true, force: true });
});

describe('the sample app in Chromium, with the emulator in prompt mode', () => {
  let app: SampleApp;

  beforeAll(async () => {
    app = await startSampleApp({ SAMPLE_STEP_UP_SECONDS: String(STEP_UP_SECONDS) });
  });

  afterAll(async () => {
    await app?.stop();
  });

  it('sends a signed-in user to the prompt, and after Approve shows the account with the verified factor; /api/me turns from 401 to 200', async () => {
    const { context, page } = await newPage();
    const before = await apiMe(context, app);
    expect(before).toMatchObject({ status: 401, body: { error: 'primary_auth_required' } });

    await signInToPrompt(page, app, 'alice', 'wonderland', 'login');
    expect(authorizeClaims(page.url())).toMatchObject({ duo_uname: 'alice', redirect_uri: `${app.baseUrl}/duo/callback` });
    expect(await page.locator('body').textContent()).toContain('nestjs-duo sample');
    await screenshot(page, 'emulator-prompt');

    const pending = await apiMe(context, app);
    expect(pending.status).toBe(401);
    expect(pending.body.error).toBe('second_factor_required');
    expect(isPrompt(app, String(pending.body.location))).toBe(true);

    await approve(page, app, '/account');
    expect(await heading(page)).toBe('Your account');
    expect(await page.getByTestId('username').textContent()).toBe('alice');
    expect(await page.getByTestId('factor').textContent()).toBe('duo_push');
    expect(await page.locator('header .pill').textContent()).toBe('Duo passed');
    const verifiedAt = Number(await page.getByTestId('verified-at').getAttribute('data-ms'));
    expect(Date.now() - verifiedAt).toBeLessThan(30_000);
    await screenshot(page, 'account');

    const after = await apiMe(context, app);
    expect(after.status).toBe(200);
    expect(after.body).toMatchObject({ username: 'alice', secondFactor: { passed: true, factor: 'duo_push' }, failOpen: null });
    expect(Date.parse(after.body.secondFactor?.at ?? '')).toBe(verifiedAt);

    await page.goto(`${app.baseUrl}/`);
    expect(await page.getByTestId('second-factor').textContent()).toContain('duo_push');
    await screenshot(page, 'home');
    await context.close();
  });

  it('the admin area is on a second Duo application: the account\'s second factor does not count there; Duo is asked with the admin client and prompt=login, and both stay passed', async () => {
    const { context, page } = await newPage();
    await signInToPrompt(page, app, 'alice', 'wonderland');
    const staffClient = new URL(page.url()).searchParams.get('client_id');
    await approve(page, app, '/account');

    await page.goto(`${app.baseUrl}/admin`);
    expect(isPrompt(app, page.url())).toBe(true);
    const adminClient = new URL(page.url()).searchParams.get('client_id');
    expect(adminClient).toBeTruthy();
    expect(adminClient).not.toBe(staffClient);
    // The admin area's factor rule (requireInteraction): Duo must ask, even a remembered device.
    expect(authorizeClaims(page.url())).toMatchObject({ duo_uname: 'alice', client_id: adminClient, prompt: 'login', redirect_uri: `${app.baseUrl}/duo/callback` });
    expect(await page.locator('body').textContent()).toContain('nestjs-duo sample admin');
    await screenshot(page, 'admin-prompt');

    await approve(page, app, '/admin');
    expect(await heading(page)).toBe('Admin area');
    expect(await page.getByTestId('admin-app').textContent()).toContain(adminClient!);
    expect(await page.getByTestId('admin-factor').textContent()).toBe('duo_push');
    await screenshot(page, 'admin');

    // Both markers live in the session: the account page opens without Duo, and so does the admin area again.
    await page.goto(`${app.baseUrl}/account`);
    expect(page.url()).toBe(`${app.baseUrl}/account`);
    expect(await heading(page)).toBe('Your account');
    await page.goto(`${app.baseUrl}/admin`);
    expect(page.url()).toBe(`${app.baseUrl}/admin`);
    expect(app.output()).toMatch(/second factor passed application=admin user="alice"/);
    await context.close();
  });

  it(`asks Duo again (max_age=${STEP_UP_SECONDS}) on the step-up page once the second factor is older than ${STEP_UP_SECONDS} s`, async () => {
    const { context, page } = await newPage();
    await signInToPrompt(page, app, 'alice', 'wonderland');
    await approve(page, app, '/account');
    const first = Number(await page.getByTestId('verified-at').getAttribute('data-ms'));

    // Fresh enough: the step-up page opens without Duo.
    await page.goto(`${app.baseUrl}/sensitive`);
    expect(Date.now() - first, 'the test was too slow to see a fresh second factor').toBeLessThan(STEP_UP_SECONDS * 1000);
    expect(page.url()).toBe(`${app.baseUrl}/sensitive`);
    expect(await heading(page)).toBe('Sensitive page');

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, first + STEP_UP_SECONDS * 1000 + 300 - Date.now())));
    // Too old for the step-up page, still good for the account page.
    await page.goto(`${app.baseUrl}/account`);
    expect(page.url()).toBe(`${app.baseUrl}/account`);
    await page.goto(`${app.baseUrl}/sensitive`);
    expect(isPrompt(app, page.url())).toBe(true);
    expect(authorizeClaims(page.url())).toMatchObject({ duo_uname: 'alice', max_age: STEP_UP_SECONDS });

    await approve(page, app, '/sensitive');
    expect(await heading(page)).toBe('Sensitive page');
    const second = Number(await page.getByTestId('verified-at').getAttribute('data-ms'));
    // Whole seconds: the marker's time comes from Duo's auth_time when that is older than the callback.
    expect(second).toBeGreaterThanOrEqual(first + STEP_UP_SECONDS * 1000);
    expect(await page.getByTestId('step-up').textContent()).toContain('Your second factor was passed');
    await screenshot(page, 'sensitive');
    await context.close();
  });

  it("shows the module's error page after Deny, and the session stays without a second factor", async () => {
    const { context, page } = await newPage();
    await signInToPrompt(page, app, 'bob', 'can-we-fix-it');
    const [callback] = await Promise.all([
      page.waitForResponse((response) => response.url().startsWith(`${app.baseUrl}/duo/callback?`)),
      page.getByRole('button', { name: 'Deny' }).click(),
    ]);
    await page.waitForLoadState();
    expect(callback.status()).toBe(401);
    expect(await heading(page)).toBe('Duo denied the sign-in');
    expect(await page.locator('code').textContent()).toBe('access_denied');
    await screenshot(page, 'denied');

    const me = await apiMe(context, app);
    expect(me).toMatchObject({ status: 401, body: { error: 'second_factor_required' } });
    await page.goto(`${app.baseUrl}/`);
    expect(await page.locator('header .pill').textContent()).toBe('Duo not yet passed');
    await context.close();
  });

  it('refuses a wrong password and stays on the login form', async () => {
    const { context, page } = await newPage();
    await page.goto(`${app.baseUrl}/login`);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('not-her-password');
    const [response] = await Promise.all([page.waitForResponse(`${app.baseUrl}/login`), page.getByRole('button', { name: 'Sign in' }).click()]);
    expect(response.status()).toBe(401);
    expect(await page.getByRole('alert').textContent()).toBe('Wrong username or password.');
    expect((await apiMe(context, app)).body.error).toBe('primary_auth_required');
    await context.close();
  });

  it('signs out: the session is destroyed on the server, so its old cookie no longer works', async () => {
    const { context, page } = await newPage();
    await signInToPrompt(page, app, 'alice', 'wonderland');
    await approve(page, app, '/account');
    const [cookie] = (await context.cookies(app.baseUrl)).filter((item) => item.name === 'sample.sid');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
    expect((await apiMe(context, app)).status).toBe(200);

    await Promise.all([page.waitForURL(`${app.baseUrl}/?signedOut=1`), page.getByRole('button', { name: 'Sign out' }).click()]);
    expect(await page.getByRole('status').textContent()).toContain('You have signed out');
    expect(await page.locator('header .who').textContent()).toContain('Sign in');
    await screenshot(page, 'home-signed-out');

    expect((await apiMe(context, app)).body.error).toBe('primary_auth_required');
    const replay = await fetch(`${app.baseUrl}/api/me`, { headers: { accept: 'application/json', cookie: `${cookie!.name}=${cookie!.value}` } });
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { error: string }).error).toBe('primary_auth_required');
    await page.goto(`${app.baseUrl}/account`);
    expect(page.url()).toBe(`${app.baseUrl}/login?returnTo=%2Faccount`);
    await context.close();
  });
});

describe('the sample app with Duo down since it started, and DUO_FAIL_MODE=open', () => {
  let app: SampleApp;

  beforeAll(async () => {
    app = await startSampleApp({ DUO_FAIL_MODE: 'open', SAMPLE_EMULATOR_DOWN: '1' });
  });

  afterAll(async () => {
    await app?.stop();
  });

  // Fail-open needs a health check that passed in this process first (src/duo-health.ts;
  // the bootstrap warning says so). The sample's emulator is down from the start here.
  it('refuses the account page and the step-up page (503 "Duo is unavailable"): no bypass before Duo has once passed a health check', async () => {
    const { context, page } = await newPage();
    await page.goto(`${app.baseUrl}/login?returnTo=%2Faccount`);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('wonderland');
    const [account] = await Promise.all([
      page.waitForResponse((response) => new URL(response.url()).pathname === '/account'),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    await page.waitForLoadState();
    expect(account.status()).toBe(503);
    expect(await heading(page)).toBe('Duo is unavailable');
    await screenshot(page, 'duo-unavailable');
    expect(await apiMe(context, app)).toMatchObject({ status: 503, body: { error: 'duo_unavailable' } });

    const sensitive = await page.goto(`${app.baseUrl}/sensitive`);
    expect(sensitive?.status()).toBe(503);
    expect(await heading(page)).toBe('Duo is unavailable');
    await context.close();
  });
});
