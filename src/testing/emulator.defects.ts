/**
 * The emulator's defects: one table, one entry a defect. An entry names the
 * endpoints the defect hits by default and what it does, with one or more of
 * the hooks of `Defect`, each called at its step of an answer. To add a
 * defect, add an entry: `DuoEmulatorFailure`, `setFailure`'s check and the
 * table-driven tests follow from the table.
 */
import { createHmac } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { HsKey, signJwt } from '../protocol/jwt.js';
import { randomToken } from '../protocol/random.js';
import { ALL_ENDPOINTS, ID_TOKEN_LIFETIME_SECONDS, PATH_TOKEN } from './emulator.constants.js';
import { duoFail, type HttpExchange } from './emulator.http.js';
import { renderErrorPage } from './emulator.page.js';
import { randomAlphanumeric } from './emulator.random.js';
import type { DuoEmulatorEndpoint } from './emulator.types.js';

/** A call a defect may answer in the endpoint's place, before the endpoint reads the request. */
export interface InterceptedCall {
  readonly exchange: HttpExchange;
  readonly endpoint: DuoEmulatorEndpoint;
  /** The log note of an answer the defect makes. */
  readonly note: string;
  /** Duo's clock, Unix seconds. */
  readonly now: number;
  readonly slowMs: number;
  readonly retryAfter: string | undefined;
  /** Waits `ms` (cut short by `close()`); false when the emulator closed meanwhile. */
  sleep(ms: number): Promise<boolean>;
}

/** What an id_token defect may need to know of the login and the client. */
export interface TokenDefectContext {
  /** Duo's clock, Unix seconds. */
  readonly now: number;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly username: string;
  readonly authTime: number;
}

/** One defect: the endpoints it hits by default, and its hooks (every hook is optional). */
export interface Defect {
  readonly endpoints: readonly DuoEmulatorEndpoint[];
  /** Answers the call itself (returns true), or delays it; false lets the endpoint go on. */
  readonly intercept?: (call: InterceptedCall) => boolean | Promise<boolean>;
  /** The health check's answer to a verified client, in place of `stat: OK`. */
  readonly healthAnswer?: (now: number) => Record<string, unknown>;
  /** The id_token claims to change: each one given is set, or removed when `undefined`. */
  readonly claims?: (context: TokenDefectContext) => Record<string, unknown>;
  /** Signs the id_token in place of the emulator (HS512 with the client secret). */
  readonly sign?: (claims: JWTPayload, context: TokenDefectContext) => string | Promise<string>;
  /** Changes the token call's JSON answer: returns what is sent. */
  readonly answer?: (answer: Record<string, unknown>) => unknown;
}

const TOKEN: readonly DuoEmulatorEndpoint[] = ['token'];
/** An id_token's lifetime: how far the time claims of the defective ones are moved. */
const LIFETIME = ID_TOKEN_LIFETIME_SECONDS;

/** Declares the table: the names stay literal (for `DuoEmulatorFailure`), every entry reads as a `Defect`. */
function defectTable<const T extends Record<string, Defect>>(table: T): { readonly [Name in keyof T]: Defect } {
  return table;
}

export const DEFECTS = defectTable({
  none: { endpoints: [] },

  // ------------------------------------------------ Duo unreachable or unwell
  health_fail: {
    endpoints: ['health'],
    healthAnswer: (now) => duoFail(now, 50301, 'Service unavailable', 'Duo is temporarily unavailable.'),
  },
  http_500: {
    endpoints: ALL_ENDPOINTS,
    intercept: (call) =>
      refuse(call, 500, renderErrorPage('Server error', 'Duo is unavailable (emulated HTTP 500).'), duoFail(call.now, 50000, 'Internal server error')),
  },
  // As Duo when an integration sends too many requests, before it looks at the request: a code stays unused.
  rate_limited: {
    endpoints: ALL_ENDPOINTS,
    intercept: (call) =>
      refuse(
        call,
        429,
        renderErrorPage('Too many requests', 'Duo is rate-limiting this application (emulated HTTP 429).'),
        duoFail(call.now, 42901, 'Too Many Requests'),
        call.retryAfter === undefined ? {} : { 'retry-after': call.retryAfter },
      ),
  },
  no_answer: {
    endpoints: ALL_ENDPOINTS,
    // Accept the request and never answer: close() destroys the socket.
    intercept: ({ exchange, note }) => {
      exchange.req.resume();
      exchange.log(0, note);
      return true;
    },
  },
  malformed: {
    endpoints: ALL_ENDPOINTS,
    intercept: ({ exchange, note }) => {
      exchange.req.resume();
      exchange.send(200, 'text/html; charset=utf-8', '<html><body>Service temporarily unavailable', note);
      return true;
    },
  },
  slow: {
    endpoints: ALL_ENDPOINTS,
    // Goes on after the delay, unless the emulator closed meanwhile.
    intercept: async (call) => !(await call.sleep(call.slowMs)),
  },

  // ------------------------------------------------ the id_token's signature
  token_bad_signature: { endpoints: TOKEN, sign: (claims) => signJwt(new HsKey(randomAlphanumeric(40)), claims, 'JWT') },
  token_alg_none: { endpoints: TOKEN, sign: (claims) => compactJwt({ alg: 'none', typ: 'JWT' }, claims, () => Buffer.alloc(0)) },
  token_alg_hs256: {
    endpoints: TOKEN,
    sign: (claims, { clientSecret }) =>
      compactJwt({ alg: 'HS256', typ: 'JWT' }, claims, (input) => createHmac('sha256', clientSecret).update(input).digest()),
  },

  // ------------------------------------------------ the id_token's claims
  token_wrong_iss: { endpoints: TOKEN, claims: () => ({ iss: `https://api-wrong0000.duosecurity.com${PATH_TOKEN}` }) },
  token_wrong_aud: { endpoints: TOKEN, claims: () => ({ aud: 'DIWRONGCLIENT0000000' }) },
  token_multi_aud: { endpoints: TOKEN, claims: ({ clientId }) => ({ aud: [clientId, 'DIOTHERCLIENT0000000'] }) },
  token_expired: { endpoints: TOKEN, claims: ({ now, authTime }) => ({ iat: now - 2 * LIFETIME, auth_time: Math.min(authTime, now - 2 * LIFETIME), exp: now - LIFETIME }) },
  token_iat_future: { endpoints: TOKEN, claims: ({ now }) => ({ iat: now + LIFETIME, exp: now + 2 * LIFETIME }) },
  token_nbf_future: { endpoints: TOKEN, claims: ({ now }) => ({ nbf: now + LIFETIME }) },
  token_no_exp: { endpoints: TOKEN, claims: () => ({ exp: undefined }) },
  token_no_iat: { endpoints: TOKEN, claims: () => ({ iat: undefined }) },
  token_wrong_username: { endpoints: TOKEN, claims: ({ username }) => ({ preferred_username: `${username}-someone-else` }) },
  token_wrong_nonce: { endpoints: TOKEN, claims: () => ({ nonce: randomToken(32) }) },
  token_no_nonce: { endpoints: TOKEN, claims: () => ({ nonce: undefined }) },
  token_status_deny: { endpoints: TOKEN, claims: () => ({ auth_result: { result: 'deny', status: 'deny', status_msg: 'Login denied' } }) },

  // ------------------------------------------------ the token call's answer around the id_token
  token_response_not_object: { endpoints: TOKEN, answer: (answer) => [answer.access_token, answer.token_type] },
  token_response_no_id_token: { endpoints: TOKEN, answer: ({ id_token: _dropped, ...rest }) => rest },
  token_type_not_bearer: { endpoints: TOKEN, answer: (answer) => ({ ...answer, token_type: 'MAC' }) },
});

/** A way the emulator can fail: a name of the table of defects (`none`: it does not). */
export type DuoEmulatorFailure = keyof typeof DEFECTS;

/** Whether `name` names a defect of the table (not an inherited property such as `toString`). */
export function isFailure(name: unknown): name is DuoEmulatorFailure {
  return typeof name === 'string' && Object.hasOwn(DEFECTS, name);
}

/** Answers in the endpoint's place: an error page to the browser's authorize request, Duo's FAIL JSON to the others. */
function refuse(call: InterceptedCall, status: number, page: string, body: Record<string, unknown>, headers: Record<string, string> = {}): boolean {
  const { exchange, note } = call;
  exchange.req.resume();
  if (call.endpoint === 'authorize') exchange.html(status, page, note, headers);
  else exchange.json(status, body, note, headers);
  return true;
}

/** A compact JWT with any header, for the defective tokens signJwt would (rightly) never make. */
function compactJwt(header: Record<string, unknown>, claims: JWTPayload, sign: (input: string) => Buffer): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${sign(input).toString('base64url')}`;
}
