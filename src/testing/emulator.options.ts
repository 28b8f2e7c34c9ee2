/** The checks of what a test hands the emulator, each refusing with a TypeError that names the option. */
import { ALL_ENDPOINTS } from './emulator.constants.js';
import { DEFECTS, isFailure, type DuoEmulatorFailure } from './emulator.defects.js';
import type { FailureSetting } from './emulator.state.js';
import type { AuthContextValues } from './emulator.state.js';
import type { DuoEmulatorApplicationOptions, DuoEmulatorAuthContext, DuoEmulatorFailureOptions, DuoEmulatorMode, DuoEmulatorOptions } from './emulator.types.js';

const MODES: ReadonlySet<string> = new Set<DuoEmulatorMode>(['approve', 'deny', 'prompt']);

function isMode(mode: unknown): mode is DuoEmulatorMode {
  return typeof mode === 'string' && MODES.has(mode);
}

export function checkOptions(options: DuoEmulatorOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('DuoEmulator.start: options must be an object.');
  const text = (name: string, value: unknown): void => {
    if (value !== undefined && (typeof value !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(value))) {
      throw new TypeError(`DuoEmulator.start: ${name} must be 1 to 256 printable ASCII characters.`);
    }
  };
  text('clientId', options.clientId);
  text('clientSecret', options.clientSecret);
  if (options.mode !== undefined && !isMode(options.mode)) throw new TypeError('DuoEmulator.start: mode must be approve, deny or prompt.');
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

/** `addApplication`'s options: a client ID and secret as `start()` takes them. */
export function checkApplicationOptions(options: DuoEmulatorApplicationOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('addApplication: options must be an object.');
  for (const name of ['clientId', 'clientSecret'] as const) {
    const value = options[name];
    if (value !== undefined && (typeof value !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(value))) {
      throw new TypeError(`addApplication: ${name} must be 1 to 256 printable ASCII characters.`);
    }
  }
}

export function checkMode(mode: DuoEmulatorMode): DuoEmulatorMode {
  if (!isMode(mode)) throw new TypeError(`Unknown Duo emulator mode ${JSON.stringify(mode)}; use approve, deny or prompt.`);
  return mode;
}

/** `setFailure`'s arguments, checked, with the defaults of the failure's table entry. */
export function resolveFailure(failure: DuoEmulatorFailure, options: DuoEmulatorFailureOptions): FailureSetting {
  if (!isFailure(failure)) throw new TypeError(`Unknown Duo emulator failure ${JSON.stringify(failure)}.`);
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
  return {
    failure,
    endpoints: new Set(endpoints ?? DEFECTS[failure].endpoints),
    slowMs,
    retryAfter: retryAfter === undefined ? undefined : String(retryAfter),
  };
}

const AUTH_CONTEXT_KEYS: ReadonlySet<string> = new Set(['factor', 'reason', 'result']);
/** Duo's values are short printable text (the WebAuthn factors have spaces). */
const AUTH_CONTEXT_VALUE = /^[\x20-\x7e]{1,64}$/;

/** `setAuthContext`'s argument, checked, over the values set before (a key left out keeps its value). */
export function resolveAuthContext(context: DuoEmulatorAuthContext, current: AuthContextValues): AuthContextValues {
  if (context === null || typeof context !== 'object' || Array.isArray(context)) {
    throw new TypeError('setAuthContext: pass an object like { factor: "WebAuthn Security Key", reason: "user_approved", result: "success" }.');
  }
  for (const key of Object.keys(context)) {
    if (!AUTH_CONTEXT_KEYS.has(key)) throw new TypeError(`setAuthContext: unknown key ${JSON.stringify(key)}; the keys are factor, reason and result.`);
  }
  const next = { ...current };
  for (const key of ['factor', 'reason', 'result'] as const) {
    const value = context[key];
    if (value === undefined) continue;
    if (value !== null && (typeof value !== 'string' || !AUTH_CONTEXT_VALUE.test(value))) {
      throw new TypeError(`setAuthContext: ${key} must be 1 to 64 printable ASCII characters (Duo's raw value), or null to leave it out of the token.`);
    }
    next[key] = value;
  }
  return Object.freeze(next);
}

export function checkRememberedDevice(on: boolean): boolean {
  if (typeof on !== 'boolean') throw new TypeError('setRememberedDevice: pass true or false.');
  return on;
}

export function checkClockOffset(seconds: number): number {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) throw new TypeError('setClockOffset: seconds must be a finite number.');
  return seconds;
}
