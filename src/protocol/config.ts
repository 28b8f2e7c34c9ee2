import { isIP } from 'node:net';
import { DuoConfigError } from './errors.js';

export type UsernameMatch = 'exact' | 'case-insensitive';

/** What the protocol client needs: the Duo application's credentials and how to reach Duo. */
export interface DuoClientOptions {
  /** The Web SDK application's Client ID (formerly integration key): 20 alphanumeric characters. */
  clientId: string;
  /** The Client secret (formerly secret key): 40 characters. Never logged or echoed. */
  clientSecret: string;
  /** Duo's API hostname, e.g. `api-XXXXXXXX.duosecurity.com`: a bare hostname. Optional when `apiBaseUrl` is set. */
  apiHost?: string;
  /** Where Duo sends the browser back: absolute, https (http only for localhost), at most 256 characters. */
  redirectUri: string;
  /**
   * Overrides `https://{apiHost}`, for the emulator in development and tests, e.g.
   * `http://127.0.0.1:4000`. Plain http is accepted only for loopback hosts.
   */
  apiBaseUrl?: string;
  /** Hard deadline of one call to Duo, body included, in milliseconds. Default 10000. */
  timeoutMs?: number;
  /** Extra trusted CA certificates (PEM) for Duo's TLS, e.g. behind a TLS-inspecting proxy. */
  ca?: string | Buffer | Array<string | Buffer>;
  /**
   * An HTTP(S) proxy URL for calls to Duo, e.g. `http://proxy.internal:3128`, with
   * `user:password@` when the proxy wants them (sent as Proxy-Authorization). The
   * credentials go to the HTTP client only: the resolved configuration shows them as `***`.
   */
  proxy?: string;
  /**
   * How the id_token's `preferred_username` is compared with the username the login
   * started with. Duo lower-cases usernames by default; use `case-insensitive` only when
   * your usernames are case-insensitive too. Default `exact`.
   */
  usernameMatch?: UsernameMatch;
  /** At most this many calls to Duo at once; more fail fast with 503. Default 128. */
  maxConcurrentRequests?: number;
  /** A clock offset against Duo beyond this many seconds is reported as a warning. Default 30. */
  clockSkewWarningSeconds?: number;
}

/** The validated configuration; the secret is kept apart, in a key. */
export interface DuoEndpoints {
  readonly clientId: string;
  readonly redirectUri: string;
  /** `https://{apiHost}` or `apiBaseUrl`, without a trailing slash: the request JWT's audience. */
  readonly baseUrl: string;
  readonly healthCheckUrl: string;
  readonly authorizeUrl: string;
  /** Also the issuer of Duo's id_tokens. */
  readonly tokenUrl: string;
}

export interface ResolvedDuoClientConfig extends DuoEndpoints {
  readonly timeoutMs: number;
  readonly usernameMatch: UsernameMatch;
  readonly maxConcurrentRequests: number;
  readonly clockSkewWarningSeconds: number;
  readonly ca?: string | Buffer | Array<string | Buffer>;
  /**
   * The proxy, for display: its user and password, if any, replaced by `***`
   * (`http://***:***@proxy.internal:3128/`). The credentials themselves are never
   * kept in the configuration, so no log, inspect or JSON of it can show them.
   */
  readonly proxy?: string;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127(\.\d{1,3}){3}$/.test(hostname);
}

function fail(option: string, problem: string): never {
  throw new DuoConfigError(`Duo option "${option}" ${problem}`);
}

function requireString(options: Record<string, unknown>, option: string): string {
  const value = options[option];
  if (value === undefined || value === null || value === '') fail(option, 'is missing; set it from your Duo Admin Panel application.');
  if (typeof value !== 'string') fail(option, `must be a string, not ${typeof value}.`);
  return value;
}

function checkClientId(value: string): void {
  if (/\s/.test(value)) fail('clientId', 'contains white space (a stray newline or space from an env file?); remove it.');
  if (!/^[A-Za-z0-9]{20}$/.test(value)) {
    fail('clientId', `must be exactly 20 letters and digits, as the Duo Admin Panel shows it (got ${value.length} characters).`);
  }
}

function checkClientSecret(value: string): void {
  // Never echo any part of the secret: only its length.
  if (/\s/.test(value)) fail('clientSecret', 'contains white space (a stray newline or space from an env file?); remove it.');
  if (value.length !== 40) fail('clientSecret', `must be exactly 40 characters (got ${value.length}); copy the Client secret from the Duo Admin Panel.`);
  if (!/^[\x21-\x7e]{40}$/.test(value)) fail('clientSecret', 'must contain printable ASCII characters only.');
}

function checkApiHost(value: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) fail('apiHost', 'must be a bare hostname such as api-XXXXXXXX.duosecurity.com, without "https://".');
  if (/[/?#@:]/.test(value)) fail('apiHost', 'must be a bare hostname such as api-XXXXXXXX.duosecurity.com, without a path, port or user info.');
  if (isIP(value) !== 0 || isIP(value.replace(/^\[|\]$/g, '')) !== 0) fail('apiHost', 'must be a hostname, not an IP address.');
  if (!HOSTNAME.test(value)) fail('apiHost', 'is not a valid hostname.');
  return value.toLowerCase();
}

function checkApiBaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail('apiBaseUrl', 'is not an absolute URL such as http://127.0.0.1:4000.');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail('apiBaseUrl', 'must use https (or http for a loopback emulator).');
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    fail('apiBaseUrl', 'may use plain http only for a loopback host (localhost, 127.0.0.1, [::1]); use https.');
  }
  if (url.username || url.password) fail('apiBaseUrl', 'must not contain user info.');
  if (url.pathname !== '/' || url.search || url.hash) fail('apiBaseUrl', 'must be an origin only (scheme, host, port), without a path, query or fragment.');
  return url.origin;
}

function checkRedirectUri(value: string): void {
  // The URL parser would silently trim or drop these, while the raw string goes to Duo and never matches.
  if (/[\s\x00-\x1f\x7f]/.test(value)) {
    fail('redirectUri', 'contains white space or control characters (a stray newline or space from an env file?); remove them.');
  }
  if (value.length > 256) fail('redirectUri', `must be at most 256 characters (got ${value.length}).`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail('redirectUri', 'must be an absolute URL such as https://app.example.com/duo/callback.');
  }
  if (url.username || url.password) fail('redirectUri', 'must not contain user info.');
  if (url.hash) fail('redirectUri', 'must not contain a fragment (#...).');
  if (url.protocol === 'http:') {
    if (url.hostname !== 'localhost' && url.hostname !== '127.0.0.1') {
      fail('redirectUri', 'must use https; plain http is allowed only for localhost and 127.0.0.1 during development.');
    }
    return;
  }
  if (url.protocol !== 'https:') fail('redirectUri', 'must use https.');
  if (isIP(url.hostname.replace(/^\[|\]$/g, '')) !== 0) fail('redirectUri', 'must use a hostname, not an IP address (Duo requires it).');
}

/** The proxy URL with any user and password replaced by `***`; as given when it has none. */
function printableProxy(proxy: string): string {
  const url = new URL(proxy);
  if (!url.username && !url.password) return proxy;
  if (url.username) url.username = '***';
  if (url.password) url.password = '***';
  return url.href;
}

/** A whole-number option within bounds, or its default. Shared with the Nest layer's resolver (not exported from the protocol entry). */
export function checkInteger(options: Record<string, unknown>, option: string, fallback: number, min: number, max: number): number {
  const value = options[option];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(option, `must be a whole number from ${min} to ${max}.`);
  }
  return value;
}

/** Validates the options and derives every endpoint from them. Throws DuoConfigError naming the option. */
export function resolveClientConfig(input: DuoClientOptions): ResolvedDuoClientConfig {
  if (input === null || typeof input !== 'object') throw new DuoConfigError('Duo options are missing: pass clientId, clientSecret, apiHost and redirectUri.');
  const options = input as unknown as Record<string, unknown>;
  const clientId = requireString(options, 'clientId');
  checkClientId(clientId);
  checkClientSecret(requireString(options, 'clientSecret'));
  const redirectUri = requireString(options, 'redirectUri');
  checkRedirectUri(redirectUri);

  let baseUrl: string;
  if (options.apiBaseUrl !== undefined) {
    baseUrl = checkApiBaseUrl(requireString(options, 'apiBaseUrl'));
    if (options.apiHost !== undefined) checkApiHost(requireString(options, 'apiHost'));
  } else {
    baseUrl = `https://${checkApiHost(requireString(options, 'apiHost'))}`;
  }

  const usernameMatch = options.usernameMatch ?? 'exact';
  if (usernameMatch !== 'exact' && usernameMatch !== 'case-insensitive') fail('usernameMatch', 'must be "exact" or "case-insensitive".');
  if (options.proxy !== undefined) {
    const proxy = requireString(options, 'proxy');
    let url: URL | undefined;
    try {
      url = new URL(proxy);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) fail('proxy', 'must be an http:// or https:// proxy URL.');
  }
  const ca = options.ca;
  if (ca !== undefined) {
    const ok = (item: unknown): boolean => typeof item === 'string' || Buffer.isBuffer(item);
    if (!(ok(ca) || (Array.isArray(ca) && ca.length > 0 && ca.every(ok)))) fail('ca', 'must be a PEM string, a Buffer, or a list of them.');
  }

  return Object.freeze({
    clientId,
    redirectUri,
    baseUrl,
    healthCheckUrl: `${baseUrl}/oauth/v1/health_check`,
    authorizeUrl: `${baseUrl}/oauth/v1/authorize`,
    tokenUrl: `${baseUrl}/oauth/v1/token`,
    timeoutMs: checkInteger(options, 'timeoutMs', 10_000, 100, 120_000),
    usernameMatch: usernameMatch as UsernameMatch,
    maxConcurrentRequests: checkInteger(options, 'maxConcurrentRequests', 128, 1, 100_000),
    clockSkewWarningSeconds: checkInteger(options, 'clockSkewWarningSeconds', 30, 1, 3600),
    ...(ca === undefined ? {} : { ca: ca as ResolvedDuoClientConfig['ca'] }),
    ...(options.proxy === undefined ? {} : { proxy: printableProxy(options.proxy as string) }),
  });
}
