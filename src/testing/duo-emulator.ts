import { createHash, createHmac, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type RequestOptions,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, type RequestOptions as HttpsRequestOptions } from 'node:https';
import type { Socket } from 'node:net';
import { inspect } from 'node:util';
import type { JWTPayload } from 'jose';
import { HsKey, JwtVerifyError, signJwt, verifyJwt } from '../protocol/jwt.js';
import { renderErrorPage, renderPromptPage } from './emulator-page.js';

/** What the emulated user does at the prompt. */
export type DuoEmulatorMode = 'approve' | 'deny' | 'prompt';

export interface DuoEmulatorTlsOptions {
  /** PEM private key. */
  key: string | Buffer;
  /** PEM certificate (chain), leaf first. */
  cert: string | Buffer;
  /**
   * Only for `authorize()`, which pins `cert`: the CA that signed `cert`, when
   * `cert` is not self-signed.
   */
  ca?: string | Buffer;
}

export interface DuoEmulatorOptions {
  /** Default `DIEMULATOR0000000001` (20 characters, as Duo's). */
  clientId?: string;
  /** Default: 40 random alphanumeric characters, fresh per instance. */
  clientSecret?: string;
  /** Default `approve`. */
  mode?: DuoEmulatorMode;
  /** Default 0 (a free port). The host is always 127.0.0.1. */
  port?: number;
  /** Lifetime of authorization codes (single-use), in seconds; default 60. */
  codeTtlSeconds?: number;
  /** Serve HTTPS instead of HTTP. */
  tls?: DuoEmulatorTlsOptions;
  /** `auth_context.factor` reported in id_tokens; default `duo_push`. */
  factor?: string;
  /** Receives one line per request (method, path, status, reason). Never a secret, code, token, assertion or state. */
  logger?: (line: string) => void;
}

export type DuoEmulatorFailure =
  | 'none'
  | 'health_fail'
  | 'http_500'
  | 'rate_limited'
  | 'no_answer'
  | 'malformed'
  | 'slow'
  | 'token_bad_signature'
  | 'token_alg_none'
  | 'token_alg_hs256'
  | 'token_wrong_iss'
  | 'token_wrong_aud'
  | 'token_multi_aud'
  | 'token_expired'
  | 'token_iat_future'
  | 'token_nbf_future'
  | 'token_no_exp'
  | 'token_no_iat'
  | 'token_wrong_username'
  | 'token_wrong_nonce'
  | 'token_no_nonce'
  | 'token_status_deny'
  | 'token_response_not_object'
  | 'token_response_no_id_token'
  | 'token_type_not_bearer';

export type DuoEmulatorEndpoint = 'health' | 'authorize' | 'token';

export interface DuoEmulatorFailureOptions {
  /** The endpoints that fail; default: the ones the failure is about. */
  endpoints?: DuoEmulatorEndpoint[];
  /** For `slow`: the delay before answering, in milliseconds; default 1000. */
  slowMs?: number;
  /**
   * For `rate_limited`: the `Retry-After` sent with the 429, either whole seconds
   * or a header value sent verbatim (an HTTP date, or anything a client should
   * cope with). Default: no `Retry-After`.
   */
  retryAfter?: number | string;
}

export interface DuoEmulatorStats {
  /** Calls to POST /oauth/v1/health_check (whatever the answer). */
  healthChecks: number;
  /** Calls to GET /oauth/v1/authorize (whatever the answer). */
  authorizations: number;
  /** Calls to POST /oauth/v1/token (whatever the answer). */
  tokenExchanges: number;
  /** Token calls that accepted the code and answered HTTP 200 (also with an injected token_* defect). */
  tokenExchangesOk: number;
  /** Authorization codes handed out. */
  codesIssued: number;
}

/** What the last verified authorize request asked for (for tests of the layers that build it). */
export interface DuoEmulatorAuthorizeRequest {
  username: string;
  redirectUri: string;
  useDuoCodeAttribute: boolean;
  nonce?: string;
  maxAge?: number;
  prompt?: string;
  destAppName?: string;
  destAppId?: string;
  displayUsername?: string;
}

export interface DuoEmulatorClientOptions {
  clientId: string;
  clientSecret: string;
  apiBaseUrl: string;
  redirectUri: string;
}

const HOST = '127.0.0.1';
const API_HOST = 'api-emulator.duosecurity.com';
const DEFAULT_CLIENT_ID = 'DIEMULATOR0000000001';
const PATH_HEALTH = '/oauth/v1/health_check';
const PATH_AUTHORIZE = '/oauth/v1/authorize';
const PATH_TOKEN = '/oauth/v1/token';
const PATH_DECISION = '/emulator/decision';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ID_TOKEN_LIFETIME_SECONDS = 3600;
const MAX_BODY_BYTES = 16 * 1024;
const MAX_FORM_FIELDS = 32;
const MAX_SEEN_JTIS = 500_000;
const MAX_CODES = 100_000;
const MAX_TRANSACTIONS = 10_000;
const TRANSACTION_TTL_MS = 10 * 60_000;
const HELPER_TIMEOUT_MS = 10_000;
const HELPER_MAX_BODY = 256 * 1024;
const HELPER_USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 nestjs-duo-emulator';
const INVALID_ASSERTION = 'The provided client_assertion was invalid.';
const INVALID_GRANT =
  'The provided authorization grant or refresh token is invalid, expired, revoked, does not match the redirection URI.';
const INVALID_REQUEST = 'The request is missing a required parameter, includes an invalid parameter value, or is otherwise malformed.';
const UNSUPPORTED_GRANT = 'The authorization grant type is not supported by the authorization server.';

const MODES: ReadonlySet<string> = new Set<DuoEmulatorMode>(['approve', 'deny', 'prompt']);
const ALL_ENDPOINTS: readonly DuoEmulatorEndpoint[] = ['health', 'authorize', 'token'];
const TOKEN_FAILURES: ReadonlySet<string> = new Set<DuoEmulatorFailure>([
  'token_bad_signature',
  'token_alg_none',
  'token_alg_hs256',
  'token_wrong_iss',
  'token_wrong_aud',
  'token_multi_aud',
  'token_expired',
  'token_iat_future',
  'token_nbf_future',
  'token_no_exp',
  'token_no_iat',
  'token_wrong_username',
  'token_wrong_nonce',
  'token_no_nonce',
  'token_status_deny',
  'token_response_not_object',
  'token_response_no_id_token',
  'token_type_not_bearer',
]);
const FAILURES: ReadonlySet<string> = new Set<string>(['none', 'health_fail', 'http_500', 'rate_limited', 'no_answer', 'malformed', 'slow', ...TOKEN_FAILURES]);

type Route = DuoEmulatorEndpoint | 'decision';
const ROUTES: ReadonlyMap<string, { route: Route; method: string }> = new Map([
  [PATH_HEALTH, { route: 'health' as Route, method: 'POST' }],
  [PATH_AUTHORIZE, { route: 'authorize' as Route, method: 'GET' }],
  [PATH_TOKEN, { route: 'token' as Route, method: 'POST' }],
  [PATH_DECISION, { route: 'decision' as Route, method: 'POST' }],
]);

/** One approved login, waiting for its code to be exchanged. */
interface CodeRecord {
  username: string;
  redirectUri: string;
  nonce?: string;
  authTime: number;
  expiresAtMs: number;
  accessIp: string;
  browser: string;
  os: string;
}

/** One prompt shown (mode `prompt`), waiting for the user's decision. */
interface TransactionRecord extends Omit<CodeRecord, 'authTime' | 'expiresAtMs'> {
  state: string;
  useDuoCodeAttribute: boolean;
  expiresAtMs: number;
}

interface BrowserAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

type Body = Buffer | 'too_large' | 'aborted';

/**
 * A local stand-in for Duo's Universal Prompt endpoints (health check,
 * authorize, token), speaking Duo's wire protocol over real HTTP(S) on
 * 127.0.0.1, with the same checks Duo makes and switchable failures.
 * For development and tests only: never expose it to a network.
 */
export class DuoEmulator {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly apiHost: string = API_HOST;

  readonly #key: HsKey;
  readonly #server: Server;
  readonly #tls: DuoEmulatorTlsOptions | undefined;
  readonly #tlsFingerprint: string | undefined;
  readonly #codeTtlMs: number;
  readonly #factor: string;
  readonly #logger: ((line: string) => void) | undefined;
  #baseUrl = '';
  #mode: DuoEmulatorMode;
  readonly #initialMode: DuoEmulatorMode;
  #failure: DuoEmulatorFailure = 'none';
  #failureEndpoints: ReadonlySet<DuoEmulatorEndpoint> = new Set();
  #slowMs = 1000;
  #retryAfter: string | undefined;
  #clockOffsetSeconds = 0;
  #stats: DuoEmulatorStats = zeroStats();
  #lastAuthorizeRequest: DuoEmulatorAuthorizeRequest | undefined;
  /** jti -> exp (Duo clock): assertions seen and not yet expired. */
  readonly #seenJtis = new Map<string, number>();
  readonly #codes = new Map<string, CodeRecord>();
  readonly #transactions = new Map<string, TransactionRecord>();
  readonly #sockets = new Set<Socket>();
  readonly #sleepers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  #closing: Promise<void> | undefined;

  private constructor(options: DuoEmulatorOptions) {
    this.clientId = options.clientId ?? DEFAULT_CLIENT_ID;
    this.clientSecret = options.clientSecret ?? randomAlphanumeric(40);
    this.#key = new HsKey(this.clientSecret);
    this.#mode = options.mode ?? 'approve';
    this.#initialMode = this.#mode;
    this.#codeTtlMs = (options.codeTtlSeconds ?? 60) * 1000;
    this.#factor = options.factor ?? 'duo_push';
    this.#logger = options.logger;
    this.#tls = options.tls;
    this.#tlsFingerprint = options.tls ? new X509Certificate(options.tls.cert).fingerprint256 : undefined;
    const listener = (req: IncomingMessage, res: ServerResponse): void => this.#onRequest(req, res);
    this.#server = options.tls
      ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, listener)
      : createHttpServer(listener);
    // Benchmarks reuse connections: keep idle ones open long enough.
    this.#server.keepAliveTimeout = 30_000;
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  /** Starts an emulator listening on 127.0.0.1 (a free port unless `port` is given). */
  static async start(options: DuoEmulatorOptions = {}): Promise<DuoEmulator> {
    checkOptions(options);
    const emulator = new DuoEmulator(options);
    await emulator.#listen(options.port ?? 0);
    return emulator;
  }

  /** `http://127.0.0.1:PORT` (`https://` with `tls`): the emulator's origin, for `apiBaseUrl`. */
  get baseUrl(): string {
    return this.#baseUrl;
  }

  /** Options ready to spread into `DuoModule.forRoot()` or `new DuoClient()`. */
  clientOptions(redirectUri: string): DuoEmulatorClientOptions {
    return { clientId: this.clientId, clientSecret: this.clientSecret, apiBaseUrl: this.#baseUrl, redirectUri };
  }

  get mode(): DuoEmulatorMode {
    return this.#mode;
  }

  setMode(mode: DuoEmulatorMode): void {
    if (!MODES.has(mode)) throw new TypeError(`Unknown Duo emulator mode ${JSON.stringify(mode)}; use approve, deny or prompt.`);
    this.#mode = mode;
  }

  get failure(): DuoEmulatorFailure {
    return this.#failure;
  }

  /**
   * Makes the emulator fail in one way until `setFailure('none')`. By default a
   * failure hits the endpoints it is about: `health_fail` the health check,
   * `token_*` the token call, the others all three endpoints.
   *
   * `rate_limited` answers HTTP 429 as Duo does when an integration sends too
   * many requests (JSON `{stat: "FAIL", code: 42901, message: "Too Many
   * Requests"}`, a page for the browser's authorize request), with `retryAfter`
   * as its `Retry-After`, before looking at the request: a code stays unused.
   */
  setFailure(failure: DuoEmulatorFailure, options: DuoEmulatorFailureOptions = {}): void {
    if (!FAILURES.has(failure)) throw new TypeError(`Unknown Duo emulator failure ${JSON.stringify(failure)}.`);
    const endpoints = options.endpoints;
    if (endpoints !== undefined && (!Array.isArray(endpoints) || !endpoints.every((e) => ALL_ENDPOINTS.includes(e)))) {
      throw new TypeError('setFailure: endpoints must be a list of "health", "authorize" and "token".');
    }
    const slowMs = options.slowMs ?? 1000;
    if (!Number.isFinite(slowMs) || slowMs < 0 || slowMs > 600_000) throw new TypeError('setFailure: slowMs must be 0 to 600000.');
    const retryAfter = options.retryAfter;
    const retryAfterOk =
      retryAfter === undefined ||
      (typeof retryAfter === 'number' && Number.isInteger(retryAfter) && retryAfter >= 0 && retryAfter <= 86_400) ||
      (typeof retryAfter === 'string' && /^[\x20-\x7e]{1,256}$/.test(retryAfter));
    if (!retryAfterOk) {
      throw new TypeError('setFailure: retryAfter must be whole seconds from 0 to 86400, or a header value of 1 to 256 printable ASCII characters.');
    }
    this.#failure = failure;
    this.#slowMs = slowMs;
    this.#retryAfter = retryAfter === undefined ? undefined : String(retryAfter);
    this.#failureEndpoints = new Set(endpoints ?? defaultEndpoints(failure));
  }

  /**
   * Sets Duo's clock to the real clock plus `seconds`. It shows in the health
   * check timestamp and in the times of the id_tokens; as at Duo, the client's
   * assertions and request JWTs are also checked against it, so an offset
   * beyond their lifetime (300 s for ours) makes Duo refuse them.
   */
  setClockOffset(seconds: number): void {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds)) throw new TypeError('setClockOffset: seconds must be a finite number.');
    this.#clockOffsetSeconds = seconds;
  }

  get stats(): DuoEmulatorStats {
    return { ...this.#stats };
  }

  resetStats(): void {
    this.#stats = zeroStats();
  }

  /**
   * Back to how the emulator started, for a `beforeEach`: its first mode, no
   * failure, no clock offset, zeroed stats. Codes and jtis already used stay used.
   */
  reset(): void {
    this.setMode(this.#initialMode);
    this.setFailure('none');
    this.setClockOffset(0);
    this.resetStats();
  }

  /** What the last verified authorize request asked for, or undefined. */
  get lastAuthorizeRequest(): DuoEmulatorAuthorizeRequest | undefined {
    return this.#lastAuthorizeRequest === undefined ? undefined : { ...this.#lastAuthorizeRequest };
  }

  /**
   * Runs an authorize URL of this emulator as a browser would (GET, no redirect
   * followed) and returns the Location Duo sends the browser to. In `prompt`
   * mode, pass the user's `decision`: the prompt page's form is then posted.
   * Throws when the emulator refuses the request (HTTP 400 page) or answers
   * anything but a redirect.
   */
  async authorize(authUrl: string, decision?: 'approve' | 'deny'): Promise<string> {
    let url: URL;
    try {
      url = new URL(authUrl);
    } catch {
      throw new TypeError('authorize: authUrl is not an absolute URL.');
    }
    if (url.origin !== this.#baseUrl || url.pathname !== PATH_AUTHORIZE) {
      throw new Error(`authorize: the URL is not this emulator's authorize endpoint (${this.#baseUrl}${PATH_AUTHORIZE}).`);
    }
    if (decision !== undefined && decision !== 'approve' && decision !== 'deny') throw new TypeError('authorize: decision must be approve or deny.');
    const first = await this.#browserRequest('GET', `${url.pathname}${url.search}`);
    const location = redirectLocation(first);
    if (location !== undefined) return location;
    const transaction = first.status === 200 ? /name="txn" value="([A-Za-z0-9_-]+)"/.exec(first.body)?.[1] : undefined;
    if (transaction === undefined) throw new Error(`Duo emulator: the authorize request was refused (HTTP ${first.status}): ${pageText(first.body)}`);
    if (decision === undefined) {
      throw new Error('Duo emulator: the prompt page is shown (mode "prompt"); pass a decision ("approve" or "deny") to authorize().');
    }
    const second = await this.#browserRequest('POST', PATH_DECISION, new URLSearchParams({ txn: transaction, decision }).toString());
    const next = redirectLocation(second);
    if (next === undefined) throw new Error(`Duo emulator: the decision was refused (HTTP ${second.status}): ${pageText(second.body)}`);
    return next;
  }

  /** Stops listening and destroys every open connection, hung ones included. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      for (const sleeper of this.#sleepers) {
        clearTimeout(sleeper.timer);
        sleeper.resolve();
      }
      this.#sleepers.clear();
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => resolve());
      for (const socket of this.#sockets) socket.destroy();
      this.#server.closeAllConnections();
    });
    return this.#closing;
  }

  /** The client secret is never shown. */
  toJSON(): Record<string, unknown> {
    return { baseUrl: this.#baseUrl, clientId: this.clientId, apiHost: this.apiHost, mode: this.#mode, failure: this.#failure };
  }

  [inspect.custom](): string {
    return `DuoEmulator ${JSON.stringify(this.toJSON())}`;
  }

  // ---------------------------------------------------------------- server

  async #listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.#server.once('error', onError);
      this.#server.listen({ port, host: HOST }, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('Duo emulator: the server has no TCP address.');
    this.#baseUrl = `${this.#tls ? 'https' : 'http'}://${HOST}:${address.port}`;
  }

  /** Duo's clock, Unix seconds. */
  #now(): number {
    return Math.floor(Date.now() / 1000 + this.#clockOffsetSeconds);
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.#handle(req, res).catch(() => {
      // Never let one request take the server down.
      if (!res.headersSent && !res.destroyed) {
        this.#json(req, res, 500, this.#failBody(50000, 'Internal server error'), 'internal error');
      } else {
        res.destroy();
      }
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '';
    const queryAt = rawUrl.indexOf('?');
    const path = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
    const target = ROUTES.get(path);
    if (target === undefined) {
      req.resume();
      this.#json(req, res, 404, this.#failBody(40401, 'Resource not found'), 'unknown path', '(other)');
      return;
    }
    if (req.method !== target.method) {
      req.resume();
      this.#json(req, res, 405, this.#failBody(40501, 'Method not allowed'), 'wrong method', path, {
        allow: target.method,
      });
      return;
    }
    const route = target.route;
    if (route === 'health') this.#stats.healthChecks++;
    else if (route === 'authorize') this.#stats.authorizations++;
    else if (route === 'token') this.#stats.tokenExchanges++;

    const failure = route !== 'decision' && this.#failureEndpoints.has(route) ? this.#failure : 'none';
    if (failure === 'no_answer') {
      // Accept the request and never answer: close() destroys the socket.
      req.resume();
      this.#log(req, path, 0, 'no_answer (failure)');
      return;
    }
    if (failure === 'slow') {
      await this.#sleep(this.#slowMs);
      if (this.#closing) return;
    }
    if (failure === 'http_500') {
      req.resume();
      if (route === 'authorize') {
        this.#html(req, res, 500, renderErrorPage('Server error', 'Duo is unavailable (emulated HTTP 500).'), 'http_500 (failure)', path);
      } else {
        this.#json(req, res, 500, this.#failBody(50000, 'Internal server error'), 'http_500 (failure)', path);
      }
      return;
    }
    if (failure === 'rate_limited') {
      req.resume();
      const headers: OutgoingHttpHeaders = this.#retryAfter === undefined ? {} : { 'retry-after': this.#retryAfter };
      if (route === 'authorize') {
        this.#html(req, res, 429, renderErrorPage('Too many requests', 'Duo is rate-limiting this application (emulated HTTP 429).'), 'rate_limited (failure)', path, headers);
      } else {
        this.#json(req, res, 429, this.#failBody(42901, 'Too Many Requests'), 'rate_limited (failure)', path, headers);
      }
      return;
    }
    if (failure === 'malformed') {
      req.resume();
      this.#send(req, res, 200, 'text/html; charset=utf-8', '<html><body>Service temporarily unavailable', 'malformed (failure)', path);
      return;
    }

    let body: Buffer | undefined;
    if (req.method === 'POST') {
      const read = await readBody(req);
      if (read === 'aborted') return;
      if (read === 'too_large') {
        this.#json(req, res, 413, this.#failBody(41301, 'Request entity too large'), 'body too large', path, {
          connection: 'close',
        });
        return;
      }
      body = read;
    } else {
      req.resume();
    }

    switch (route) {
      case 'health':
        return this.#healthCheck(req, res, body ?? Buffer.alloc(0), failure);
      case 'authorize':
        return this.#authorizeEndpoint(req, res, new URLSearchParams(queryAt === -1 ? '' : rawUrl.slice(queryAt + 1)));
      case 'token':
        return this.#token(req, res, body ?? Buffer.alloc(0), failure);
      case 'decision':
        return this.#decision(req, res, body ?? Buffer.alloc(0));
    }
  }

  // ---------------------------------------------------------------- health check

  async #healthCheck(req: IncomingMessage, res: ServerResponse, body: Buffer, failure: DuoEmulatorFailure): Promise<void> {
    const form = parseForm(body);
    const clientId = form?.get('client_id');
    const assertion = form?.get('client_assertion');
    if (form === undefined || !clientId || !assertion) {
      const missing = form === undefined ? 'malformed form body' : !clientId ? 'client_id' : 'client_assertion';
      this.#json(
        req,
        res,
        400,
        this.#failBody(40001, 'Missing required request parameters', missing),
        `invalid_request (${missing})`,
      );
      return;
    }
    const problem = await this.#checkAssertion(clientId, assertion, `${this.#baseUrl}${PATH_HEALTH}`);
    if (problem !== undefined) {
      this.#json(
        req,
        res,
        400,
        this.#failBody(40002, 'invalid_client', INVALID_ASSERTION),
        `invalid_client (${problem})`,
      );
      return;
    }
    if (failure === 'health_fail') {
      this.#json(
        req,
        res,
        200,
        this.#failBody(50301, 'Service unavailable', 'Duo is temporarily unavailable.'),
        'health_fail (failure)',
      );
      return;
    }
    this.#json(req, res, 200, { stat: 'OK', response: { timestamp: this.#now() } }, 'ok');
  }

  /** Duo's FAIL answer: `{ stat, code, message, message_detail?, timestamp }`. */
  #failBody(code: number, message: string, detail?: string): Record<string, unknown> {
    return { stat: 'FAIL', code, message, ...(detail === undefined ? {} : { message_detail: detail }), timestamp: this.#now() };
  }

  /** Duo's client assertion checks; returns what is wrong (safe to log), or undefined. */
  async #checkAssertion(clientId: string | undefined, assertion: string, audience: string): Promise<string | undefined> {
    if (clientId !== undefined && clientId !== this.clientId) return 'unknown client_id';
    let claims: JWTPayload;
    try {
      claims = await verifyJwt(this.#key, assertion, 0, this.#now());
    } catch (error) {
      return error instanceof JwtVerifyError ? `assertion ${error.failure}` : 'assertion malformed';
    }
    if (claims.iss !== this.clientId) return 'assertion iss';
    if (claims.sub !== this.clientId) return 'assertion sub';
    if (!audienceIs(claims.aud, audience)) return 'assertion aud';
    if (typeof claims.exp !== 'number') return 'assertion without exp';
    const jti = claims.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) return 'assertion without jti';
    const now = this.#now();
    const seen = this.#seenJtis.get(jti);
    if (seen !== undefined && seen >= now) return 'jti replayed';
    this.#rememberJti(jti, claims.exp, now);
    return undefined;
  }

  #rememberJti(jti: string, exp: number, now: number): void {
    this.#seenJtis.delete(jti);
    this.#seenJtis.set(jti, exp);
    // Oldest first: drop the expired ones, and the oldest beyond the cap.
    for (const [seenJti, seenExp] of this.#seenJtis) {
      if (seenExp >= now && this.#seenJtis.size <= MAX_SEEN_JTIS) break;
      this.#seenJtis.delete(seenJti);
    }
  }

  // ---------------------------------------------------------------- authorize

  async #authorizeEndpoint(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const refuse = (detail: string): void => {
      this.#html(req, res, 400, renderErrorPage('Invalid request', detail), `bad request (${detail})`);
    };
    const params = uniqueParams(query);
    if (params === undefined) return refuse('A query parameter is repeated or there are too many.');
    if (params.get('response_type') !== 'code') return refuse('response_type must be "code".');
    if (params.get('client_id') !== this.clientId) return refuse('Unknown client_id.');
    const scope = params.get('scope');
    if (scope !== undefined && scope !== 'openid') return refuse('scope must be "openid".');
    const request = params.get('request');
    if (!request) return refuse('The request parameter (a signed JWT) is missing.');

    let claims: JWTPayload;
    try {
      claims = await verifyJwt(this.#key, request, 0, this.#now());
    } catch (error) {
      return refuse(`The request JWT ${error instanceof JwtVerifyError ? error.message : 'could not be decoded'}.`);
    }
    if (claims.iss !== this.clientId) return refuse('The request JWT has the wrong iss.');
    if (!audienceIs(claims.aud, this.#baseUrl)) return refuse(`The request JWT's aud must be ${this.#baseUrl}.`);
    if (typeof claims.exp !== 'number') return refuse('The request JWT has no exp.');
    if (claims.response_type !== 'code') return refuse('The request JWT must have response_type "code".');
    if (claims.scope !== 'openid') return refuse('The request JWT must have scope "openid".');
    if (claims.client_id !== this.clientId) return refuse('The request JWT has the wrong client_id.');
    const redirectUri = claims.redirect_uri;
    if (typeof redirectUri !== 'string' || !isRedirectUri(redirectUri)) return refuse('The request JWT has no valid redirect_uri.');
    const queryRedirect = params.get('redirect_uri');
    if (queryRedirect !== undefined && queryRedirect !== redirectUri) return refuse('redirect_uri differs between the query and the request JWT.');
    const state = claims.state;
    if (typeof state !== 'string' || state.length < 16 || state.length > 1024) return refuse('The state must be 16 to 1024 characters.');
    const username = claims.duo_uname;
    if (typeof username !== 'string' || username.length === 0 || username.length > 1024) return refuse('duo_uname is missing.');
    const useDuoCode = claims.use_duo_code_attribute;
    if (useDuoCode !== undefined && typeof useDuoCode !== 'boolean') return refuse('use_duo_code_attribute must be a boolean.');
    // The nonce may come in the query (Python's and Java's SDKs), in the request JWT (Node's, PHP's), or both.
    // Duo documents that the query wins; two different values are refused here, so a client that sends
    // one thing and checks another is caught instead of passing by luck.
    const queryNonce = params.get('nonce');
    const jwtNonce = claims.nonce;
    if (queryNonce !== undefined && jwtNonce !== undefined && queryNonce !== jwtNonce) {
      return refuse('The nonce differs between the query and the request JWT.');
    }
    const nonce = queryNonce ?? jwtNonce;
    if (nonce !== undefined && (typeof nonce !== 'string' || nonce.length < 16 || nonce.length > 1024)) {
      return refuse('The nonce must be 16 to 1024 characters.');
    }
    const maxAge = claims.max_age;
    if (maxAge !== undefined && (typeof maxAge !== 'number' || !Number.isInteger(maxAge) || maxAge < 0)) {
      return refuse('max_age must be a whole number of seconds.');
    }
    const prompt = claims.prompt;
    if (prompt !== undefined && prompt !== 'login') return refuse('prompt may only be "login".');
    const optionalText = (name: string): string | undefined | null => {
      const value = claims[name];
      if (value === undefined) return undefined;
      return typeof value === 'string' && value.length <= 1024 ? value : null;
    };
    const destAppName = optionalText('dest_app_name');
    const destAppId = optionalText('dest_app_id');
    const displayUsername = optionalText('display_username');
    if (destAppName === null || destAppId === null || displayUsername === null) {
      return refuse('dest_app_name, dest_app_id and display_username must be strings.');
    }

    const request_: DuoEmulatorAuthorizeRequest = { username, redirectUri, useDuoCodeAttribute: useDuoCode ?? false };
    if (nonce !== undefined) request_.nonce = nonce;
    if (maxAge !== undefined) request_.maxAge = maxAge;
    if (prompt !== undefined) request_.prompt = prompt;
    if (destAppName !== undefined) request_.destAppName = destAppName;
    if (destAppId !== undefined) request_.destAppId = destAppId;
    if (displayUsername !== undefined) request_.displayUsername = displayUsername;
    this.#lastAuthorizeRequest = request_;

    const device = describeAccessDevice(req);
    const transaction: TransactionRecord = {
      username,
      redirectUri,
      state,
      useDuoCodeAttribute: request_.useDuoCodeAttribute,
      ...(nonce === undefined ? {} : { nonce }),
      ...device,
      expiresAtMs: Date.now() + TRANSACTION_TTL_MS,
    };

    if (this.#mode === 'prompt') {
      const transactionId = randomBytes(32).toString('base64url');
      this.#transactions.set(transactionId, transaction);
      pruneExpiring(this.#transactions, MAX_TRANSACTIONS);
      const page = renderPromptPage({
        username: displayUsername ?? username,
        ...(destAppName === undefined ? {} : { appName: destAppName }),
        transactionId,
        action: PATH_DECISION,
        factor: this.#factor,
        expiresInSeconds: TRANSACTION_TTL_MS / 1000,
      });
      this.#html(req, res, 200, page, 'prompt shown', undefined, {
        'content-security-policy': `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${new URL(redirectUri).origin}; frame-ancestors 'none'; base-uri 'none'`,
        'x-frame-options': 'DENY',
      });
      return;
    }
    this.#redirect(req, res, 302, this.#decide(transaction, this.#mode), this.#mode === 'approve' ? 'approved' : 'denied');
  }

  /** The Location Duo sends the browser to for this decision (issuing a code when approved). */
  #decide(transaction: TransactionRecord, decision: 'approve' | 'deny'): string {
    const location = new URL(transaction.redirectUri);
    if (decision === 'approve') {
      const code = randomBytes(24).toString('base64url');
      this.#codes.set(code, {
        username: transaction.username,
        redirectUri: transaction.redirectUri,
        ...(transaction.nonce === undefined ? {} : { nonce: transaction.nonce }),
        authTime: this.#now(),
        expiresAtMs: Date.now() + this.#codeTtlMs,
        accessIp: transaction.accessIp,
        browser: transaction.browser,
        os: transaction.os,
      });
      pruneExpiring(this.#codes, MAX_CODES);
      this.#stats.codesIssued++;
      location.searchParams.set(transaction.useDuoCodeAttribute ? 'duo_code' : 'code', code);
    } else {
      location.searchParams.set('error', 'access_denied');
      location.searchParams.set('error_description', 'The user denied the authentication request.');
    }
    location.searchParams.set('state', transaction.state);
    return location.href;
  }

  async #decision(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const form = parseForm(body);
    const transactionId = form?.get('txn');
    const decision = form?.get('decision');
    const transaction = transactionId === undefined ? undefined : this.#transactions.get(transactionId);
    if (transactionId !== undefined) this.#transactions.delete(transactionId);
    if (transaction === undefined || transaction.expiresAtMs <= Date.now()) {
      this.#html(req, res, 400, renderErrorPage('Prompt expired', 'This prompt is unknown, was already answered, or has expired. Start the login again.'), 'unknown transaction');
      return;
    }
    if (decision !== 'approve' && decision !== 'deny') {
      this.#html(req, res, 400, renderErrorPage('Invalid request', 'The decision must be approve or deny.'), 'bad decision');
      return;
    }
    this.#redirect(req, res, 303, this.#decide(transaction, decision), decision === 'approve' ? 'approved' : 'denied');
  }

  // ---------------------------------------------------------------- token

  async #token(req: IncomingMessage, res: ServerResponse, body: Buffer, failure: DuoEmulatorFailure): Promise<void> {
    const oauthError = (error: string, description: string, why: string): void => {
      this.#json(req, res, 400, { error, error_description: description }, `${error} (${why})`);
    };
    const form = parseForm(body);
    if (form === undefined) return oauthError('invalid_request', INVALID_REQUEST, 'malformed form body');
    // Duo documents client_id as optional here: the assertion names the client.
    const clientId = form.get('client_id');
    const assertion = form.get('client_assertion');
    if (!assertion) return oauthError('invalid_request', INVALID_REQUEST, 'missing client_assertion');
    if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) return oauthError('invalid_request', INVALID_REQUEST, 'client_assertion_type');
    const problem = await this.#checkAssertion(clientId, assertion, `${this.#baseUrl}${PATH_TOKEN}`);
    if (problem !== undefined) return oauthError('invalid_client', INVALID_ASSERTION, problem);
    const grantType = form.get('grant_type');
    if (!grantType) return oauthError('invalid_request', INVALID_REQUEST, 'missing grant_type');
    if (grantType !== 'authorization_code') return oauthError('unsupported_grant_type', UNSUPPORTED_GRANT, 'grant_type');
    const code = form.get('code');
    const redirectUri = form.get('redirect_uri');
    if (!code || !redirectUri) return oauthError('invalid_request', INVALID_REQUEST, 'missing code or redirect_uri');

    // A code is consumed by its first use, even when this call then fails.
    const record = this.#codes.get(code);
    this.#codes.delete(code);
    if (record === undefined) return oauthError('invalid_grant', INVALID_GRANT, 'unknown or used code');
    if (record.expiresAtMs <= Date.now()) return oauthError('invalid_grant', INVALID_GRANT, 'expired code');
    if (record.redirectUri !== redirectUri) return oauthError('invalid_grant', INVALID_GRANT, 'redirect_uri mismatch');

    const answer = await this.#tokenAnswer(record, failure);
    this.#stats.tokenExchangesOk++;
    this.#json(req, res, 200, answer, failure === 'none' ? 'ok' : `ok with ${failure} (failure)`);
  }

  async #tokenAnswer(record: CodeRecord, failure: DuoEmulatorFailure): Promise<unknown> {
    const now = this.#now();
    const factor = this.#factor;
    const claims: JWTPayload = {
      iss: `${this.#baseUrl}${PATH_TOKEN}`,
      aud: this.clientId,
      sub: record.username,
      exp: now + ID_TOKEN_LIFETIME_SECONDS,
      iat: now,
      auth_time: record.authTime,
      preferred_username: record.username,
      amr: ['mfa', amrFor(factor)],
      auth_result: { result: 'allow', status: 'allow', status_msg: 'Login Successful' },
      auth_context: {
        txid: randomUUID(),
        timestamp: record.authTime,
        isotimestamp: new Date(record.authTime * 1000).toISOString(),
        event_type: 'authentication',
        factor,
        reason: 'user_approved',
        result: 'success',
        alias: '',
        email: '',
        user: { name: record.username, key: userKey(this.clientId, record.username), groups: [] },
        application: { name: 'Web SDK (Duo emulator)', key: this.clientId },
        auth_device: {
          ip: '192.0.2.10',
          name: factor === 'duo_push' ? 'Emulated phone (Duo Mobile)' : 'Emulated device',
          location: { city: 'Ann Arbor', state: 'Michigan', country: 'United States' },
        },
        access_device: {
          ip: record.accessIp,
          hostname: null,
          browser: record.browser,
          os: record.os,
          location: { city: 'Ann Arbor', state: 'Michigan', country: 'United States' },
        },
      },
    };
    if (record.nonce !== undefined) claims.nonce = record.nonce;

    switch (failure) {
      case 'token_wrong_iss':
        claims.iss = `https://api-wrong0000.duosecurity.com${PATH_TOKEN}`;
        break;
      case 'token_wrong_aud':
        claims.aud = 'DIWRONGCLIENT0000000';
        break;
      case 'token_multi_aud':
        claims.aud = [this.clientId, 'DIOTHERCLIENT0000000'];
        break;
      case 'token_expired':
        claims.iat = now - 2 * ID_TOKEN_LIFETIME_SECONDS;
        claims.auth_time = Math.min(record.authTime, claims.iat);
        claims.exp = now - ID_TOKEN_LIFETIME_SECONDS;
        break;
      case 'token_iat_future':
        claims.iat = now + ID_TOKEN_LIFETIME_SECONDS;
        claims.exp = claims.iat + ID_TOKEN_LIFETIME_SECONDS;
        break;
      case 'token_nbf_future':
        claims.nbf = now + ID_TOKEN_LIFETIME_SECONDS;
        break;
      case 'token_no_exp':
        delete claims.exp;
        break;
      case 'token_no_iat':
        delete claims.iat;
        break;
      case 'token_wrong_username':
        claims.preferred_username = `${record.username}-someone-else`;
        break;
      case 'token_wrong_nonce':
        claims.nonce = randomBytes(32).toString('base64url');
        break;
      case 'token_no_nonce':
        delete claims.nonce;
        break;
      case 'token_status_deny':
        claims.auth_result = { result: 'deny', status: 'deny', status_msg: 'Login denied' };
        break;
      default:
        break;
    }

    let idToken: string;
    if (failure === 'token_alg_none') {
      idToken = compactJwt({ alg: 'none', typ: 'JWT' }, claims, () => Buffer.alloc(0));
    } else if (failure === 'token_alg_hs256') {
      idToken = compactJwt({ alg: 'HS256', typ: 'JWT' }, claims, (input) => createHmac('sha256', this.clientSecret).update(input).digest());
    } else if (failure === 'token_bad_signature') {
      idToken = await signJwt(new HsKey(randomAlphanumeric(40)), claims, 'JWT');
    } else {
      idToken = await signJwt(this.#key, claims, 'JWT');
    }

    const answer: Record<string, unknown> = {
      id_token: idToken,
      access_token: randomBytes(32).toString('base64url'),
      expires_in: ID_TOKEN_LIFETIME_SECONDS,
      token_type: 'Bearer',
    };
    if (failure === 'token_response_not_object') return [answer.access_token, answer.token_type];
    if (failure === 'token_response_no_id_token') delete answer.id_token;
    if (failure === 'token_type_not_bearer') answer.token_type = 'MAC';
    return answer;
  }

  // ---------------------------------------------------------------- answers

  #json(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: unknown,
    note: string,
    path?: string,
    headers: OutgoingHttpHeaders = {},
  ): void {
    this.#send(req, res, status, 'application/json', JSON.stringify(body), note, path, headers);
  }

  #html(req: IncomingMessage, res: ServerResponse, status: number, page: string, note: string, path?: string, headers: OutgoingHttpHeaders = {}): void {
    this.#send(req, res, status, 'text/html; charset=utf-8', page, note, path, {
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
      'x-frame-options': 'DENY',
      ...headers,
    });
  }

  #redirect(req: IncomingMessage, res: ServerResponse, status: 302 | 303, location: string, note: string): void {
    this.#send(req, res, status, 'text/plain; charset=utf-8', '', note, undefined, { location, 'referrer-policy': 'no-referrer' });
  }

  #send(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    contentType: string,
    body: string,
    note: string,
    path?: string,
    headers: OutgoingHttpHeaders = {},
  ): void {
    if (res.headersSent || res.destroyed) return;
    const payload = Buffer.from(body, 'utf8');
    res.writeHead(status, {
      'content-type': contentType,
      'content-length': payload.length,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...headers,
    });
    res.end(payload);
    this.#log(req, path, status, note);
  }

  /** One line per request: method, path (never the query), status and why. */
  #log(req: IncomingMessage, path: string | undefined, status: number, note: string): void {
    if (this.#logger === undefined) return;
    const shownPath = path ?? (req.url ?? '').split('?', 1)[0];
    try {
      this.#logger(`[duo-emulator] ${req.method ?? '?'} ${shownPath} -> ${status === 0 ? 'no answer' : status} ${note}`);
    } catch {
      // A failing logger must not break the emulator.
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const sleeper = {
        timer: setTimeout(() => {
          this.#sleepers.delete(sleeper);
          resolve();
        }, ms),
        resolve,
      };
      this.#sleepers.add(sleeper);
    });
  }

  // ---------------------------------------------------------------- the authorize() helper

  /** One request to this emulator as a browser makes it: no redirect followed, TLS pinned to our certificate. */
  #browserRequest(method: 'GET' | 'POST', path: string, form?: string): Promise<BrowserAnswer> {
    const url = new URL(path, this.#baseUrl);
    const headers: OutgoingHttpHeaders = { 'user-agent': HELPER_USER_AGENT, accept: 'text/html', connection: 'close' };
    if (form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(form);
    }
    const common: RequestOptions = { method, headers, agent: false, timeout: HELPER_TIMEOUT_MS };
    return new Promise<BrowserAnswer>((resolve, reject) => {
      const onResponse = (response: IncomingMessage): void => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > HELPER_MAX_BODY) {
            request.destroy(new Error('Duo emulator: the answer is too large.'));
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      };
      let request: ReturnType<typeof httpRequest>;
      if (this.#tls) {
        const fingerprint = this.#tlsFingerprint;
        const tlsOptions: HttpsRequestOptions = {
          ...common,
          ca: this.#tls.ca ?? this.#tls.cert,
          // Pinned: only the emulator's own certificate is accepted, whatever names it carries.
          checkServerIdentity: (_host, peer) =>
            peer.fingerprint256 === fingerprint ? undefined : new Error('Duo emulator: unexpected TLS certificate.'),
        };
        request = httpsRequest(url, tlsOptions, onResponse);
      } else {
        request = httpRequest(url, common, onResponse);
      }
      request.on('timeout', () => request.destroy(new Error(`Duo emulator: no answer within ${HELPER_TIMEOUT_MS} ms.`)));
      request.on('error', reject);
      request.end(form);
    });
  }
}

// ---------------------------------------------------------------- helpers

function zeroStats(): DuoEmulatorStats {
  return { healthChecks: 0, authorizations: 0, tokenExchanges: 0, tokenExchangesOk: 0, codesIssued: 0 };
}

function defaultEndpoints(failure: DuoEmulatorFailure): DuoEmulatorEndpoint[] {
  if (failure === 'none') return [];
  if (failure === 'health_fail') return ['health'];
  if (TOKEN_FAILURES.has(failure)) return ['token'];
  return [...ALL_ENDPOINTS];
}

function checkOptions(options: DuoEmulatorOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('DuoEmulator.start: options must be an object.');
  const text = (name: string, value: unknown): void => {
    if (value !== undefined && (typeof value !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(value))) {
      throw new TypeError(`DuoEmulator.start: ${name} must be 1 to 256 printable ASCII characters.`);
    }
  };
  text('clientId', options.clientId);
  text('clientSecret', options.clientSecret);
  if (options.mode !== undefined && !MODES.has(options.mode)) throw new TypeError('DuoEmulator.start: mode must be approve, deny or prompt.');
  const port = options.port;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new TypeError('DuoEmulator.start: port must be 0 to 65535.');
  const ttl = options.codeTtlSeconds;
  if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0 || ttl > 86_400)) {
    throw new TypeError('DuoEmulator.start: codeTtlSeconds must be more than 0 and at most 86400.');
  }
  if (options.factor !== undefined && (typeof options.factor !== 'string' || options.factor.length === 0 || options.factor.length > 64)) {
    throw new TypeError('DuoEmulator.start: factor must be a short string.');
  }
  if (options.logger !== undefined && typeof options.logger !== 'function') throw new TypeError('DuoEmulator.start: logger must be a function.');
  if (options.tls !== undefined && (options.tls === null || typeof options.tls !== 'object' || !options.tls.key || !options.tls.cert)) {
    throw new TypeError('DuoEmulator.start: tls needs key and cert (PEM).');
  }
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Uniform random letters and digits from the CSPRNG (rejection sampling, no modulo bias). */
function randomAlphanumeric(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte >= 248) continue; // 248 = 4 * 62
      out += ALPHANUMERIC[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** Reads a request body up to MAX_BODY_BYTES. */
function readBody(req: IncomingMessage): Promise<Body> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return Promise.resolve('too_large');
  return new Promise<Body>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: Body): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        finish('too_large');
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish(Buffer.concat(chunks)));
    req.once('error', () => finish('aborted'));
    req.once('close', () => finish(req.complete ? Buffer.concat(chunks) : 'aborted'));
  });
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A form body as single-valued fields; undefined when it is not UTF-8, repeats a field or has too many. */
function parseForm(body: Buffer): Map<string, string> | undefined {
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    return undefined;
  }
  return uniqueParams(new URLSearchParams(text));
}

function uniqueParams(params: URLSearchParams): Map<string, string> | undefined {
  const map = new Map<string, string>();
  let count = 0;
  for (const [name, value] of params) {
    if (++count > MAX_FORM_FIELDS || map.has(name)) return undefined;
    map.set(name, value);
  }
  return map;
}

function audienceIs(aud: unknown, expected: string): boolean {
  return aud === expected || (Array.isArray(aud) && aud.length === 1 && aud[0] === expected);
}

function isRedirectUri(value: string): boolean {
  if (value.length === 0 || value.length > 1024) return false;
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && !url.username && !url.password && !url.hash;
  } catch {
    return false;
  }
}

/** Drops expired records (Map order is insertion order, so oldest first) and the oldest beyond the cap. */
function pruneExpiring(records: Map<string, { expiresAtMs: number }>, max: number): void {
  const now = Date.now();
  for (const [key, record] of records) {
    if (record.expiresAtMs > now && records.size <= max) break;
    records.delete(key);
  }
}

function describeAccessDevice(req: IncomingMessage): { accessIp: string; browser: string; os: string } {
  const ua = String(req.headers['user-agent'] ?? '');
  const browser = /Edg\//.test(ua)
    ? 'Edge Chromium'
    : /Firefox\//.test(ua)
      ? 'Firefox'
      : /Chrome\//.test(ua)
        ? 'Chrome'
        : /Safari\//.test(ua)
          ? 'Safari'
          : 'Unknown';
  const os = /Windows/.test(ua)
    ? 'Windows'
    : /iPhone|iPad/.test(ua)
      ? 'iOS'
      : /Mac OS X/.test(ua)
        ? 'Mac OS X'
        : /Android/.test(ua)
          ? 'Android'
          : /Linux/.test(ua)
            ? 'Linux'
            : 'Unknown';
  const ip = (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
  return { accessIp: ip, browser, os };
}

/** RFC 8176 method for the factor. */
function amrFor(factor: string): string {
  if (factor === 'sms_passcode' || factor === 'sms') return 'sms';
  if (factor.includes('passcode') || factor === 'hardware_token') return 'otp';
  if (factor === 'webauthn' || factor === 'security_key') return 'hwk';
  if (factor === 'phone_call') return 'tel';
  return 'swk';
}

/** A stable, Duo-looking user key (DU + 18 characters) for a username. */
function userKey(clientId: string, username: string): string {
  return `DU${createHash('sha256').update(`${clientId}\n${username}`).digest('hex').toUpperCase().slice(0, 18)}`;
}

/** A compact JWT with any header, for the defective tokens signJwt would (rightly) never make. */
function compactJwt(header: Record<string, unknown>, claims: JWTPayload, sign: (input: string) => Buffer): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${sign(input).toString('base64url')}`;
}

function redirectLocation(answer: BrowserAnswer): string | undefined {
  if (answer.status !== 302 && answer.status !== 303) return undefined;
  const location = answer.headers.location;
  return typeof location === 'string' && location.length > 0 ? location : undefined;
}

/** The readable text of one of our pages, short, for an error message. */
function pageText(html: string): string {
  const h1 = /<h1>([\s\S]*?)<\/h1>\s*<p>([\s\S]*?)<\/p>/.exec(html);
  const text = h1 ? `${h1[1]}: ${h1[2]}` : html.replace(/<[^>]*>/g, ' ');
  return text
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#61;/g, '=')
    .replace(/&#96;/g, '`')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
}
