import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { DuoConfigError } from './errors.js';

export type UsernameMatch = 'exact' | 'case-insensitive';

/**
 * Which root CAs Duo's certificate must lead to:
 * - `duo`: only the roots Duo's own SDKs pin (`src/protocol/duo-roots.ts`, as
 *   this Node ships them), plus the `ca` option. Node's other roots,
 *   `NODE_EXTRA_CA_CERTS` and the system store are not trusted.
 * - `system`: Node's trusted roots as Node uses them by default (plus the `ca`
 *   option); what Duo's SDKs do with pinning disabled (`enableCAPinning: false`).
 * The certificate is verified either way (chain, dates, host name).
 */
export type DuoCaPinning = 'duo' | 'system';

/** TLS settings of the calls to Duo. */
export interface DuoTlsOptions {
  /**
   * `duo` (Duo's root CAs only) or `system` (Node's trusted roots). Default:
   * `duo` for Duo's own hosts (under duosecurity.com or duofederal.com), as Duo's
   * SDKs do; `system` for any other host (the emulator, a test double). Behind a
   * TLS-inspecting proxy, pass its CA in `ca` (trusted in either mode), or use
   * `system`.
   */
  pinning?: DuoCaPinning;
}

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
  /**
   * Extra trusted CA certificates (PEM, the file's contents, not its path) for Duo's
   * TLS, e.g. a TLS-inspecting proxy's CA. Trusted in addition to the roots
   * `tls.pinning` selects (Duo's, or Node's).
   */
  ca?: string | Buffer | Array<string | Buffer>;
  /** TLS settings: Duo's CA pinning. */
  tls?: DuoTlsOptions;
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
  /** The pinning in force, the default resolved (`duo` for Duo's hosts, `system` otherwise). */
  readonly tls: { readonly pinning: DuoCaPinning };
  /**
   * The proxy, for display: its user and password, if any, replaced by `***`
   * (`http://***:***@proxy.internal:3128/`). The credentials themselves are never
   * kept in the configuration, so no log, inspect or JSON of it can show them.
   */
  readonly proxy?: string;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * The domains of Duo's own API hosts (`api-XXXXXXXX.duosecurity.com`, and
 * `api-XXXXXXXX.duofederal.com` for Duo Federal): calls to them are pinned to
 * Duo's root CAs unless `tls.pinning` says otherwise.
 */
export const DUO_API_DOMAINS: readonly string[] = Object.freeze(['duosecurity.com', 'duofederal.com']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** Whether a (lower-case) host name is one of Duo's: under one of DUO_API_DOMAINS. */
export function isDuoHost(hostname: string): boolean {
  // A fully qualified name's trailing dot (api-x.duosecurity.com.) names the same host.
  const name = hostname.endsWith('.') ? hostname.slice(0, -1) : hostname;
  return DUO_API_DOMAINS.some((domain) => name.endsWith(`.${domain}`));
}

/**
 * Where each value comes from, said in the messages about a missing, empty or
 * invalid one: the Duo Admin Panel for Duo's credentials, the app itself for the
 * callback, the emulator for apiBaseUrl.
 */
const WHERE_FROM = {
  clientId: 'copy the Client ID of your Web SDK application from the Duo Admin Panel (Applications > your application)',
  clientSecret: 'copy the Client secret of your Web SDK application from the Duo Admin Panel (Applications > your application)',
  apiHost:
    'copy the API hostname of your Web SDK application from the Duo Admin Panel, such as api-XXXXXXXX.duosecurity.com (for the emulator or a test double, set apiBaseUrl instead)',
  redirectUri:
    "set it to your own application's callback URL, the absolute URL of the route that receives Duo's answer (with nestjs-duo, the route with @DuoCallback()), such as https://app.example.com/duo/callback (it does not come from the Duo Admin Panel)",
  apiBaseUrl: 'it is only for the Duo emulator or a test double (leave it out for real Duo: apiHost is used)',
} as const;

type RequiredOption = 'clientId' | 'clientSecret' | 'apiHost' | 'redirectUri';

/** The env variable names the README and the sample use, for the "is empty" message. */
const ENV_NAMES: Record<RequiredOption, string> = {
  clientId: 'DUO_CLIENT_ID',
  clientSecret: 'DUO_CLIENT_SECRET',
  apiHost: 'DUO_API_HOST',
  redirectUri: 'DUO_REDIRECT_URI',
};

function fail(option: string, problem: string): never {
  throw new DuoConfigError(`Duo option "${option}" ${problem}`);
}

/** `typeof`, with null and arrays named as such. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/** A required string option: missing, empty (an env variable set to nothing) and non-strings each say so, and where the value comes from. */
function requireString(options: Record<string, unknown>, option: RequiredOption): string {
  const value = options[option];
  if (value === undefined || value === null) fail(option, `is missing: ${WHERE_FROM[option]}.`);
  if (value === '') {
    fail(option, `is empty (an environment variable such as ${ENV_NAMES[option]} that is set to nothing?): ${WHERE_FROM[option]}.`);
  }
  if (typeof value !== 'string') fail(option, `must be a string, not ${kindOf(value)}: ${WHERE_FROM[option]}.`);
  return value;
}

/**
 * An optional string option: left out, or given as '' (an env variable that is
 * set but empty, `proxy: process.env.HTTPS_PROXY`), it is not given. Anything
 * else must be a string.
 */
function optionalString(options: Record<string, unknown>, option: string, hint = '', name = option): string | undefined {
  const value = options[option];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') fail(name, `must be a string, not ${kindOf(value)}${hint}.`);
  return value;
}

function checkClientId(value: string): void {
  if (/\s/.test(value)) fail('clientId', 'contains white space (a stray newline or space from an env file?); remove it.');
  if (!/^[A-Za-z0-9]{20}$/.test(value)) {
    fail('clientId', `must be exactly 20 letters and digits, as the Duo Admin Panel shows it (got ${value.length} characters): ${WHERE_FROM.clientId}.`);
  }
}

function checkClientSecret(value: string): void {
  // Never echo any part of the secret: only its length.
  if (/\s/.test(value)) fail('clientSecret', 'contains white space (a stray newline or space from an env file?); remove it.');
  if (value.length !== 40) fail('clientSecret', `must be exactly 40 characters (got ${value.length}): ${WHERE_FROM.clientSecret}.`);
  if (!/^[\x21-\x7e]{40}$/.test(value)) fail('clientSecret', `must contain printable ASCII characters only: ${WHERE_FROM.clientSecret}.`);
}

function checkApiHost(value: string): string {
  const bare = "must be a bare hostname such as api-XXXXXXXX.duosecurity.com, as the Duo Admin Panel shows it";
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) fail('apiHost', `${bare}, without "https://".`);
  if (/[/?#@:]/.test(value)) fail('apiHost', `${bare}, without a path, port or user info.`);
  if (isIP(value) !== 0 || isIP(value.replace(/^\[|\]$/g, '')) !== 0) {
    fail('apiHost', `must be a hostname, not an IP address: ${WHERE_FROM.apiHost}.`);
  }
  if (!HOSTNAME.test(value)) fail('apiHost', `is not a valid hostname: ${WHERE_FROM.apiHost}.`);
  try {
    new URL(`https://${value}`); // an invalid IDNA label (xn--...) passes the pattern, not the URL parser
  } catch {
    fail('apiHost', `is not a valid hostname: ${WHERE_FROM.apiHost}.`);
  }
  return value.toLowerCase();
}

function checkApiBaseUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail('apiBaseUrl', `is not an absolute URL such as http://127.0.0.1:4000; ${WHERE_FROM.apiBaseUrl}.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail('apiBaseUrl', `must use https (or http for a loopback emulator); ${WHERE_FROM.apiBaseUrl}.`);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    fail('apiBaseUrl', 'may use plain http only for a loopback host (localhost, 127.0.0.1, [::1]); use https.');
  }
  if (url.username || url.password) fail('apiBaseUrl', 'must not contain user info.');
  if (url.pathname !== '/' || url.search || url.hash) fail('apiBaseUrl', 'must be an origin only (scheme, host, port), without a path, query or fragment.');
  return url;
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
    fail('redirectUri', `must be an absolute URL: ${WHERE_FROM.redirectUri}.`);
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

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * `ca`: PEM text (a string or a file's bytes), one or a list. Node would
 * silently ignore text that holds no certificate (a file path given for its
 * contents, say), so each item must hold at least one, and each must parse.
 */
function checkCa(ca: unknown): void {
  const items: unknown[] = Array.isArray(ca) ? ca : [ca];
  if (items.length === 0) fail('ca', 'is an empty list; leave it out, or pass PEM certificates.');
  items.forEach((item, index) => {
    const which = items.length === 1 ? '' : ` (item ${index + 1})`;
    if (typeof item !== 'string' && !Buffer.isBuffer(item)) fail('ca', `must be a PEM string, a Buffer, or a list of them${which}, not ${kindOf(item)}.`);
    const blocks = item.toString('latin1').match(PEM_CERTIFICATE) ?? [];
    if (blocks.length === 0) {
      fail('ca', `holds no PEM certificate ("-----BEGIN CERTIFICATE-----")${which}: pass the certificate file's contents (readFileSync(path)), not its path.`);
    }
    for (const block of blocks) {
      try {
        new X509Certificate(block);
      } catch {
        fail('ca', `holds a certificate that does not parse${which}; check the PEM file.`);
      }
    }
  });
}

const TLS_KEYS: ReadonlySet<string> = new Set(['pinning']);

/** `tls.pinning`, with its default: `duo` for Duo's own hosts over https, `system` for any other. */
function resolvePinning(options: Record<string, unknown>, base: URL): DuoCaPinning {
  const tls = options.tls;
  let pinning: string | undefined;
  if (tls !== undefined) {
    if (tls === null || typeof tls !== 'object' || Array.isArray(tls)) fail('tls', `must be an object such as { pinning: 'system' }, not ${kindOf(tls)}.`);
    for (const key of Object.keys(tls)) if (!TLS_KEYS.has(key)) fail(`tls.${key}`, 'is not an option of "tls" (it has "pinning" only).');
    pinning = optionalString(tls as Record<string, unknown>, 'pinning', ': "duo" or "system"', 'tls.pinning');
    if (pinning !== undefined && pinning !== 'duo' && pinning !== 'system') {
      fail('tls.pinning', 'must be "duo" (trust only the root CAs Duo\'s SDKs pin) or "system" (Node\'s trusted roots; the certificate is still verified).');
    }
  }
  if (pinning === 'duo' && base.protocol !== 'https:') {
    fail('tls.pinning', `is "duo", but apiBaseUrl uses plain http (no TLS, nothing to pin); use https, or leave tls.pinning out for the emulator.`);
  }
  return (pinning as DuoCaPinning | undefined) ?? (base.protocol === 'https:' && isDuoHost(base.hostname) ? 'duo' : 'system');
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

/**
 * Validates the options and derives every endpoint from them. Throws
 * DuoConfigError naming the option and where its value comes from. An optional
 * option given as '' (an env variable that is set but empty) counts as not given;
 * a required one given as '' is reported as empty.
 */
export function resolveClientConfig(input: DuoClientOptions): ResolvedDuoClientConfig {
  if (input === null || typeof input !== 'object') {
    throw new DuoConfigError(
      'Duo options are missing: pass clientId, clientSecret and apiHost (from your Web SDK application in the Duo Admin Panel) and redirectUri (your own callback URL).',
    );
  }
  const options = input as unknown as Record<string, unknown>;
  const clientId = requireString(options, 'clientId');
  checkClientId(clientId);
  checkClientSecret(requireString(options, 'clientSecret'));
  const redirectUri = requireString(options, 'redirectUri');
  checkRedirectUri(redirectUri);

  const apiBaseUrl = optionalString(options, 'apiBaseUrl', `; ${WHERE_FROM.apiBaseUrl}`);
  let base: URL;
  if (apiBaseUrl !== undefined) {
    base = checkApiBaseUrl(apiBaseUrl);
    const apiHost = optionalString(options, 'apiHost', `: ${WHERE_FROM.apiHost}`);
    if (apiHost !== undefined) checkApiHost(apiHost);
  } else {
    base = new URL(`https://${checkApiHost(requireString(options, 'apiHost'))}`);
  }
  const baseUrl = base.origin;

  const usernameMatch = optionalString(options, 'usernameMatch', ': "exact" or "case-insensitive"') ?? 'exact';
  if (usernameMatch !== 'exact' && usernameMatch !== 'case-insensitive') fail('usernameMatch', 'must be "exact" or "case-insensitive".');
  const proxy = optionalString(options, 'proxy', ', an http:// or https:// proxy URL');
  if (proxy !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(proxy);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) fail('proxy', 'must be an http:// or https:// proxy URL, such as http://proxy.internal:3128.');
  }
  // '' (an env variable set to nothing) is no ca; anything else must hold certificates.
  const ca = options.ca === '' ? undefined : options.ca;
  if (ca !== undefined) checkCa(ca);
  const pinning = resolvePinning(options, base);

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
    tls: Object.freeze({ pinning }),
    ...(proxy === undefined ? {} : { proxy: printableProxy(proxy) }),
  });
}
