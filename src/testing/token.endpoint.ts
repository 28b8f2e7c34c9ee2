/** POST /oauth/v1/token: a code, once, for Duo's id_token (changed by the defect switched on, if any). */
import { signJwt } from '../protocol/jwt.js';
import { randomToken } from '../protocol/random.js';
import { checkClientAssertion } from './client-assertion.js';
import {
  CLIENT_ASSERTION_TYPE,
  ID_TOKEN_LIFETIME_SECONDS,
  INVALID_ASSERTION,
  INVALID_GRANT,
  INVALID_REQUEST,
  PATH_TOKEN,
  UNSUPPORTED_GRANT,
} from './emulator.constants.js';
import { DEFECTS, type DuoEmulatorFailure, type TokenDefectContext } from './emulator.defects.js';
import { parseForm, type HttpExchange } from './emulator.http.js';
import type { CodeRecord, EmulatorApplication, EmulatorState } from './emulator.state.js';
import { idTokenClaims } from './id-token.js';

export async function tokenEndpoint(state: EmulatorState, exchange: HttpExchange, body: Buffer, failure: DuoEmulatorFailure): Promise<void> {
  const oauthError = (error: string, description: string, why: string): void => {
    exchange.json(400, { error, error_description: description }, `${error} (${why})`);
  };
  const form = parseForm(body);
  if (form === undefined) return oauthError('invalid_request', INVALID_REQUEST, 'malformed form body');
  // Duo documents client_id as optional here: the assertion names the client.
  const clientId = form.get('client_id');
  const assertion = form.get('client_assertion');
  if (!assertion) return oauthError('invalid_request', INVALID_REQUEST, 'missing client_assertion');
  if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) return oauthError('invalid_request', INVALID_REQUEST, 'client_assertion_type');
  const checked = await checkClientAssertion(state, clientId, assertion, `${state.baseUrl}${PATH_TOKEN}`);
  if ('problem' in checked) return oauthError('invalid_client', INVALID_ASSERTION, checked.problem);
  const { application } = checked;
  const grantType = form.get('grant_type');
  if (!grantType) return oauthError('invalid_request', INVALID_REQUEST, 'missing grant_type');
  if (grantType !== 'authorization_code') return oauthError('unsupported_grant_type', UNSUPPORTED_GRANT, 'grant_type');
  const code = form.get('code');
  const redirectUri = form.get('redirect_uri');
  if (!code || !redirectUri) return oauthError('invalid_request', INVALID_REQUEST, 'missing code or redirect_uri');

  // A code is consumed by its first use, even when this call then fails.
  const record = state.codes.take(code);
  if (record === undefined) return oauthError('invalid_grant', INVALID_GRANT, 'unknown or used code');
  if (record.expiresAtMs <= Date.now()) return oauthError('invalid_grant', INVALID_GRANT, 'expired code');
  if (record.redirectUri !== redirectUri) return oauthError('invalid_grant', INVALID_GRANT, 'redirect_uri mismatch');
  // A code is issued to one application: another application's client cannot redeem it.
  if (record.clientId !== application.clientId) return oauthError('invalid_grant', INVALID_GRANT, 'code of another client');

  const answer = await tokenAnswer(state, application, record, failure);
  state.stats.tokenExchangesOk++;
  exchange.json(200, answer, failure === 'none' ? 'ok' : `ok with ${failure} (failure)`);
}

/** Duo's four keys around the id_token, each step open to the defect's hook. */
async function tokenAnswer(state: EmulatorState, application: EmulatorApplication, record: CodeRecord, failure: DuoEmulatorFailure): Promise<unknown> {
  const defect = DEFECTS[failure];
  const now = state.now();
  const claims = idTokenClaims(state, record, now);
  const context: TokenDefectContext = { now, clientId: application.clientId, clientSecret: application.clientSecret, username: record.username, authTime: record.authTime };
  for (const [name, value] of Object.entries(defect.claims?.(context) ?? {})) {
    if (value === undefined) delete claims[name];
    else claims[name] = value;
  }
  const idToken = defect.sign === undefined ? await signJwt(application.key, claims, 'JWT') : await defect.sign(claims, context);
  const answer = { id_token: idToken, access_token: randomToken(32), expires_in: ID_TOKEN_LIFETIME_SECONDS, token_type: 'Bearer' };
  return defect.answer === undefined ? answer : defect.answer(answer);
}
