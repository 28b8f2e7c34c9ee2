/**
 * GET /oauth/v1/authorize, where Duo sends the browser: the request JWT's
 * checks, then the emulated user's answer (a redirect, or the prompt page in
 * mode `prompt`), and POST /emulator/decision, where that page posts it.
 */
import type { IncomingMessage } from 'node:http';
import type { JWTPayload } from 'jose';
import { JwtVerifyError, verifyJwt } from '../protocol/jwt.js';
import { randomToken } from '../protocol/random.js';
import { audienceIs } from './client-assertion.js';
import { PATH_DECISION, TRANSACTION_TTL_MS } from './emulator.constants.js';
import { parseForm, uniqueParams, type HttpExchange } from './emulator.http.js';
import { renderErrorPage, renderPromptPage } from './emulator.page.js';
import { REMEMBERED_DEVICE_CONTEXT, type AuthContextValues, type EmulatorState, type TransactionRecord } from './emulator.state.js';
import type { DuoEmulatorAuthorizeRequest } from './emulator.types.js';

export async function authorizeEndpoint(state: EmulatorState, exchange: HttpExchange, query: URLSearchParams): Promise<void> {
  const refuse = (detail: string): void => {
    exchange.html(400, renderErrorPage('Invalid request', detail), `bad request (${detail})`);
  };
  const params = uniqueParams(query);
  if (params === undefined) return refuse('A query parameter is repeated or there are too many.');
  if (params.get('response_type') !== 'code') return refuse('response_type must be "code".');
  const application = state.applications.get(params.get('client_id') ?? '');
  if (application === undefined) return refuse('Unknown client_id.');
  const scope = params.get('scope');
  if (scope !== undefined && scope !== 'openid') return refuse('scope must be "openid".');
  const request = params.get('request');
  if (!request) return refuse('The request parameter (a signed JWT) is missing.');

  let claims: JWTPayload;
  try {
    claims = await verifyJwt(application.key, request, 0, state.now());
  } catch (error) {
    return refuse(`The request JWT ${error instanceof JwtVerifyError ? error.message : 'could not be decoded'}.`);
  }
  if (claims.iss !== application.clientId) return refuse('The request JWT has the wrong iss.');
  if (!audienceIs(claims.aud, state.baseUrl)) return refuse(`The request JWT's aud must be ${state.baseUrl}.`);
  if (typeof claims.exp !== 'number') return refuse('The request JWT has no exp.');
  if (claims.response_type !== 'code') return refuse('The request JWT must have response_type "code".');
  if (claims.scope !== 'openid') return refuse('The request JWT must have scope "openid".');
  if (claims.client_id !== application.clientId) return refuse('The request JWT has the wrong client_id.');
  const redirectUri = claims.redirect_uri;
  if (typeof redirectUri !== 'string' || !isRedirectUri(redirectUri)) return refuse('The request JWT has no valid redirect_uri.');
  const queryRedirect = params.get('redirect_uri');
  if (queryRedirect !== undefined && queryRedirect !== redirectUri) return refuse('redirect_uri differs between the query and the request JWT.');
  const requestState = claims.state;
  if (typeof requestState !== 'string' || requestState.length < 16 || requestState.length > 1024) return refuse('The state must be 16 to 1024 characters.');
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

  const asked: DuoEmulatorAuthorizeRequest = { username, redirectUri, useDuoCodeAttribute: useDuoCode ?? false };
  if (nonce !== undefined) asked.nonce = nonce;
  if (maxAge !== undefined) asked.maxAge = maxAge;
  if (prompt !== undefined) asked.prompt = prompt;
  if (destAppName !== undefined) asked.destAppName = destAppName;
  if (destAppId !== undefined) asked.destAppId = destAppId;
  if (displayUsername !== undefined) asked.displayUsername = displayUsername;
  state.lastAuthorizeRequest = asked;

  const transaction: TransactionRecord = {
    clientId: application.clientId,
    username,
    redirectUri,
    state: requestState,
    useDuoCodeAttribute: asked.useDuoCodeAttribute,
    promptLogin: prompt === 'login',
    ...(nonce === undefined ? {} : { nonce }),
    ...describeAccessDevice(exchange.req),
    expiresAtMs: Date.now() + TRANSACTION_TTL_MS,
  };

  // A remembered device: Duo lets the user through without a prompt, whatever they would answer, unless prompt=login.
  if (state.rememberedDevice && !transaction.promptLogin) {
    exchange.redirect(302, decide(state, transaction, 'approve'), 'approved (remembered device)');
    return;
  }
  if (state.mode === 'prompt') {
    const transactionId = randomToken(32);
    state.transactions.add(transactionId, transaction);
    const page = renderPromptPage({
      username: displayUsername ?? username,
      ...(destAppName === undefined ? {} : { appName: destAppName }),
      transactionId,
      action: PATH_DECISION,
      factor: state.authContext.factor ?? '(not reported)',
      expiresInSeconds: TRANSACTION_TTL_MS / 1000,
      // A step-up: the page says why it asks again.
      ...(maxAge === undefined ? {} : { maxAgeSeconds: maxAge }),
      promptLogin: prompt === 'login',
    });
    exchange.html(200, page, 'prompt shown', {
      'content-security-policy': `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${new URL(redirectUri).origin}; frame-ancestors 'none'; base-uri 'none'`,
      'x-frame-options': 'DENY',
    });
    return;
  }
  exchange.redirect(302, decide(state, transaction, state.mode), state.mode === 'approve' ? 'approved' : 'denied');
}

export function decisionEndpoint(state: EmulatorState, exchange: HttpExchange, body: Buffer): void {
  const form = parseForm(body);
  const transactionId = form?.get('txn');
  const decision = form?.get('decision');
  const transaction = transactionId === undefined ? undefined : state.transactions.take(transactionId);
  if (transaction === undefined || transaction.expiresAtMs <= Date.now()) {
    exchange.html(400, renderErrorPage('Prompt expired', 'This prompt is unknown, was already answered, or has expired. Start the login again.'), 'unknown transaction');
    return;
  }
  if (decision !== 'approve' && decision !== 'deny') {
    exchange.html(400, renderErrorPage('Invalid request', 'The decision must be approve or deny.'), 'bad decision');
    return;
  }
  exchange.redirect(303, decide(state, transaction, decision), decision === 'approve' ? 'approved' : 'denied');
}

/** The Location Duo sends the browser to for this decision (issuing a code when approved). */
function decide(state: EmulatorState, transaction: TransactionRecord, decision: 'approve' | 'deny'): string {
  const location = new URL(transaction.redirectUri);
  if (decision === 'approve') {
    const code = randomToken(24);
    state.codes.add(code, {
      clientId: transaction.clientId,
      username: transaction.username,
      redirectUri: transaction.redirectUri,
      ...(transaction.nonce === undefined ? {} : { nonce: transaction.nonce }),
      authTime: state.now(),
      expiresAtMs: Date.now() + state.codeTtlMs,
      accessIp: transaction.accessIp,
      browser: transaction.browser,
      os: transaction.os,
      authContext: authContextOf(state, transaction),
    });
    state.stats.codesIssued++;
    location.searchParams.set(transaction.useDuoCodeAttribute ? 'duo_code' : 'code', code);
  } else {
    location.searchParams.set('error', 'access_denied');
    location.searchParams.set('error_description', 'The user denied the authentication request.');
  }
  location.searchParams.set('state', transaction.state);
  return location.href;
}

/** What this login's id_token reports: a remembered device's values when Duo skipped the prompt, else the ones set for the next logins. */
function authContextOf(state: EmulatorState, transaction: TransactionRecord): AuthContextValues {
  return state.rememberedDevice && !transaction.promptLogin ? REMEMBERED_DEVICE_CONTEXT : state.authContext;
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

/** What Duo reports of the browser (auth_context.access_device), from its address and User-Agent. */
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
