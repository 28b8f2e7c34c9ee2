/**
 * The page browsers get for an error: the default page (a way home, no
 * favicon request, every string replaceable, everything escaped), the app's own
 * layout through `errorPage.render` (a failing hook falls back to the default
 * page and is logged once), the option's checks at startup, and API clients'
 * JSON, unchanged.
 */
import type supertest from 'supertest';
import { beforeEach, describe, expect, it } from 'vitest';
import type { DuoErrorPageContext, DuoModuleOptions } from '../../src/index.js';
import type { DuoEmulator } from '../../src/testing/index.js';
import { PLATFORMS, loginWithDuo, pathOf, perTestApps, type TestApp } from './fixtures.js';

type Agent = ReturnType<TestApp['agent']>;

/** Every URL the page would make the browser load or offer: href, src, srcset, action, CSS url() and @import. */
function resourceUrls(html: string): string[] {
  const attributes = [...html.matchAll(/\s(?:href|src|srcset|action|poster|data)\s*=\s*"([^"]*)"/gi)].map((match) => match[1]!);
  const css = [...html.matchAll(/url\(|@import/gi)].map((match) => match[0]);
  return [...attributes, ...css];
}

function expectPageHeaders(res: supertest.Response, status: number): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^text\/html; charset=utf-8/);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['referrer-policy']).toBe('no-referrer');
}

/** A login Duo denies (emulator mode deny): the callback's answer, as a browser gets it. */
async function deniedLogin(emulator: DuoEmulator, agent: Agent, path = '/account'): Promise<supertest.Response> {
  emulator.setMode('deny');
  const { callback } = await loginWithDuo(emulator, agent, 'alice', path);
  return callback;
}

describe.each(PLATFORMS)('error pages on %s', (adapter) => {
  const suite = perTestApps(adapter);
  let emulator: DuoEmulator;
  beforeEach(() => {
    emulator = suite.emulator();
  });
  const app = (duo: Partial<DuoModuleOptions> = {}): Promise<TestApp> => suite.app({ duo });
  const renderFailures = (t: TestApp): string[] => t.logger.lines.filter((line) => line.includes('errorPage.render'));

  it('the default page: a way home besides "Start again", an empty icon instead of /favicon.ico, nothing else to load', async () => {
    const t = await app();
    const res = await deniedLogin(emulator, t.agent());
    expectPageHeaders(res, 401);
    const html = res.text;
    expect(html).toContain('<html lang="en">');
    expect(html).toContain('<title>Duo denied the sign-in</title>');
    expect(html).toContain('<a href="/account">Start again</a>');
    expect(html).toContain('<a href="/">Home</a>');
    expect(html).toContain('<link rel="icon" href="data:,">');
    // The icon, the page that asked for Duo and home: no stylesheet, script, image or font to fetch.
    expect(resourceUrls(html)).toEqual(['data:,', '/account', '/']);
    expect(html).not.toMatch(/<script|<img|<iframe|<object|<embed|<link(?! rel="icon" href="data:,">)/i);
    expect(html).toContain('Error code: <code>access_denied</code> (HTTP 401)');
  });

  it('one link when "start again" would lead home anyway: an unknown state', async () => {
    const t = await app({ errorPage: { homePath: '/' } });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const res = await agent.get(`/duo/callback?duo_code=${'c'.repeat(30)}&state=${'s'.repeat(43)}`).set('Accept', 'text/html');
    expectPageHeaders(res, 400);
    expect(res.text).toContain('<title>This sign-in link is no longer valid</title>');
    expect(resourceUrls(res.text)).toEqual(['data:,', '/']);
    expect(res.text).toContain('<a href="/">Start again</a>');
    expect(res.text).not.toContain('Home');
  });

  it('texts and homePath replace the default strings, per code, and are escaped', async () => {
    const t = await app({
      errorPage: {
        homePath: '/dashboard?tab=1&view=all',
        texts: {
          lang: 'de-CH',
          titles: { access_denied: 'Duo hat die Anmeldung <abgelehnt>' },
          messages: { access_denied: 'Bitte "erneut" versuchen & melden.' },
          startAgain: 'Nochmals',
          home: 'Zur Startseite',
          errorCode: 'Fehlercode',
        },
      },
    });
    const res = await deniedLogin(emulator, t.agent());
    expectPageHeaders(res, 401);
    const html = res.text;
    expect(html).toContain('<html lang="de-CH">');
    expect(html).toContain('<title>Duo hat die Anmeldung &lt;abgelehnt&gt;</title>');
    expect(html).toContain('<h1>Duo hat die Anmeldung &lt;abgelehnt&gt;</h1>');
    expect(html).toContain('<p>Bitte &quot;erneut&quot; versuchen &amp; melden.</p>');
    expect(html).toContain('<a href="/account">Nochmals</a>');
    expect(html).toContain('<a href="/dashboard?tab&#61;1&amp;view&#61;all">Zur Startseite</a>');
    expect(html).toContain('Fehlercode: <code>access_denied</code>');
    expect(html).not.toContain('Duo denied the sign-in');
    expect(html).not.toContain('<abgelehnt>');

    // A code without a title of its own keeps the default one; the unknown state has no message of its own.
    const other = await t.agent().get(`/duo/callback?duo_code=${'c'.repeat(30)}&state=${'s'.repeat(43)}`).set('Accept', 'text/html');
    expect(other.text).toContain('<title>This sign-in link is no longer valid</title>');
    expect(other.text).toContain('<html lang="de-CH">');
  });

  it('a 5xx code without a title of its own gets unavailableTitle (Duo refusing our credentials, 502)', async () => {
    const t = await app({ clientSecret: 'Z'.repeat(40), errorPage: { texts: { unavailableTitle: 'Anmeldung nicht verfügbar', fallbackTitle: 'Nicht bestanden' } } });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const res = await agent.get('/account').set('Accept', 'text/html');
    expectPageHeaders(res, 502);
    expect(res.text).toContain('<title>Anmeldung nicht verfügbar</title>');
    expect(res.text).toContain('<code>duo_invalid_client</code>');
    expect(res.text).not.toContain('Z'.repeat(40));
  });

  it('the render hook of a rate-limited Duo (503) gets retryAfterSeconds, and Retry-After is still sent', async () => {
    const seen: DuoErrorPageContext[] = [];
    const t = await app({
      healthCheckCacheSeconds: 0,
      errorPage: {
        render: (page) => {
          seen.push(page);
          return `<p>${page.code} ${String(page.retryAfterSeconds)}</p>`;
        },
      },
    });
    emulator.setFailure('rate_limited', { endpoints: ['health'], retryAfter: 30 });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const res = await agent.get('/account').set('Accept', 'text/html');
    expectPageHeaders(res, 503);
    expect(res.headers['retry-after']).toBe('30');
    expect(res.text).toBe('<p>duo_rate_limited 30</p>');
    expect(seen[0]).toMatchObject({ code: 'duo_rate_limited', status: 503, title: 'Duo is busy', retryPath: '/account', homePath: '/' });
  });

  it('the render hook renders a denied login in the app\'s layout, with the status and the module\'s headers', async () => {
    const seen: DuoErrorPageContext[] = [];
    const t = await app({
      errorPage: {
        homePath: '/home',
        // Async, as a template engine is: the answer waits for it on both platforms.
        render: async (page) => {
          seen.push(page);
          await new Promise((resolve) => setTimeout(resolve, 20));
          return `<!doctype html><html><body><nav>My app</nav><main data-code="${page.code}">${page.status} ${page.title} | ${page.retryPath} | ${page.homePath} | ${String(page.request.headers['accept-language'])}</main></body></html>`;
        },
      },
    });
    const agent = t.agent();
    emulator.setMode('deny');
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
    const back = await emulator.authorize(start.headers.location!);
    const res = await agent.get(pathOf(back)).set('Accept', 'text/html').set('Accept-Language', 'fr-CH');
    expectPageHeaders(res, 401);
    expect(res.text).toBe(
      '<!doctype html><html><body><nav>My app</nav><main data-code="access_denied">401 Duo denied the sign-in | /account | /home | fr-CH</main></body></html>',
    );
    expect(seen).toHaveLength(1);
    const page = seen[0]!;
    expect(page.message).toMatch(/denied/i);
    expect(page.texts.startAgain).toBe('Start again');
    expect(Object.isFrozen(page)).toBe(true);
    expect(Object.isFrozen(page.texts)).toBe(true);
    // Nothing of the login's secrets reaches the hook.
    const state = new URL(back).searchParams.get('state')!;
    expect(JSON.stringify({ ...page, request: undefined })).not.toContain(state);
    expect(renderFailures(t)).toEqual([]);
  });

  it('the render hook can send the default page in the request\'s language (renderDefault with other texts)', async () => {
    const german = { lang: 'de', titles: { access_denied: 'Duo hat die Anmeldung abgelehnt' }, home: 'Startseite' };
    const t = await app({
      errorPage: {
        render: (page) => page.renderDefault(String(page.request.headers['accept-language']).startsWith('de') ? german : undefined),
      },
    });
    emulator.setMode('deny');
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
    const res = await agent.get(pathOf(await emulator.authorize(start.headers.location!))).set('Accept', 'text/html').set('Accept-Language', 'de-DE');
    expectPageHeaders(res, 401);
    expect(res.text).toContain('<html lang="de">');
    expect(res.text).toContain('<title>Duo hat die Anmeldung abgelehnt</title>');
    expect(res.text).toContain('<a href="/">Startseite</a>');
    expect(res.text).toContain('<a href="/account">Start again</a>');

    const english = await deniedLogin(emulator, t.agent());
    expect(english.text).toContain('<title>Duo denied the sign-in</title>');
  });

  it('a render hook that throws: the default page, never a 500 or a stack, and one log line with the fix', async () => {
    let calls = 0;
    const t = await app({
      errorPage: {
        render: () => {
          calls++;
          throw new TypeError('template "layout" not found at /srv/app/views');
        },
      },
    });
    for (let i = 0; i < 3; i++) {
      const res = await deniedLogin(emulator, t.agent());
      expectPageHeaders(res, 401);
      expect(res.text).toContain('<title>Duo denied the sign-in</title>');
      expect(res.text).toContain('<link rel="icon" href="data:,">');
      expect(res.text).not.toContain('template');
      expect(res.text).not.toMatch(/\bat \S+:\d+/);
    }
    expect(calls).toBe(3);
    const lines = renderFailures(t);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error /);
    expect(lines[0]).toContain('threw (TypeError) for a "access_denied" page; the default page was sent instead');
    expect(lines[0]).toMatch(/must return the page's HTML as a non-empty string/);
    // The hook's own message is the app's business (it may carry request data): not logged.
    expect(t.logger.text()).not.toContain('/srv/app/views');
  });

  it.each([
    ['a number', () => 42, 'returned a number'],
    ['nothing', () => undefined, 'returned undefined'],
    ['an empty string', () => '', 'returned an empty string'],
    ['a rejected promise', () => Promise.reject(new Error('down')), 'threw (Error)'],
  ])('a render hook that returns %s: the default page, logged', async (_what, render, logged) => {
    const t = await app({ errorPage: { render: render as () => string } });
    const res = await deniedLogin(emulator, t.agent());
    expectPageHeaders(res, 401);
    expect(res.text).toContain('<title>Duo denied the sign-in</title>');
    const lines = renderFailures(t);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`${logged} for a "access_denied" page`);
  });

  it('a render hook that never settles: the default page after 2 s, logged', async () => {
    const t = await app({ errorPage: { render: () => new Promise<string>(() => undefined) } });
    const started = Date.now();
    const res = await deniedLogin(emulator, t.agent());
    const waited = Date.now() - started;
    expectPageHeaders(res, 401);
    expect(res.text).toContain('<title>Duo denied the sign-in</title>');
    expect(waited).toBeGreaterThanOrEqual(1900);
    expect(renderFailures(t)[0]).toContain('did not answer within 2000 ms');
  });

  it('API clients get the same JSON as ever, and the render hook is not asked', async () => {
    let calls = 0;
    const t = await app({ errorPage: { render: () => `${calls++}`, texts: { messages: { access_denied: 'Abgelehnt' } } } });
    const agent = t.agent();
    const noUser = await agent.get('/account').set('Accept', 'application/json').expect(401);
    expect(noUser.headers['content-type']).toMatch(/^application\/json/);
    expect(noUser.body).toEqual({
      statusCode: 401,
      error: 'primary_auth_required',
      message: 'Sign in first: this page needs a logged-in user before the Duo second factor.',
    });

    emulator.setMode('deny');
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
    const back = await emulator.authorize(start.headers.location!);
    const denied = await agent.get(pathOf(back)).set('Accept', 'application/json').expect(401);
    expect(denied.headers['cache-control']).toBe('no-store');
    expect(Object.keys(denied.body).sort()).toEqual(['error', 'message', 'statusCode']);
    expect(denied.body).toMatchObject({ statusCode: 401, error: 'access_denied' });
    // texts are the page's: the JSON keeps the module's message.
    expect(denied.body.message).not.toBe('Abgelehnt');
    expect(calls).toBe(0);
  });
});

describe('the errorPage option at startup', () => {
  const suite = perTestApps('express');

  it.each([
    ['errorPage', 'a page'],
    ['errorPage.render', { render: '<h1>oops</h1>' }],
    ['errorPage.homePath', { homePath: 'https://evil.example/' }],
    ['errorPage.homePath', { homePath: '//evil.example' }],
    ['errorPage.homePath', { homePath: 'dashboard' }],
    ['errorPage.colour', { colour: 'red' }],
    ['errorPage.texts', { texts: 'Home' }],
    ['errorPage.texts.home', { texts: { home: 5 } }],
    ['errorPage.texts.startAgain', { texts: { startAgain: 'x'.repeat(1001) } }],
    ['errorPage.texts.lang', { texts: { lang: 'en"><script>' } }],
    ['errorPage.texts.homeLink', { texts: { homeLink: 'Home' } }],
    ['errorPage.texts.titles', { texts: { titles: ['Denied'] } }],
    ['errorPage.texts.titles.acess_denied', { texts: { titles: { acess_denied: 'Denied' } } }],
    ['errorPage.texts.messages.access_denied', { texts: { messages: { access_denied: null } } }],
  ])('%s: a mistake stops the app, naming the option', async (option, errorPage) => {
    const error = await suite.app({ duo: { errorPage: errorPage as DuoModuleOptions['errorPage'] } }).then(
      () => undefined,
      (caught: unknown) => caught as Error,
    );
    expect(error, `${option} should have been refused`).toBeInstanceOf(Error);
    expect(error!.message).toContain(`Duo option "${option}"`);
    expect(error!.message).not.toContain(suite.emulator().clientSecret);
  });

  it("'' counts as not given: an empty homePath is /, empty texts keep the defaults", async () => {
    const t = await suite.app({ duo: { errorPage: { homePath: '', texts: { home: '', lang: '', titles: { access_denied: '' } } } } });
    const res = await deniedLogin(suite.emulator(), t.agent());
    expect(res.text).toContain('<html lang="en">');
    expect(res.text).toContain('<title>Duo denied the sign-in</title>');
    expect(res.text).toContain('<a href="/">Home</a>');
    expect(res.text).toContain('<a href="/account">Start again</a>');
  });
});
