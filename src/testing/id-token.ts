/** The claims of the id_token Duo issues for an approved login (before any defect changes them). */
import { createHash, randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { ID_TOKEN_LIFETIME_SECONDS, PATH_TOKEN } from './emulator.constants.js';
import type { CodeRecord, EmulatorState } from './emulator.state.js';

export function idTokenClaims(state: EmulatorState, record: CodeRecord, now: number): JWTPayload {
  const factor = state.factor;
  const claims: JWTPayload = {
    iss: `${state.baseUrl}${PATH_TOKEN}`,
    aud: state.clientId,
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
      user: { name: record.username, key: userKey(state.clientId, record.username), groups: [] },
      application: { name: 'Web SDK (Duo emulator)', key: state.clientId },
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
  return claims;
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
