/**
 * An optional string option given as '' (a `process.env.X` that is set but
 * empty) counts as not given: the default applies, instead of a startup error
 * or an empty value in use.
 */
import { describe, expect, it } from 'vitest';
import { perTestApps } from './fixtures.js';

describe("optional string options given as ''", () => {
  const suite = perTestApps('express');

  it("failMode, loginPath and appName '' start the app with their defaults", async () => {
    const t = await suite.app({ duo: { failMode: '' as never, loginPath: '', appName: '' } });
    // failMode: closed, the default (open warns at startup).
    expect(t.logger.warnings().join('\n')).not.toMatch(/fail mode "open"/i);
    const agent = t.agent();
    // loginPath: none, so a browser without a primary user gets the 401 page, not a 303 to ''.
    const noUser = await agent.get('/account').set('Accept', 'text/html').expect(401);
    expect(noUser.headers.location).toBeUndefined();
    expect(noUser.text).toContain('Error code: <code>primary_auth_required</code>');
    expect(noUser.text).toContain('<a href="/">Start again</a>');
    expect(noUser.text).not.toContain('href=""');
    // appName: none, so no dest_app_name goes to Duo.
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
    await suite.emulator().authorize(start.headers.location!);
    expect(suite.emulator().lastAuthorizeRequest?.username).toBe('alice');
    expect(suite.emulator().lastAuthorizeRequest).not.toHaveProperty('destAppName');
  });

  it('the same options with values are used (what the test above would see if they counted)', async () => {
    const t = await suite.app({ duo: { loginPath: '/login', appName: 'Payroll' } });
    const agent = t.agent();
    await agent.get('/account').set('Accept', 'text/html').expect(303).expect('location', '/login?returnTo=%2Faccount');
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
    await suite.emulator().authorize(start.headers.location!);
    expect(suite.emulator().lastAuthorizeRequest?.destAppName).toBe('Payroll');
  });

  it("a value that is not '' is still checked: loginPath ' ' stops the app", async () => {
    const error = await suite.app({ duo: { loginPath: ' ' } }).then(
      () => undefined,
      (caught: unknown) => caught as Error,
    );
    expect(error?.message).toContain('Duo option "loginPath"');
  });
});
