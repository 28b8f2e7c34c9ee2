import type { JWTPayload } from 'jose';
import { resolveClientConfig, type DuoClientOptions, type ResolvedDuoClientConfig } from './config.js';
import { DuoError, upstreamText, type DuoTokenCheck } from './errors.js';
import { DuoHttp, rateLimited } from './http.js';
import { HsKey, JwtVerifyError, epochSeconds, signJwt, verifyJwt, type JwtFailure } from './jwt.js';
import { MAX_STATE_LENGTH, MIN_STATE_LENGTH, generateJti, generateNonce, generateState, isWellFormedState } from './random.js';
import { expectNoNonce, type DuoNonce } from './nonce.js';
import type { DuoAuthorization, DuoAuthUrlExtras, DuoAuthUrlOptions, DuoHealthCheckResult, DuoIdTokenClaims } from './types.js';
import { duoUserAgent } from './version.js';

/** Which check a JWT verification failure is, for the error's structured detail. */
const JWT_CHECKS: Partial<Record<JwtFailure, DuoTokenCheck>> = { malformed: 'malformed', algorithm: 'alg', signature: 'signature', expired: 'exp', not_yet_valid: 'nbf' };

/** Checks beyond the username and nonce. */
export interface DuoTokenChecks {
  /** The `max_age` the login was started with: `auth_time` must be at most this old, in Duo's clock. */
  maxAge?: number;
  /**
   * Duo's clock minus this server's, in seconds, as a health check measured it
   * (`clockOffsetSeconds`): `auth_time` is Duo's clock, so its age is taken there. Default 0.
   */
  clockOffsetSeconds?: number;
}

/** Seconds of clock leeway on every time claim, as Duo's SDKs allow. */
export const CLOCK_LEEWAY_SECONDS = 60;
/** Lifetime of the JWTs we sign (client assertion, request JWT), as Duo's SDKs use. */
const JWT_LIFETIME_SECONDS = 300;
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Characters URLSearchParams leaves as they are (application/x-www-form-urlencoded): a value of only these needs no encoding. */
const FORM_SAFE = /^[A-Za-z0-9*._-]*$/;

/**
 * Duo's Universal Prompt protocol (Web SDK v4): health check, authorize URL,
 * code exchange and every id_token check, stricter than Duo's own SDKs.
 * Stateless apart from its configuration, key and connection pool.
 */
export class DuoClient {
  readonly config: ResolvedDuoClientConfig;
  readonly #key: HsKey;
  readonly #http: DuoHttp;
  /**
   * The authorize URL around the request JWT: its parameters are the same for
   * every login of this client (the config is frozen), so they are encoded once;
   * a login appends its JWT (base64url and dots, which need no encoding) and nonce.
   * The order and encoding are URLSearchParams' own, as each login built them before.
   */
  readonly #authorizeHead: string;
  readonly #authorizeTail: string;

  constructor(options: DuoClientOptions) {
    this.config = resolveClientConfig(options);
    this.#key = new HsKey(options.clientSecret);
    this.#authorizeHead = `${this.config.authorizeUrl}?${new URLSearchParams({ response_type: 'code', client_id: this.config.clientId })}&request=`;
    this.#authorizeTail = `&${new URLSearchParams({ redirect_uri: this.config.redirectUri, scope: 'openid' })}`;
    this.#http = new DuoHttp({
      timeoutMs: this.config.timeoutMs,
      maxConcurrentRequests: this.config.maxConcurrentRequests,
      userAgent: duoUserAgent(this.config.tls.pinning),
      pinning: this.config.tls.pinning,
      ...(this.config.ca === undefined ? {} : { ca: this.config.ca }),
      // The proxy URL as given, credentials included, goes to the HTTP client alone (config.proxy hides them).
      ...(options.proxy === undefined ? {} : { proxy: options.proxy }),
    });
  }

  /** Calls Duo in flight now (for metrics and the load tests). */
  get inFlight(): number {
    return this.#http.inFlight;
  }

  generateState(): string {
    return generateState();
  }

  /** Asks Duo whether it can take a login now, and measures our clock against Duo's. */
  async healthCheck(): Promise<DuoHealthCheckResult> {
    const url = this.config.healthCheckUrl;
    const { status, body } = await this.#http.postForm(
      url,
      { client_id: this.config.clientId, client_assertion: await this.#clientAssertion(url) },
      'health check',
      'health',
    );
    const answer = asObject(body);
    const response = asObject(answer?.response);
    if (answer?.stat === 'OK' && typeof response?.timestamp === 'number' && Number.isFinite(response.timestamp)) {
      const timestamp = response.timestamp;
      const clockOffsetSeconds = timestamp - Date.now() / 1000;
      const rounded = Math.round(clockOffsetSeconds);
      const result: DuoHealthCheckResult = { timestamp, clockOffsetSeconds };
      if (Math.abs(clockOffsetSeconds) > this.config.clockSkewWarningSeconds) {
        result.clockSkewWarning =
          `This server's clock is ${Math.abs(rounded)} s ${rounded > 0 ? 'behind' : 'ahead of'} Duo's. ` +
          `Duo's tokens allow only ${CLOCK_LEEWAY_SECONDS} s of leeway, so logins will fail: synchronise the clock (NTP).`;
      }
      return result;
    }
    // Duo reachable but refusing us (HTTP 4xx, or a FAIL with a 4xxxx code) is not "Duo is down":
    // it must never open fail mode "open". Only other FAIL answers mean Duo is unhealthy.
    const code = typeof answer?.code === 'number' ? answer.code : undefined;
    const refused = (status >= 400 && status < 500) || (code !== undefined && code >= 40000 && code < 50000);
    throw this.#duoFailure(answer, 'health check', refused ? 'duo_request_rejected' : 'duo_unavailable');
  }

  /**
   * Starts one authorization: a fresh state and nonce and the URL to send the
   * browser to. Keep `state` and `nonce` server-side for the callback. The way
   * to start a login; `createAuthUrl()` is for callers that make their own.
   */
  async startAuthorization(username: string, options: DuoAuthUrlExtras = {}): Promise<DuoAuthorization> {
    const state = generateState();
    const nonce = generateNonce();
    const url = await this.createAuthUrl(username, state, { ...options, nonce });
    return { url, state, nonce };
  }

  /**
   * The URL of Duo's prompt for this user, with a signed request JWT (Duo's SDK
   * name). `options.nonce` is required: the login's nonce, sent in the request
   * JWT and as the `nonce` query parameter, or `expectNoNonce` to send none.
   */
  async createAuthUrl(username: string, state: string, options: DuoAuthUrlOptions): Promise<string> {
    checkUsername(username);
    checkOpaque('state', state);
    const nonce = checkNonceChoice((options as Partial<DuoAuthUrlOptions> | undefined)?.nonce, 'createAuthUrl', CREATE_WITHOUT_NONCE);
    const now = epochSeconds();
    const claims: JWTPayload = {
      response_type: 'code',
      scope: 'openid',
      client_id: this.config.clientId,
      redirect_uri: this.config.redirectUri,
      state,
      duo_uname: username,
      use_duo_code_attribute: true,
      iss: this.config.clientId,
      aud: this.config.baseUrl,
      iat: now,
      exp: now + JWT_LIFETIME_SECONDS,
    };
    if (nonce !== undefined) claims.nonce = nonce;
    if (options.destAppName !== undefined) claims.dest_app_name = checkText('destAppName', options.destAppName);
    if (options.displayUsername !== undefined) claims.display_username = checkText('displayUsername', options.displayUsername);
    if (options.maxAge !== undefined) {
      if (!Number.isInteger(options.maxAge) || options.maxAge < 0) {
        throw new DuoError('input_invalid', 'maxAge must be a whole number of seconds, 0 or more.');
      }
      claims.max_age = options.maxAge;
    }
    if (options.promptLogin) claims.prompt = 'login';
    const url = `${this.#authorizeHead}${await signJwt(this.#key, claims)}${this.#authorizeTail}`;
    // Python's and Java's SDKs send the nonce here, Node's and PHP's in the JWT: both, one value, and Duo echoes it either way.
    if (nonce === undefined) return url;
    return FORM_SAFE.test(nonce) ? `${url}&nonce=${nonce}` : `${url}&${new URLSearchParams({ nonce })}`;
  }

  /**
   * Exchanges the code from Duo's callback for the verified id_token claims.
   * Throws a DuoError unless Duo says this very user passed in this very login:
   * `nonce` is the one the login was started with (`startAuthorization()`
   * returns it), or `expectNoNonce` for a login started without one, and then
   * the token must carry none.
   */
  async exchangeAuthorizationCode(code: string, username: string, nonce: DuoNonce, checks: DuoTokenChecks = {}): Promise<DuoIdTokenClaims> {
    checkCode(code);
    checkUsername(username);
    checkNonceChoice(nonce, 'exchangeAuthorizationCode', EXCHANGE_WITHOUT_NONCE);
    const url = this.config.tokenUrl;
    const { status, body } = await this.#http.postForm(
      url,
      {
        grant_type: 'authorization_code',
        code,
        redirect_uri: this.config.redirectUri,
        client_id: this.config.clientId,
        client_assertion_type: CLIENT_ASSERTION_TYPE,
        client_assertion: await this.#clientAssertion(url),
      },
      'token exchange',
    );
    const answer = asObject(body);
    if (status < 200 || status >= 300) {
      if (answer?.error === 'invalid_grant') {
        throw new DuoError('code_invalid', 'Duo refused the authorization code (invalid_grant): it expired, was already used, or was issued for another redirect URI. Start the login again.');
      }
      throw this.#duoFailure(answer, 'token exchange', 'duo_request_rejected');
    }
    if (!answer) throw new DuoError('duo_upstream_invalid', "Duo's token answer is not a JSON object.");
    if (typeof answer.id_token !== 'string') throw new DuoError('duo_upstream_invalid', "Duo's token answer has no id_token.");
    if (typeof answer.token_type !== 'string' || answer.token_type.toLowerCase() !== 'bearer') {
      throw new DuoError('duo_upstream_invalid', `Duo's token answer has token_type ${upstreamText(answer.token_type) ?? 'missing'}; expected Bearer.`);
    }
    return this.verifyIdToken(answer.id_token, username, nonce, checks);
  }

  /** Duo's SDK name for exchangeAuthorizationCode(): the same nonce rule. */
  exchangeAuthorizationCodeFor2FAResult(code: string, username: string, nonce: DuoNonce, checks: DuoTokenChecks = {}): Promise<DuoIdTokenClaims> {
    return this.exchangeAuthorizationCode(code, username, nonce, checks);
  }

  /**
   * Every id_token check, each failure named. Exposed for users who receive
   * tokens another way; `nonce` as for exchangeAuthorizationCode().
   */
  async verifyIdToken(idToken: string, username: string, nonce: DuoNonce, checks: DuoTokenChecks = {}): Promise<DuoIdTokenClaims> {
    const expected = checkNonceChoice(nonce, 'verifyIdToken', EXCHANGE_WITHOUT_NONCE);
    let payload: JWTPayload;
    try {
      payload = await verifyJwt(this.#key, idToken, CLOCK_LEEWAY_SECONDS);
    } catch (error) {
      if (error instanceof JwtVerifyError) {
        const hint = error.failure === 'expired' || error.failure === 'not_yet_valid' ? ' Check that this server\'s clock is right (NTP).' : '';
        throw new DuoError('token_invalid', `Duo's id_token ${error.message}.${hint}`, { check: JWT_CHECKS[error.failure] ?? 'malformed' });
      }
      throw error;
    }
    const invalid = (what: string, check: DuoTokenCheck): DuoError => new DuoError('token_invalid', `Duo's id_token ${what}.`, { check });
    if (payload.iss !== this.config.tokenUrl) throw invalid('has the wrong issuer (iss); check apiHost / apiBaseUrl', 'iss');
    const aud = payload.aud;
    const audOk = aud === this.config.clientId || (Array.isArray(aud) && aud.length === 1 && aud[0] === this.config.clientId);
    if (!audOk) throw invalid('is not for this client (aud must be exactly the client id)', 'aud');
    if (typeof payload.exp !== 'number') throw invalid('has no expiry (exp)', 'exp');
    if (typeof payload.iat !== 'number') throw invalid('has no issue time (iat)', 'iat');
    if (payload.iat > epochSeconds() + CLOCK_LEEWAY_SECONDS) {
      throw invalid("was issued in the future (iat); check that this server's clock is right (NTP)", 'iat');
    }
    if (typeof payload.preferred_username !== 'string') throw invalid('has no preferred_username', 'preferred_username');
    if (!sameUsername(payload.preferred_username, username, this.config.usernameMatch === 'case-insensitive')) {
      throw new DuoError('username_mismatch', 'Duo verified a different user than the one who started this login; the second factor does not count.', { check: 'preferred_username' });
    }
    if (expected === undefined) {
      if (payload.nonce !== undefined) {
        throw new DuoError(
          'nonce_mismatch',
          'The id_token carries a nonce, but this login was started without one (expectNoNonce): it belongs to another login; the second factor does not count.',
        );
      }
    } else if (payload.nonce !== expected) {
      throw new DuoError('nonce_mismatch', 'The id_token belongs to another login (nonce mismatch); the second factor does not count.', { check: 'nonce' });
    }
    if (checks.maxAge !== undefined) {
      // The login asked Duo for an authentication no older than max_age: check that Duo did (OIDC Core 3.1.2.1).
      if (typeof payload.auth_time !== 'number') throw invalid('has no auth_time although max_age was requested', 'auth_time');
      // The age in Duo's clock; auth_time is whole seconds (truncated), so one second of rounding and no more.
      const offset = typeof checks.clockOffsetSeconds === 'number' && Number.isFinite(checks.clockOffsetSeconds) ? checks.clockOffsetSeconds : 0;
      if (Date.now() / 1000 + offset - payload.auth_time > checks.maxAge + 1) {
        throw new DuoError('second_factor_denied', `Duo's authentication is older than the ${checks.maxAge} s this login asked for (max_age); it does not count.`, { check: 'auth_time' });
      }
    }
    const authResult = asObject(payload.auth_result);
    if (authResult?.status !== 'allow') {
      throw new DuoError('second_factor_denied', `Duo did not allow this authentication (status ${upstreamText(authResult?.status, 40) ?? 'missing'}).`, { check: 'auth_result' });
    }
    return payload as DuoIdTokenClaims;
  }

  /** Closes the connection pool. */
  async close(): Promise<void> {
    await this.#http.close();
  }

  toJSON(): Record<string, unknown> {
    return { clientId: this.config.clientId, baseUrl: this.config.baseUrl, redirectUri: this.config.redirectUri };
  }

  async #clientAssertion(audience: string): Promise<string> {
    const now = epochSeconds();
    return signJwt(
      this.#key,
      { iss: this.config.clientId, sub: this.config.clientId, aud: audience, jti: generateJti(), iat: now, exp: now + JWT_LIFETIME_SECONDS },
      'JWT',
    );
  }

  /** Turns Duo's error answers (FAIL or OAuth style) into our errors without echoing the body. */
  #duoFailure(answer: Record<string, unknown> | undefined, what: string, fallback: 'duo_unavailable' | 'duo_request_rejected'): DuoError {
    const message = upstreamText(answer?.message);
    const detail = upstreamText(answer?.message_detail) ?? upstreamText(answer?.error_description);
    const error = upstreamText(answer?.error, 40);
    // Duo's rate-limit FAIL code, should it come with another status than 429.
    if (answer?.code === 42901) return rateLimited(what, undefined);
    if (message === 'invalid_client' || error === 'invalid_client' || answer?.code === 40002) {
      // Duo's FAIL answers carry its clock: a wrong server clock is the usual cause of invalid_client.
      const offset = typeof answer?.timestamp === 'number' ? Math.round(answer.timestamp - Date.now() / 1000) : undefined;
      const clock =
        offset !== undefined && Math.abs(offset) > this.config.clockSkewWarningSeconds
          ? ` This server's clock is ${Math.abs(offset)} s ${offset > 0 ? 'behind' : 'ahead of'} Duo's: synchronise it (NTP) first.`
          : " Check that this server's clock is right.";
      return new DuoError(
        'duo_invalid_client',
        `Duo refused our credentials in the ${what} (invalid_client${detail ? `: ${detail}` : ''}). Check clientId, clientSecret and apiHost against the Duo Admin Panel.${clock}`,
      );
    }
    if (message || error) {
      const text = `${message ?? error}${detail ? `: ${detail}` : ''}`.replace(/\.+$/, '');
      return new DuoError(fallback, `Duo answered the ${what} with an error: ${text}.`);
    }
    return new DuoError('duo_upstream_invalid', `Duo's answer to the ${what} is missing expected data.`);
  }
}

function asObject(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function sameUsername(fromDuo: string, expected: string, caseInsensitive: boolean): boolean {
  if (!caseInsensitive) return fromDuo === expected;
  return fromDuo.localeCompare(expected, undefined, { sensitivity: 'accent' }) === 0 && fromDuo.toLowerCase() === expected.toLowerCase();
}

function checkUsername(username: unknown): asserts username is string {
  if (typeof username !== 'string' || username.length === 0) throw new DuoError('input_invalid', 'The username must be a non-empty string.');
  if (username.length > 512) throw new DuoError('input_invalid', 'The username is longer than 512 characters.');
  if (/[\x00-\x1f\x7f]/.test(username)) throw new DuoError('input_invalid', 'The username contains control characters.');
}

function checkOpaque(name: 'state' | 'nonce', value: unknown): asserts value is string {
  if (isWellFormedState(value)) return;
  const code = name === 'state' ? 'state_invalid' : 'input_invalid';
  if (typeof value !== 'string') throw new DuoError(code, `The ${name} must be a string.`);
  if (value.length < MIN_STATE_LENGTH || value.length > MAX_STATE_LENGTH) {
    throw new DuoError(code, `The ${name} must be ${MIN_STATE_LENGTH} to ${MAX_STATE_LENGTH} characters long.`);
  }
  throw new DuoError(code, `The ${name} may contain only URL-safe characters (A-Z a-z 0-9 - . _ ~).`);
}

const CREATE_WITHOUT_NONCE =
  'createAuthUrl needs options.nonce: a fresh generateNonce(), kept with the state and passed again to the exchange (startAuthorization() does all of it). To send none, pass { nonce: expectNoNonce } explicitly: the id_token is then bound to the user only, not to this login.';
const EXCHANGE_WITHOUT_NONCE =
  'needs the nonce the login was started with (startAuthorization() returns it), or expectNoNonce, explicitly, for a login started without one.';

/**
 * The nonce of a call, or undefined for the explicit `expectNoNonce`. Anything
 * else missing or malformed is input_invalid: the check is never skipped by omission.
 */
function checkNonceChoice(nonce: unknown, call: string, missing: string): string | undefined {
  if (nonce === expectNoNonce) return undefined;
  if (nonce === undefined) throw new DuoError('input_invalid', missing.startsWith(call) ? missing : `${call} ${missing}`);
  checkOpaque('nonce', nonce);
  return nonce;
}

function checkCode(code: unknown): asserts code is string {
  if (typeof code !== 'string' || code.length === 0) throw new DuoError('input_invalid', 'The authorization code is missing.');
  if (code.length > 1024 || !/^[\x21-\x7e]+$/.test(code)) throw new DuoError('input_invalid', 'The authorization code is malformed.');
}

function checkText(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
    throw new DuoError('input_invalid', `${option} must be a string of 1 to 256 characters.`);
  }
  return value;
}
