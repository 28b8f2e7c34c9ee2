/** The claims of the id_token Duo issues for an approved login (before any defect changes them). */
import { createHash, randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { ID_TOKEN_LIFETIME_SECONDS, PATH_TOKEN } from './emulator.constants.js';
import type { CodeRecord, EmulatorState } from './emulator.state.js';

export function idTokenClaims(state: EmulatorState, record: CodeRecord, now: number): JWTPayload {
  const { factor, reason, result } = record.authContext;
  const claims: JWTPayload = {
    iss: `${state.baseUrl}${PATH_TOKEN}`,
    aud: record.clientId,
    sub: record.username,
    exp: now + ID_TOKEN_LIFETIME_SECONDS,
    iat: now,
    auth_time: record.authTime,
    preferred_username: record.username,
    amr: amrFor(factor, reason),
    auth_result: { result: 'allow', status: 'allow', status_msg: 'Login Successful' },
    auth_context: {
      txid: randomUUID(),
      timestamp: record.authTime,
      isotimestamp: new Date(record.authTime * 1000).toISOString(),
      event_type: 'authentication',
      ...(factor === null ? {} : { factor }),
      ...(reason === null ? {} : { reason }),
      ...(result === null ? {} : { result }),
      alias: '',
      email: '',
      user: { name: record.username, key: userKey(record.clientId, record.username), groups: [] },
      application: { name: 'Web SDK (Duo emulator)', key: record.clientId },
      auth_device: {
        ip: '192.0.2.10',
        name: factor === 'duo_push' ? 'Emulated phone (Duo Mobile)' : factor?.startsWith('WebAuthn ') ? 'Emulated security key' : 'Emulated device',
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

/** Reasons of a login in which the user did something at Duo. */
const INTERACTIVE_REASONS: ReadonlySet<string> = new Set(['user_approved', 'valid_passcode']);

/**
 * `amr` for the login: `mfa` and the RFC 8176 method of the factor when the
 * user was asked; empty when Duo let the user through without asking (a
 * remembered device, a bypass, a trusted network), as Duo may send it empty.
 * Duo documents only the example `["mfa","otp"]`: this mapping is the
 * emulator's own, and nestjs-duo's factor rules do not read `amr`.
 */
function amrFor(factor: string | null, reason: string | null): string[] {
  if (reason === null || !INTERACTIVE_REASONS.has(reason)) return [];
  if (factor === null) return ['mfa'];
  if (factor === 'sms_passcode') return ['mfa', 'sms'];
  // WebAuthn (security keys, Touch ID, passkeys) and U2F: a hardware-bound key, and a user presence test.
  if (factor.startsWith('WebAuthn ') || factor === 'u2f_token') return ['mfa', 'hwk', 'user'];
  if (factor.includes('passcode') || factor.includes('token') || factor === 'yubikey_code') return ['mfa', 'otp'];
  if (factor === 'phone_call') return ['mfa', 'tel'];
  return ['mfa', 'swk'];
}

/** A stable, Duo-looking user key (DU + 18 characters) for a username. */
function userKey(clientId: string, username: string): string {
  return `DU${createHash('sha256').update(`${clientId}\n${username}`).digest('hex').toUpperCase().slice(0, 18)}`;
}
