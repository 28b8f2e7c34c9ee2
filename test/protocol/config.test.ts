import { rootCertificates } from 'node:tls';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { DuoClient, DuoConfigError, DuoError, resolveClientConfig, type DuoClientOptions } from '../../src/protocol/index.js';
import { API_HOST, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, expectDuoErrorSync, expectNoLeak, localOptions, nowSeconds, sendJson, startServer, validOptions } from './helpers.js';
import { statusOf } from '../../src/duo.errors.js';

const clients: DuoClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
});

function build(options: DuoClientOptions): DuoClient {
  const client = new DuoClient(options);
  clients.push(client);
  return client;
}

/** `new DuoClient(options)` must throw DuoConfigError [config_invalid] whose message names the option. */
function refuses(options: unknown, option: string | null): DuoConfigError {
  const error = expectDuoErrorSync(() => build(options as DuoClientOptions), 'config_invalid', [CLIENT_SECRET]);
  expect(error).toBeInstanceOf(DuoConfigError);
  expect(error).toBeInstanceOf(DuoError);
  expect(error.name).toBe('DuoConfigError');
  expect(statusOf(error.code)).toBe(500);
  if (option !== null) expect(error.message).toContain(`"${option}"`);
  // resolveClientConfig is the same check, exposed.
  expect(() => resolveClientConfig(options as DuoClientOptions)).toThrow(DuoConfigError);
  return error as DuoConfigError;
}

describe('configuration: the options object', () => {
  it('accepts valid options and derives every endpoint from apiHost', () => {
    const client = build(validOptions());
    expect(client.config.clientId).toBe(CLIENT_ID);
    expect(client.config.redirectUri).toBe(REDIRECT_URI);
    expect(client.config.baseUrl).toBe(`https://${API_HOST}`);
    expect(client.config.healthCheckUrl).toBe(`https://${API_HOST}/oauth/v1/health_check`);
    expect(client.config.authorizeUrl).toBe(`https://${API_HOST}/oauth/v1/authorize`);
    expect(client.config.tokenUrl).toBe(`https://${API_HOST}/oauth/v1/token`);
    expect(client.config.timeoutMs).toBe(10_000);
    expect(client.config.usernameMatch).toBe('exact');
    expect(client.config.maxConcurrentRequests).toBe(128);
    expect(client.config.clockSkewWarningSeconds).toBe(30);
    expect(Object.isFrozen(client.config)).toBe(true);
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['a string', 'DIWJ8X6AEYOR5OMC6TQ1'],
    ['a number', 42],
  ])('refuses a missing options object (%s)', (_name, options) => {
    refuses(options, null);
  });

  it('never keeps the secret in the resolved configuration', () => {
    const config = resolveClientConfig(validOptions());
    expect(JSON.stringify(config)).not.toContain(CLIENT_SECRET);
    expect(inspect(config, { showHidden: true, depth: 10 })).not.toContain(CLIENT_SECRET);
    expect(Object.values(config)).not.toContain(CLIENT_SECRET);
  });
});

describe('configuration: clientId', () => {
  it.each([
    ['19 characters', CLIENT_ID.slice(0, 19)],
    ['21 characters', `${CLIENT_ID}A`],
    ['a dash', `DI-${CLIENT_ID.slice(3)}`],
    ['an underscore', `DI_${CLIENT_ID.slice(3)}`],
    ['non-ASCII letters', `DI${'é'.repeat(18)}`],
    ['a trailing newline', `${CLIENT_ID}\n`],
    ['a leading space', ` ${CLIENT_ID}`],
    ['an inner space (20 characters)', `DI ${CLIENT_ID.slice(3)}`],
    ['an inner tab (20 characters)', `DI\t${CLIENT_ID.slice(3)}`],
    ['empty', ''],
    ['a number', 12345678901234],
    ['null', null],
  ])('refuses a clientId with %s', (_name, clientId) => {
    refuses({ ...validOptions(), clientId }, 'clientId');
  });

  it('names white space as the problem when the clientId has some', () => {
    expect(refuses({ ...validOptions(), clientId: `${CLIENT_ID}\n` }, 'clientId').message).toMatch(/white ?space/i);
  });

  it('refuses a missing clientId', () => {
    const { clientId: _omit, ...rest } = validOptions();
    refuses(rest, 'clientId');
  });

  it('accepts 20 letters and digits in either case', () => {
    expect(build(validOptions({ clientId: 'di0123456789abcdefGH' })).config.clientId).toBe('di0123456789abcdefGH');
  });
});

describe('configuration: clientSecret', () => {
  const cases: Array<[string, unknown]> = [
    ['39 characters', CLIENT_SECRET.slice(0, 39)],
    ['41 characters', `${CLIENT_SECRET}x`],
    ['a trailing newline', `${CLIENT_SECRET}\n`],
    ['a trailing CRLF', `${CLIENT_SECRET}\r\n`],
    ['a leading space', ` ${CLIENT_SECRET}`],
    ['an inner space (40 characters)', `${CLIENT_SECRET.slice(0, 20)} ${CLIENT_SECRET.slice(21)}`],
    ['an inner tab (40 characters)', `${CLIENT_SECRET.slice(0, 20)}\t${CLIENT_SECRET.slice(21)}`],
    ['non-ASCII characters (40 characters)', `${CLIENT_SECRET.slice(0, 39)}é`],
    ['a control character (40 characters)', `${CLIENT_SECRET.slice(0, 39)}\u0007`],
    ['empty', ''],
    ['a number', 1234],
    ['a Buffer', Buffer.from(CLIENT_SECRET)],
  ];

  it.each(cases)('refuses a clientSecret with %s, and never echoes it', (_name, clientSecret) => {
    const error = refuses({ ...validOptions(), clientSecret }, 'clientSecret');
    const secretText = typeof clientSecret === 'string' ? clientSecret : String(clientSecret);
    const probes = [secretText, CLIENT_SECRET, CLIENT_SECRET.slice(0, 8), CLIENT_SECRET.slice(-8), secretText.trim()].filter((s) => s.length >= 8);
    for (const text of [error.message, JSON.stringify(error), inspect(error), inspect(error, { showHidden: true }), String(error.stack), String(error)]) {
      for (const probe of probes) expect(text).not.toContain(probe);
    }
    expectNoLeak(error, probes);
  });

  it('refuses a missing clientSecret', () => {
    const { clientSecret: _omit, ...rest } = validOptions();
    refuses(rest, 'clientSecret');
  });

  it('reports the length of a wrong-length secret, not its content', () => {
    expect(refuses({ ...validOptions(), clientSecret: CLIENT_SECRET.slice(0, 39) }, 'clientSecret').message).toContain('39');
  });
});

describe('configuration: apiHost', () => {
  it.each([
    ['a scheme', `https://${API_HOST}`],
    ['an http scheme', `http://${API_HOST}`],
    ['a path', `${API_HOST}/oauth`],
    ['a trailing slash', `${API_HOST}/`],
    ['a port', `${API_HOST}:443`],
    ['user info', `user@${API_HOST}`],
    ['a query', `${API_HOST}?x=1`],
    ['a fragment', `${API_HOST}#x`],
    ['an IPv4 address', '203.0.113.10'],
    ['a loopback IPv4 address', '127.0.0.1'],
    ['an IPv6 address', '2001:db8::1'],
    ['a bracketed IPv6 address', '[2001:db8::1]'],
    ['an underscore', 'api_1234.duosecurity.com'],
    ['a leading dash', '-api.duosecurity.com'],
    ['an empty label', 'api..duosecurity.com'],
    ['a space', 'api 1234.duosecurity.com'],
    ['a trailing newline', `${API_HOST}\n`],
    ['a label of 64 characters', `${'a'.repeat(64)}.duosecurity.com`],
    ['an exclamation mark', 'api!.duosecurity.com'],
    ['empty', ''],
    ['a number', 42],
  ])('refuses an apiHost with %s', (_name, apiHost) => {
    refuses({ ...validOptions(), apiHost }, 'apiHost');
  });

  it('refuses a missing apiHost when there is no apiBaseUrl', () => {
    const { apiHost: _omit, ...rest } = validOptions();
    refuses(rest, 'apiHost');
  });

  it('lower-cases the host in the derived endpoints', () => {
    const client = build(validOptions({ apiHost: 'API-1234ABCD.DuoSecurity.com' }));
    expect(client.config.baseUrl).toBe(`https://${API_HOST}`);
    expect(client.config.tokenUrl).toBe(`https://${API_HOST}/oauth/v1/token`);
  });
});

describe('configuration: redirectUri', () => {
  it.each([
    ['a relative path', '/duo/callback'],
    ['a relative reference', 'duo/callback'],
    ['more than 256 characters', `https://app.example.com/${'a'.repeat(233)}`],
    ['plain http to a non-localhost host', 'http://app.example.com/duo/callback'],
    ['plain http to a look-alike of localhost', 'http://localhost.evil.example/duo/callback'],
    ['plain http to a private IP', 'http://10.0.0.8/duo/callback'],
    ['https to an IPv4 address', 'https://203.0.113.10/duo/callback'],
    ['https to an IPv6 address', 'https://[2001:db8::1]/duo/callback'],
    ['a fragment', 'https://app.example.com/duo/callback#done'],
    ['user info', 'https://user:pass@app.example.com/duo/callback'],
    ['a user name only', 'https://user@app.example.com/duo/callback'],
    ['an ftp scheme', 'ftp://app.example.com/duo/callback'],
    ['a javascript: URL', 'javascript:alert(1)'],
    ['empty', ''],
    ['a number', 42],
  ])('refuses a redirectUri with %s', (_name, redirectUri) => {
    refuses({ ...validOptions(), redirectUri }, 'redirectUri');
  });

  it('refuses a missing redirectUri', () => {
    const { redirectUri: _omit, ...rest } = validOptions();
    refuses(rest, 'redirectUri');
  });

  it('accepts exactly 256 characters and refuses 257', () => {
    const base = 'https://app.example.com/';
    const ok = `${base}${'a'.repeat(256 - base.length)}`;
    expect(ok).toHaveLength(256);
    expect(build(validOptions({ redirectUri: ok })).config.redirectUri).toBe(ok);
    refuses({ ...validOptions(), redirectUri: `${ok}b` }, 'redirectUri');
  });

  it.each([
    'http://localhost:3000/duo/callback',
    'http://localhost/duo/callback',
    'http://127.0.0.1:3000/duo/callback',
    'https://app.example.com/duo/callback?next=%2Fhome&x=1',
    'https://localhost:8443/duo/callback',
  ])('accepts %s and keeps it verbatim', (redirectUri) => {
    expect(build(validOptions({ redirectUri })).config.redirectUri).toBe(redirectUri);
  });

  // The same env-file trap the clientId check names: WHATWG URL parsing silently
  // strips leading/trailing spaces and removes tabs/newlines, so such a value
  // "parses", but the very string sent to Duo (authorize and token calls) then
  // carries the stray characters and never matches the registered redirect URI.
  it.each([
    ['a trailing newline', `${REDIRECT_URI}\n`],
    ['a trailing space', `${REDIRECT_URI} `],
    ['a leading space', ` ${REDIRECT_URI}`],
    ['an inner tab', 'https://app.example.com/duo/\tcallback'],
  ])('refuses a redirectUri with %s (stray white space)', (_name, redirectUri) => {
    refuses({ ...validOptions(), redirectUri }, 'redirectUri');
  });
});

describe('configuration: apiBaseUrl', () => {
  it.each([
    ['plain http to a public host', 'http://duo.example.com'],
    ['plain http to a private IP', 'http://10.0.0.5:4000'],
    ['plain http to a look-alike of localhost', 'http://localhost.evil.example:4000'],
    ['a path', 'http://127.0.0.1:4000/duo'],
    ['a query', 'http://127.0.0.1:4000/?x=1'],
    ['a fragment', 'http://127.0.0.1:4000/#x'],
    ['user info', 'http://user:pass@127.0.0.1:4000'],
    ['no scheme', '127.0.0.1:4000x'],
    ['not a URL', 'not a url'],
    ['an ftp scheme', 'ftp://127.0.0.1:4000'],
    ['a number', 4000],
    ['null', null],
  ])('refuses an apiBaseUrl with %s', (_name, apiBaseUrl) => {
    refuses({ ...validOptions(), apiBaseUrl }, 'apiBaseUrl');
  });

  it.each([
    ['http://127.0.0.1:4000', 'http://127.0.0.1:4000'],
    ['http://127.0.0.1:4000/', 'http://127.0.0.1:4000'],
    ['http://localhost:4000', 'http://localhost:4000'],
    ['http://[::1]:4000', 'http://[::1]:4000'],
    ['http://127.1.2.3:4000', 'http://127.1.2.3:4000'],
    ['https://duo-emulator.example.com', 'https://duo-emulator.example.com'],
  ])('accepts apiBaseUrl %s and derives every endpoint from it', (apiBaseUrl, base) => {
    const client = build(validOptions({ apiBaseUrl }));
    expect(client.config.baseUrl).toBe(base);
    expect(client.config.healthCheckUrl).toBe(`${base}/oauth/v1/health_check`);
    expect(client.config.authorizeUrl).toBe(`${base}/oauth/v1/authorize`);
    expect(client.config.tokenUrl).toBe(`${base}/oauth/v1/token`);
  });

  it('makes apiHost optional', () => {
    const { apiHost: _omit, ...rest } = validOptions();
    const client = build({ ...rest, apiBaseUrl: 'http://127.0.0.1:4000' });
    expect(client.config.baseUrl).toBe('http://127.0.0.1:4000');
  });

  it('still validates an apiHost given beside it', () => {
    refuses({ ...validOptions(), apiBaseUrl: 'http://127.0.0.1:4000', apiHost: 'https://api-x.duosecurity.com' }, 'apiHost');
  });

  it('wins over apiHost for the endpoints', () => {
    const client = build(validOptions({ apiBaseUrl: 'http://127.0.0.1:4000' }));
    expect(client.config.tokenUrl).toBe('http://127.0.0.1:4000/oauth/v1/token');
  });
});

describe('configuration: numbers and choices', () => {
  it.each([
    ['timeoutMs', 99],
    ['timeoutMs', 120_001],
    ['timeoutMs', 0],
    ['timeoutMs', -1000],
    ['timeoutMs', 1500.5],
    ['timeoutMs', Number.NaN],
    ['timeoutMs', Number.POSITIVE_INFINITY],
    ['timeoutMs', '1000'],
    ['timeoutMs', null],
    ['maxConcurrentRequests', 0],
    ['maxConcurrentRequests', 1.5],
    ['maxConcurrentRequests', '10'],
    ['clockSkewWarningSeconds', 0],
    ['clockSkewWarningSeconds', 3601],
  ])('refuses %s = %s', (option, value) => {
    refuses({ ...validOptions(), [option]: value }, option);
  });

  it('accepts the bounds of timeoutMs', () => {
    expect(build(validOptions({ timeoutMs: 100 })).config.timeoutMs).toBe(100);
    expect(build(validOptions({ timeoutMs: 120_000 })).config.timeoutMs).toBe(120_000);
  });

  it('keeps maxConcurrentRequests and clockSkewWarningSeconds', () => {
    const client = build(validOptions({ maxConcurrentRequests: 1, clockSkewWarningSeconds: 5 }));
    expect(client.config.maxConcurrentRequests).toBe(1);
    expect(client.config.clockSkewWarningSeconds).toBe(5);
  });

  it.each(['insensitive', 'EXACT', 'Case-Insensitive', 1, true, null])('refuses usernameMatch = %s', (usernameMatch) => {
    refuses({ ...validOptions(), usernameMatch }, 'usernameMatch');
  });

  it.each(['exact', 'case-insensitive'] as const)('accepts usernameMatch = %s', (usernameMatch) => {
    expect(build(validOptions({ usernameMatch })).config.usernameMatch).toBe(usernameMatch);
  });
});

describe('configuration: proxy and ca', () => {
  it.each([
    ['not a URL', 'not a url'],
    ['a host:port without scheme', 'proxy.internal:3128x'],
    ['a socks URL', 'socks5://proxy.internal:1080'],
    ['a number', 3128],
    ['null', null],
  ])('refuses a proxy that is %s', (_name, proxy) => {
    refuses({ ...validOptions(), proxy }, 'proxy');
  });

  it('accepts an http proxy URL', () => {
    expect(build(validOptions({ proxy: 'http://proxy.internal:3128' })).config.proxy).toBe('http://proxy.internal:3128');
  });

  it.each([
    ['a number', 42],
    ['an object', { pem: 'x' }],
    ['an empty list', []],
    ['a list with a number', [rootCertificates[0], 42]],
    ['null', null],
    ['true', true],
  ])('refuses a ca that is %s', (_name, ca) => {
    refuses({ ...validOptions(), ca }, 'ca');
  });

  it.each([
    ['a PEM string', rootCertificates[0]],
    ['a Buffer', Buffer.from(rootCertificates[0] ?? '')],
    ['a list of both', [rootCertificates[0], Buffer.from(rootCertificates[1] ?? '')]],
  ])('accepts a ca that is %s', (_name, ca) => {
    expect(build(validOptions({ ca: ca as DuoClientOptions['ca'] })).config.ca).toBe(ca);
  });
});

describe('configuration: the client never shows its secret', () => {
  it('util.inspect and JSON.stringify of a client do not contain the secret', () => {
    const client = build(validOptions({ apiBaseUrl: 'http://127.0.0.1:4000' }));
    const renderings = [
      inspect(client),
      inspect(client, { showHidden: true, depth: Infinity, getters: true }),
      JSON.stringify(client),
      JSON.stringify({ nested: { client } }),
      String(client),
      JSON.stringify(Object.getOwnPropertyDescriptors(client)),
    ];
    for (const text of renderings) {
      expect(text).not.toContain(CLIENT_SECRET);
      expect(text).not.toContain(CLIENT_SECRET.slice(0, 12));
    }
    // And the useful parts are there.
    expect(JSON.stringify(client)).toContain(CLIENT_ID);
    expect(inspect(client)).toContain(CLIENT_ID);
  });

  it('does not keep the options object (so a later mutation or dump of it cannot matter)', () => {
    const options = validOptions();
    const client = build(options);
    for (const value of Object.values(client)) expect(value).not.toBe(options);
    expect(Object.keys(client)).not.toContain('clientSecret');
  });
});

describe('configuration: where each value comes from, and empty values (issue 11 item 6)', () => {
  const withoutOption = (option: string): Record<string, unknown> => {
    const options: Record<string, unknown> = { ...validOptions() };
    delete options[option];
    return options;
  };

  it.each([
    ['clientId', 'DUO_CLIENT_ID', /Client ID of your Web SDK application from the Duo Admin Panel/],
    ['clientSecret', 'DUO_CLIENT_SECRET', /Client secret of your Web SDK application from the Duo Admin Panel/],
    ['apiHost', 'DUO_API_HOST', /API hostname of your Web SDK application from the Duo Admin Panel/],
    ['redirectUri', 'DUO_REDIRECT_URI', /your own application's callback URL.*@DuoCallback\(\)/],
  ])('a required %s given as "" is reported as empty, with the env variable and where the value comes from', (option, envName, source) => {
    const message = refuses({ ...validOptions(), [option]: '' }, option).message;
    expect(message).toContain('is empty');
    expect(message).toContain(envName);
    expect(message).toMatch(source);
    expect(message).not.toContain('is missing');
  });

  it.each([
    ['clientId', /Duo Admin Panel/],
    ['clientSecret', /Duo Admin Panel/],
    ['apiHost', /Duo Admin Panel.*set apiBaseUrl instead/],
    ['redirectUri', /callback URL/],
  ])('a missing %s is reported as missing, with where the value comes from', (option, source) => {
    const message = refuses(withoutOption(option), option).message;
    expect(message).toContain('is missing');
    expect(message).toMatch(source);
  });

  it('says redirectUri is your own callback URL, never that it comes from the Duo Admin Panel', () => {
    for (const redirectUri of [undefined, '', 'duo/callback', 42]) {
      const options = redirectUri === undefined ? withoutOption('redirectUri') : { ...validOptions(), redirectUri };
      const message = refuses(options, 'redirectUri').message;
      expect(message).toMatch(/your own application's callback URL/);
      expect(message).not.toMatch(/set it from your Duo Admin Panel|copy .* from the Duo Admin Panel/);
    }
  });

  it('says apiBaseUrl is only for the emulator or a test double, never that it comes from the Duo Admin Panel', () => {
    for (const apiBaseUrl of ['not a url', 'ftp://127.0.0.1:4000', 42]) {
      const message = refuses({ ...validOptions(), apiBaseUrl }, 'apiBaseUrl').message;
      expect(message).toMatch(/only for the Duo emulator or a test double/);
      expect(message).not.toMatch(/Admin Panel/);
    }
  });

  it('names the Duo Admin Panel for a malformed clientId, clientSecret or apiHost', () => {
    expect(refuses({ ...validOptions(), clientId: 'DI123' }, 'clientId').message).toMatch(/Duo Admin Panel/);
    expect(refuses({ ...validOptions(), clientSecret: 'x'.repeat(39) }, 'clientSecret').message).toMatch(/Duo Admin Panel/);
    expect(refuses({ ...validOptions(), apiHost: `https://${API_HOST}` }, 'apiHost').message).toMatch(/Duo Admin Panel/);
  });

  it('an optional apiBaseUrl given as "" counts as not given: the endpoints come from apiHost', () => {
    const config = resolveClientConfig(validOptions({ apiBaseUrl: '' }));
    expect(config.baseUrl).toBe(`https://${API_HOST}`);
    expect(config.tokenUrl).toBe(`https://${API_HOST}/oauth/v1/token`);
  });

  it('apiBaseUrl and apiHost both "": apiHost is reported as empty (it is then required)', () => {
    expect(refuses({ ...validOptions(), apiBaseUrl: '', apiHost: '' }, 'apiHost').message).toContain('is empty');
  });

  it('an apiHost given as "" beside an apiBaseUrl counts as not given', () => {
    expect(resolveClientConfig(validOptions({ apiBaseUrl: 'http://127.0.0.1:4000', apiHost: '' })).baseUrl).toBe('http://127.0.0.1:4000');
  });

  it('optional proxy, ca, usernameMatch and tls.pinning given as "" count as not given (their defaults apply)', () => {
    const config = resolveClientConfig({ ...validOptions(), proxy: '', ca: '', usernameMatch: '' as never, tls: { pinning: '' as never } });
    expect(config.proxy).toBeUndefined();
    expect('proxy' in config).toBe(false);
    expect(config.ca).toBeUndefined();
    expect('ca' in config).toBe(false);
    expect(config.usernameMatch).toBe('exact');
    expect(config.tls.pinning).toBe('duo');
  });

  it('a proxy given as "" is no proxy: the client calls Duo directly', async () => {
    const server = await startServer((_req, res) => sendJson(res, 200, { stat: 'OK', response: { timestamp: nowSeconds() } }));
    try {
      const client = build(localOptions(server.url, { proxy: '' }));
      await expect(client.healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
      expect(server.requests.map((request) => `${request.method} ${request.path}`)).toEqual(['POST /oauth/v1/health_check']);
    } finally {
      await server.close();
    }
  });

  it.each([
    ['proxy', null],
    ['apiBaseUrl', null],
    ['usernameMatch', null],
  ])('an optional %s given as null is refused (only "" counts as not given)', (option, value) => {
    expect(refuses({ ...validOptions(), [option]: value }, option).message).toMatch(/must be a string, not null/);
  });
});

describe('configuration: ca holds certificates', () => {
  it('a file path instead of the file\'s contents is refused at startup, saying so', () => {
    const message = refuses({ ...validOptions(), ca: '/etc/ssl/certs/proxy-ca.pem' }, 'ca').message;
    expect(message).toMatch(/holds no PEM certificate/);
    expect(message).toMatch(/contents .*not its path/);
  });

  it('an empty Buffer (an empty file) is refused', () => {
    refuses({ ...validOptions(), ca: Buffer.alloc(0) }, 'ca');
  });

  it('a PEM block that does not parse is refused, naming the list item', () => {
    const broken = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    const message = refuses({ ...validOptions(), ca: [rootCertificates[0] ?? '', broken] }, 'ca').message;
    expect(message).toMatch(/does not parse \(item 2\)/);
  });

  it('a bundle of several certificates in one string is accepted', () => {
    const bundle = `${rootCertificates[0]}\n${rootCertificates[1]}\n`;
    expect(resolveClientConfig(validOptions({ ca: bundle })).ca).toBe(bundle);
  });
});

describe('apiHost that only the URL parser refuses (a finding of the outside review)', () => {
  it('never a bare TypeError: an IDNA label this Node\'s URL parser refuses names the option (newer Nodes accept this one)', async () => {
    const { resolveClientConfig, DuoConfigError } = await import('../../src/protocol/index.js');
    const options = { clientId: 'DIXXXXXXXXXXXXXXXXXX', clientSecret: 'x'.repeat(40), apiHost: 'xn--api-12345678.duosecurity.com', redirectUri: 'https://app.example.com/duo/callback' };
    let parses = true;
    try {
      new URL(`https://${options.apiHost}`);
    } catch {
      parses = false;
    }
    if (parses) {
      expect(resolveClientConfig(options).baseUrl).toBe(`https://${options.apiHost}`);
    } else {
      expect(() => resolveClientConfig(options)).toThrow(DuoConfigError);
      expect(() => resolveClientConfig(options)).toThrow(/Duo option "apiHost" is not a valid hostname/);
    }
  });
});
