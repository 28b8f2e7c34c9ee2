'use strict';
// Walks nestjs-duo's main flow in a NestJS 11 CommonJS app against the local
// Duo emulator: login, guard 303 to Duo, authorize, callback 303 back,
// protected page 200. Exits non-zero on the first failed check.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

const REDIRECT_URI = 'http://127.0.0.1/duo/callback';
const TIMEOUT_MS = 60_000;

/** name and version of the package.json above `file` (the package a resolved file belongs to). */
function packageOf(file) {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      const { name, version } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
      if (name) return { name, version, dir };
    }
  }
  throw new Error(`no package.json above ${file}`);
}

let checks = 0;
function ok(message) {
  checks += 1;
  console.log(`  ok ${checks} - ${message}`);
}

/** A tiny cookie jar for the one session cookie. */
class Browser {
  constructor(baseUrl) {
    this.baseUrl = baseUrl;
    this.cookie = undefined;
  }

  async request(method, pathAndQuery, { accept = 'text/html', json } = {}) {
    const headers = { accept };
    if (this.cookie) headers.cookie = this.cookie;
    if (json !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.baseUrl}${pathAndQuery}`, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      redirect: 'manual',
    });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';')[0];
      if (pair.startsWith('connect.sid=')) this.cookie = pair;
    }
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, headers: res.headers, text, body };
  }

  get(pathAndQuery, options) {
    return this.request('GET', pathAndQuery, options);
  }

  post(pathAndQuery, json) {
    return this.request('POST', pathAndQuery, { accept: 'application/json', json });
  }
}

function pathOf(location) {
  const url = new URL(location, 'http://127.0.0.1');
  return `${url.pathname}${url.search}`;
}

async function main() {
  // 1. Which NestJS is this? The app's own copy, and the one nestjs-duo imports.
  const appCore = packageOf(require.resolve('@nestjs/core'));
  const appCommon = packageOf(require.resolve('@nestjs/common'));
  const duoEntry = require.resolve('nestjs-duo');
  const duoPackage = packageOf(duoEntry);
  const fromDuo = createRequire(duoEntry);
  const duoCommon = packageOf(fromDuo.resolve('@nestjs/common'));
  const duoCore = packageOf(fromDuo.resolve('@nestjs/core'));
  const duoPassport = packageOf(fromDuo.resolve('@nestjs/passport'));
  console.log(`node ${process.version}`);
  console.log(`@nestjs/core ${appCore.version} (${appCore.dir})`);
  console.log(`@nestjs/common ${appCommon.version} (${appCommon.dir})`);
  console.log(`nestjs-duo ${duoPackage.version} (${duoPackage.dir})`);
  console.log(`nestjs-duo resolves @nestjs/common ${duoCommon.version}, @nestjs/core ${duoCore.version}, @nestjs/passport ${duoPassport.version}`);
  assert.match(appCore.version, /^11\./, 'the app runs NestJS 11');
  assert.match(appCommon.version, /^11\./);
  assert.equal(duoCommon.dir, appCommon.dir, "nestjs-duo's @nestjs/common is the app's");
  assert.equal(duoCore.dir, appCore.dir, "nestjs-duo's @nestjs/core is the app's");
  assert.match(duoPassport.version, /^11\./, 'nestjs-duo uses @nestjs/passport 11');
  assert.ok(!fs.lstatSync(duoPackage.dir).isSymbolicLink(), 'nestjs-duo is installed from its tarball, not linked');
  ok(`NestJS ${appCore.version}: nestjs-duo resolves the app's @nestjs/common and @nestjs/core`);

  // 2. require(esm): the package and its testing entry load with require().
  const duo = require('nestjs-duo');
  const { DuoEmulator } = require('nestjs-duo/testing');
  assert.equal(typeof duo.DuoModule, 'function');
  assert.equal(typeof DuoEmulator, 'function');
  const { HttpException } = require('@nestjs/common');
  const probe = new duo.DuoHttpException(new duo.DuoError('state_unknown', 'probe'));
  assert.ok(probe instanceof HttpException, "DuoHttpException extends the app's HttpException (one @nestjs/common loaded)");
  const loaded = Object.keys(require.cache).filter((file) => file.includes(`${path.sep}@nestjs${path.sep}`));
  const foreign = loaded.filter((file) => !file.startsWith(path.dirname(appCore.dir)));
  assert.deepEqual(foreign, [], 'every loaded @nestjs file comes from the app');
  ok('require("nestjs-duo") and require("nestjs-duo/testing") load through require(esm), sharing one @nestjs/common');

  // 3. The app and the emulator, both on 127.0.0.1.
  const emulator = await DuoEmulator.start();
  const { startApp } = require('./app.cjs');
  const { app, baseUrl } = await startApp(emulator.clientOptions(REDIRECT_URI));
  try {
    console.log(`app on ${baseUrl}, Duo emulator on ${emulator.baseUrl}`);
    const browser = new Browser(baseUrl);

    const home = await browser.get('/');
    assert.equal(home.status, 200);
    assert.equal(home.text, 'home');
    ok('a public page opens: 200');

    const anonymous = await new Browser(baseUrl).get('/api/data', { accept: 'application/json' });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body?.error, 'primary_auth_required');
    ok('a protected page without a primary login: 401 primary_auth_required');

    const login = await browser.post('/login', { username: 'alice' });
    assert.equal(login.status, 201);
    assert.ok(browser.cookie, 'the login set the session cookie');
    ok('primary login: 201 and a connect.sid cookie');

    const api = await browser.get('/api/data', { accept: 'application/json' });
    assert.equal(api.status, 401);
    assert.equal(api.body?.error, 'second_factor_required');
    assert.ok(api.body.location.startsWith(`${emulator.baseUrl}/oauth/v1/authorize?`), api.body.location);
    ok('a JSON client before the second factor: 401 second_factor_required with the Duo location');

    const start = await browser.get('/account?tab=1');
    assert.equal(start.status, 303);
    const location = new URL(start.headers.get('location'));
    assert.equal(`${location.origin}${location.pathname}`, `${emulator.baseUrl}/oauth/v1/authorize`);
    assert.equal(location.searchParams.get('client_id'), emulator.clientId);
    assert.equal(start.headers.get('cache-control'), 'no-store');
    ok("the guard sends the browser to Duo: 303 to the emulator's authorize URL");

    const back = await emulator.authorize(location.href);
    const backUrl = new URL(back);
    assert.equal(`${backUrl.origin}${backUrl.pathname}`, REDIRECT_URI);
    assert.ok(backUrl.searchParams.get('state') && backUrl.searchParams.get('duo_code'), back);
    ok('Duo (the emulator) approves and sends the browser to the redirect URI with state and duo_code');

    const sessionBefore = browser.cookie;
    const callback = await browser.get(pathOf(back));
    assert.equal(callback.status, 303, callback.text);
    assert.equal(callback.headers.get('location'), '/account?tab=1');
    assert.equal(callback.headers.get('cache-control'), 'no-store');
    assert.notEqual(browser.cookie, sessionBefore, 'the session id changes after the second factor');
    ok('the callback: 303 back to /account?tab=1, with a new session id');

    const account = await browser.get('/account');
    assert.equal(account.status, 200);
    assert.equal(account.text, 'account of alice');
    ok('the protected page opens: 200 "account of alice"');

    const apiAfter = await browser.get('/api/data', { accept: 'application/json' });
    assert.equal(apiAfter.status, 200);
    assert.deepEqual(apiAfter.body, { data: [1, 2, 3] });
    ok('the JSON client after the second factor: 200');

    const badJson = await browser.get('/duo/callback?duo_code=abc&state=aaaaaaaaaaaaaaaaaaaaaaaa', { accept: 'application/json' });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.body?.error, 'state_unknown');
    const badHtml = await browser.get('/duo/callback?duo_code=abc');
    assert.equal(badHtml.status, 400);
    assert.match(badHtml.headers.get('content-type') ?? '', /text\/html/);
    assert.match(badHtml.text, /state_invalid/);
    ok('bad callbacks: 400 state_unknown (JSON) and 400 state_invalid (HTML page)');

    assert.equal(emulator.stats.tokenExchanges, 1);
    ok('exactly one token exchange with Duo');
  } finally {
    await app.close();
    await emulator.close();
  }
  console.log(`nest11 flow: ${checks} checks passed on NestJS ${appCore.version}`);
}

const timer = setTimeout(() => {
  console.error(`  not ok - timed out after ${TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, TIMEOUT_MS);
timer.unref();

main().then(
  () => {
    process.exitCode = 0;
  },
  (error) => {
    console.error(`  not ok ${checks + 1} - ${error && error.stack ? error.stack : error}`);
    process.exitCode = 1;
  },
);
