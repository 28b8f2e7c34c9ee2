/**
 * Factor rules per route (issue 13 item 2) through the public API, on Express
 * and Fastify with the in-session store: `@RequireSecondFactor({ factors })`
 * and `{ requireInteraction: true }` checked against what Duo (the emulator)
 * reports in the id_token, `prompt=login` sent for such routes, the 403
 * `factor_rule_not_met` page and JSON answer, the `second_factor_rule_refused`
 * event, and a refused step-up that leaves the session's second factor alone.
 */
import 'reflect-metadata';
import { Controller, Get, type Type } from '@nestjs/common';
import supertest from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DUO_FACTORS, DuoConfigError, RequireSecondFactor, type DuoEvent, type DuoModuleOptions, type DuoRuleRefusedEvent } from '../../src/index.js';
import { DuoEmulator } from '../../src/testing/index.js';
import {
  AccountController,
  CallbackController,
  CapturingLogger,
  PLATFORMS,
  PrimaryLoginController,
  REDIRECT_URI,
  SessionProbeController,
  buildDuoTestApp,
  type Platform,
} from '../support/app.js';
import { pathOf } from './fixtures.js';

/** An admin area: a page for phishing-resistant factors only, and one that needs Duo to have asked the user. */
@Controller('admin')
class AdminController {
  @Get()
  @RequireSecondFactor({ factors: ['webauthn'] })
  dashboard(): string {
    return 'admin dashboard';
  }

  @Get('payout')
  @RequireSecondFactor({ requireInteraction: true })
  payout(): string {
    return 'payout';
  }

  @Get('codes')
  @RequireSecondFactor({ factors: ['hardware_token', 'passcode'], maxAge: 300 })
  codes(): string {
    return 'codes';
  }
}

const CONTROLLERS: Type[] = [PrimaryLoginController, SessionProbeController, AccountController, CallbackController, AdminController];

type Agent = ReturnType<typeof supertest.agent>;

interface RuleApp {
  agent(): Agent;
  events: DuoEvent[];
  logger: CapturingLogger;
  close(): Promise<void>;
}

async function ruleApp(emulator: DuoEmulator, adapter: Platform, duo: Partial<DuoModuleOptions> = {}): Promise<RuleApp> {
  const events: DuoEvent[] = [];
  const logger = new CapturingLogger();
  const { app } = await buildDuoTestApp({
    duo: { ...emulator.clientOptions(REDIRECT_URI), onEvent: (event) => events.push(event), ...duo },
    controllers: CONTROLLERS,
    adapter,
    logger,
  });
  return { agent: () => supertest.agent(app.getHttpServer()), events, logger, close: () => app.close() };
}

/** One round through Duo for `path` (the user is logged in): the start's 303, Duo's answer, the callback. */
async function throughDuo(emulator: DuoEmulator, agent: Agent, path: string): Promise<{ start: string; callback: supertest.Response }> {
  const start = await agent.get(path).set('Accept', 'text/html').expect(303);
  const location = start.headers.location!;
  expect(location.startsWith(emulator.baseUrl)).toBe(true);
  const back = await emulator.authorize(location);
  const callback = await agent.get(pathOf(back)).set('Accept', 'text/html');
  return { start: location, callback };
}

/** The request JWT's claims of an authorize URL (what the module asked Duo for). */
function requestClaims(location: string): Record<string, unknown> {
  const request = new URL(location).searchParams.get('request')!;
  return JSON.parse(Buffer.from(request.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

/** The page's text without its markup and with the entities the default page uses turned back. */
function pageText(html: string): string {
  return html
    .replace(/<[^>]*>/g, ' ')
    .replace(/&#(\d+);/g, (_m, code: string) => String.fromCharCode(Number(code)))
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');
}

const WEBAUTHN = 'WebAuthn Security Key';

describe.each(PLATFORMS)('factor rules on %s (in-session store)', (adapter) => {
  let emulator: DuoEmulator;
  let apps: RuleApp[] = [];
  beforeAll(async () => {
    emulator = await DuoEmulator.start();
  });
  afterAll(async () => {
    await emulator.close();
  });
  beforeEach(() => emulator.reset());
  afterEach(async () => {
    await Promise.all(apps.map((t) => t.close()));
    apps = [];
  });
  const app = async (duo: Partial<DuoModuleOptions> = {}): Promise<RuleApp> => {
    const t = await ruleApp(emulator, adapter, duo);
    apps.push(t);
    return t;
  };
  const refusals = (t: RuleApp): DuoRuleRefusedEvent[] => t.events.filter((event): event is DuoRuleRefusedEvent => event.type === 'second_factor_rule_refused');

  /** Logs alice in and passes Duo for /account with Duo Push. */
  async function pushLogin(t: RuleApp): Promise<Agent> {
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const { start, callback } = await throughDuo(emulator, agent, '/account');
    expect(requestClaims(start).prompt).toBeUndefined();
    expect(callback.status).toBe(303);
    await agent.get('/account').expect(200);
    return agent;
  }

  it('a Duo Push session opening the WebAuthn-only page goes to Duo with prompt=login; a security key there opens it', async () => {
    const t = await app();
    const agent = await pushLogin(t);
    emulator.setFactor(WEBAUTHN);
    const { start, callback } = await throughDuo(emulator, agent, '/admin');
    expect(requestClaims(start).prompt).toBe('login');
    expect(emulator.lastAuthorizeRequest?.prompt).toBe('login');
    expect(callback.status).toBe(303);
    expect(callback.headers.location).toBe('/admin');
    const page = await agent.get('/admin').expect(200);
    expect(page.text).toBe('admin dashboard');
    // The new second factor counts for the ordinary page too, and the next admin request needs no Duo.
    await agent.get('/account').expect(200);
    await agent.get('/admin').expect(200);
    const passed = t.events.filter((event) => event.type === 'second_factor_passed');
    expect(passed.map((event) => (event as { factor?: string }).factor)).toEqual(['duo_push', WEBAUTHN]);
    expect(refusals(t)).toEqual([]);
  });

  it('Duo Push again at that prompt: 403 factor_rule_not_met saying what to use, an event, and the earlier second factor still counts', async () => {
    const t = await app();
    const agent = await pushLogin(t);
    const { callback } = await throughDuo(emulator, agent, '/admin');
    expect(callback.status).toBe(403);
    expect(callback.headers['content-type']).toMatch(/^text\/html/);
    const text = pageText(callback.text);
    expect(text).toContain('This page needs another kind of Duo sign-in');
    expect(text).toContain(`This page needs ${DUO_FACTORS.webauthn.label}. You used Duo Push. Sign in again with ${DUO_FACTORS.webauthn.label}.`);
    expect(text).toContain('factor_rule_not_met');
    // "Start again" leads to the admin page, which starts a new Duo login: no loop of redirects.
    expect(callback.text).toMatch(/href="\/admin"/);
    expect(refusals(t)).toEqual([
      {
        type: 'second_factor_rule_refused',
        at: expect.any(Number),
        username: 'alice',
        rule: 'factors',
        factors: ['webauthn'],
        factor: 'duo_push',
        reason: 'user_approved',
        result: 'success',
        txid: expect.any(String),
      },
    ]);
    expect(t.events.filter((event) => event.type === 'second_factor_passed')).toHaveLength(1);
    expect(t.events.filter((event) => event.type === 'second_factor_failed')).toEqual([]);
    expect(t.logger.warnings().join('\n')).toMatch(/alice.*refused by the route's factor rule \(factors: webauthn\); Duo reported factor "duo_push", reason "user_approved", result "success"/);
    await agent.get('/account').expect(200);
    const again = await agent.get('/admin').set('Accept', 'text/html').expect(303);
    expect(requestClaims(again.headers.location!).prompt).toBe('login');
  });

  it('a rule with several factors and a step-up window: a hardware token within it passes; SMS does not', async () => {
    const t = await app();
    const agent = await pushLogin(t);
    emulator.setFactor('sms_passcode');
    emulator.setAuthContext({ reason: 'valid_passcode' });
    const sms = await throughDuo(emulator, agent, '/admin/codes');
    expect(requestClaims(sms.start)).toMatchObject({ prompt: 'login', max_age: 300 });
    expect(sms.callback.status).toBe(403);
    expect(pageText(sms.callback.text)).toContain(
      `This page needs ${DUO_FACTORS.hardware_token.label} or ${DUO_FACTORS.passcode.label}. You used ${DUO_FACTORS.sms.label}.`,
    );
    emulator.setFactor('yubikey_code');
    const token = await throughDuo(emulator, agent, '/admin/codes');
    expect(token.callback.status).toBe(303);
    await agent.get('/admin/codes').expect(200);
    // A hardware token is not WebAuthn.
    await agent.get('/admin').set('Accept', 'text/html').expect(303);
  });

  it('requireInteraction: a remembered device passed /account without a prompt; /admin/payout asks with prompt=login, and then opens', async () => {
    const t = await app();
    emulator.setRememberedDevice(true);
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const first = await throughDuo(emulator, agent, '/account');
    expect(first.callback.status).toBe(303);
    expect(t.events.find((event) => event.type === 'second_factor_passed')).toMatchObject({ factor: 'remembered_device' });
    await agent.get('/account').expect(200);
    const payout = await throughDuo(emulator, agent, '/admin/payout');
    expect(emulator.lastAuthorizeRequest?.prompt).toBe('login');
    expect(payout.callback.status).toBe(303);
    await agent.get('/admin/payout').expect(200);
    expect(refusals(t)).toEqual([]);
  });

  it.each([
    [
      'a remembered device Duo passes even with prompt=login',
      { factor: 'remembered_device', reason: 'remembered_device' },
      'Duo let you in without asking because it remembers this device. Sign in again and complete the Duo prompt.',
    ],
    [
      'a user in bypass status',
      { factor: 'bypass_code', reason: 'bypass_user' },
      'Duo let you in through a bypass (your Duo account is set to bypass, or you used a bypass code), not a check of one of your devices. If your account is set to bypass, ask your help desk to turn that off, then sign in again and complete the Duo prompt.',
    ],
    [
      'a trusted network',
      { factor: 'trusted_network', reason: 'trusted_network' },
      'Duo let you in without asking because you are on a network it trusts. Sign in again and complete the Duo prompt. If Duo lets you in without asking again, ask your administrator.',
    ],
    [
      'an unenrolled user allowed by policy',
      { factor: 'not_available', reason: 'allow_unenrolled_user' },
      'Duo let you in without a check because you have not enrolled a device with Duo. Enroll a device with Duo (your help desk can tell you how), then sign in again and complete the Duo prompt.',
    ],
  ])('requireInteraction refuses %s (403, the reason in words, an event)', async (_name, context, says) => {
    const t = await app();
    // A remembered device passed /account without a prompt; Duo then skips the prompt again in spite of prompt=login.
    emulator.setRememberedDevice(true);
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    expect((await throughDuo(emulator, agent, '/account')).callback.status).toBe(303);
    emulator.setAuthContext(context);
    const { callback } = await throughDuo(emulator, agent, '/admin/payout');
    expect(callback.status).toBe(403);
    expect(pageText(callback.text)).toContain(`This page needs you to complete a Duo check. ${says}`);
    expect(refusals(t)).toEqual([expect.objectContaining({ rule: 'interaction', factor: context.factor, reason: context.reason, result: 'success' })]);
    expect(refusals(t)[0]).not.toHaveProperty('factors');
    await agent.get('/account').expect(200);
  });

  it.each([
    ['a WebAuthn value Duo might add', { factor: 'WebAuthn Platform Passkey' }, 'Duo reported a sign-in method this page does not recognise'],
    ['the prompt\'s device id, not a factor', { factor: 'webauthn_credential' }, 'Duo reported a sign-in method this page does not recognise'],
    ['another spelling', { factor: 'webauthn security key' }, 'Duo reported a sign-in method this page does not recognise'],
    ['no factor in the token', { factor: null }, 'Duo did not say which method you used'],
    ['an unknown reason', { factor: WEBAUTHN, reason: 'user_approved_v2' }, 'Duo did not confirm that you completed a check'],
    ['a result in capitals', { factor: WEBAUTHN, result: 'SUCCESS' }, 'Duo did not report this sign-in as successful'],
  ])('fails closed on %s: 403, never the page', async (_name, context, says) => {
    const t = await app();
    const agent = await pushLogin(t);
    emulator.setAuthContext(context);
    const { callback } = await throughDuo(emulator, agent, '/admin');
    expect(callback.status).toBe(403);
    expect(pageText(callback.text)).toContain(says);
    expect(refusals(t)).toHaveLength(1);
    await agent.get('/admin').set('Accept', 'text/html').expect(303);
  });

  it('API clients: 401 second_factor_required without a second factor, 403 factor_rule_not_met with `location` and the reason with the wrong one', async () => {
    const t = await app();
    const fresh = t.agent();
    await fresh.post('/login').send({ username: 'bob' }).expect(201);
    const none = await fresh.get('/admin').set('Accept', 'application/json').expect(401);
    expect(none.body).toMatchObject({ statusCode: 401, error: 'second_factor_required' });
    expect(requestClaims(none.body.location).prompt).toBe('login');

    const agent = await pushLogin(t);
    const res = await agent.get('/admin').set('Accept', 'application/json').set('x-duo-return-to', '/admin').expect(403);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toMatch(/no-store/);
    expect(res.body).toMatchObject({ statusCode: 403, error: 'factor_rule_not_met' });
    expect(res.body.message).toBe(
      `This page needs ${DUO_FACTORS.webauthn.label}. You used Duo Push. Sign in again with ${DUO_FACTORS.webauthn.label}. Open \`location\` in the browser (a full-page navigation) to sign in with Duo again.`,
    );
    expect(requestClaims(res.body.location).prompt).toBe('login');
    // The browser follows `location` and uses a security key: the API call then goes through.
    emulator.setFactor(WEBAUTHN);
    const back = await emulator.authorize(res.body.location);
    const callback = await agent.get(pathOf(back)).expect(303);
    expect(callback.headers.location).toBe('/admin');
    await agent.get('/admin').set('Accept', 'application/json').expect(200);
  });

  it('a refused callback answers API clients in JSON too, and its state cannot be replayed into a pass', async () => {
    const t = await app();
    const agent = await pushLogin(t);
    const start = await agent.get('/admin').set('Accept', 'text/html').expect(303);
    const back = await emulator.authorize(start.headers.location!);
    const refused = await agent.get(pathOf(back)).set('Accept', 'application/json').expect(403);
    expect(refused.body).toMatchObject({ statusCode: 403, error: 'factor_rule_not_met' });
    expect(refused.body.message).toMatch(/^This page needs a security key or passkey \(WebAuthn\)\. You used Duo Push\./);
    const replay = await agent.get(pathOf(back)).set('Accept', 'application/json');
    expect(replay.status).toBeGreaterThanOrEqual(400);
    await agent.get('/admin').set('Accept', 'text/html').expect(303);
  });

  it('fail mode open never lets a route with a factor rule through while Duo is down (the ordinary page is bypassed)', async () => {
    const t = await app({ failMode: 'open', healthCheckCacheSeconds: 0 });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    emulator.setFailure('http_500');
    await agent.get('/account').set('Accept', 'application/json').expect(200);
    const res = await agent.get('/admin/payout').set('Accept', 'application/json').expect(503);
    expect(res.body.error).toBe('duo_unavailable');
    expect(t.events.filter((event) => event.type === 'second_factor_bypassed')).toHaveLength(1);
  });
});

describe('factor rule mistakes stop the app at startup', () => {
  const define = (options: object): void => {
    @Controller('bad')
    class BadController {
      @Get()
      @RequireSecondFactor(options as never)
      remove(): string {
        return 'never';
      }
    }
    void BadController;
  };

  it.each([
    [{ factors: ['duo_push'] }, 'option "factors" has "duo_push", which is Duo\'s raw value for the factor "push": write "push"'],
    [{ factors: ['remembered_device'] }, 'which is not a factor (Duo reports it when it did not ask the user); use requireInteraction to refuse it'],
    [{ factors: [] }, 'option "factors" must be a non-empty list of factor names: webauthn, push, passcode, sms, phone, hardware_token, bypass_code'],
    [{ factors: ['webauthn'], requireInteraction: false }, 'cannot go with requireInteraction: false'],
    [{ factor: 'webauthn' }, 'unknown option "factor"; the option is "factors" (a list)'],
    [{ requireInteraction: 'yes' }, 'option "requireInteraction" must be true or false'],
  ])('%j: a DuoConfigError naming the handler and the option', (options, says) => {
    let thrown: unknown;
    try {
      define(options);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DuoConfigError);
    expect((thrown as Error).message).toContain('@RequireSecondFactor() on BadController.remove: ');
    expect((thrown as Error).message).toContain(says);
  });

  it('on a controller, the error names the controller', () => {
    expect(() => {
      @Controller('bad')
      @RequireSecondFactor({ factors: ['yubikey'] as never })
      class BadAdminController {}
      void BadAdminController;
    }).toThrow(/^@RequireSecondFactor\(\) on BadAdminController: option "factors" has "yubikey", which is not a factor name\. Use these names: webauthn, push/);
  });
});
