import { inspect } from 'node:util';

/**
 * The protocol layer's failures, each with a stable machine-readable code.
 * Messages are written for the developer reading a log: they say what
 * happened and what to do, and never carry a secret, an assertion, a code, a
 * token, a state or an upstream body. HTTP statuses are not the protocol's
 * business: the Nest layer maps codes to them (`src/duo.errors.ts`).
 */
export const DUO_PROTOCOL_ERROR_CODES = [
  'config_invalid',
  'input_invalid',
  'state_invalid',
  'duo_unavailable',
  'duo_overloaded',
  /** Duo answered HTTP 429: up, but refusing this integration for now. Never a reason to fail open. */
  'duo_rate_limited',
  'duo_timeout',
  /** Duo's certificate or the TLS handshake was refused: a misconfiguration or an attack, never an outage. */
  'duo_tls_failed',
  /**
   * With `tls.pinning` "duo": Duo's certificate does not lead to one of the root CAs Duo pins
   * (a TLS-inspecting proxy, or not Duo at all). Never an outage, never a reason to fail open.
   */
  'duo_tls_pinning_failed',
  'duo_upstream_invalid',
  'duo_invalid_client',
  'duo_request_rejected',
  'code_invalid',
  'token_invalid',
  'username_mismatch',
  'nonce_mismatch',
  'second_factor_denied',
] as const;

export type DuoProtocolErrorCode = (typeof DUO_PROTOCOL_ERROR_CODES)[number];

/** For `token_invalid` and friends: which id_token check failed (no claim value, nothing secret). */
export type DuoTokenCheck =
  | 'malformed'
  | 'alg'
  | 'signature'
  | 'exp'
  | 'nbf'
  | 'iat'
  | 'iss'
  | 'aud'
  | 'preferred_username'
  | 'nonce'
  | 'auth_time'
  | 'auth_result';

/** The longest wait `retryAfterSeconds` passes on: beyond it, Duo's value is cut to this. */
export const MAX_RETRY_AFTER_SECONDS = 3600;

export interface DuoErrorDetails {
  /** For `duo_rate_limited`: how long Duo asked us to wait (its `Retry-After`), in seconds. Clamped to 1..3600. */
  retryAfterSeconds?: number;
  /** For a refused id_token: which check failed. */
  check?: DuoTokenCheck;
}

/**
 * A failure with a stable code. The protocol layer raises its own codes; the
 * Nest layer raises DuoErrors with its codes too (`DuoError<DuoErrorCode>`).
 */
export class DuoError<Code extends string = DuoProtocolErrorCode> extends Error {
  override readonly name: string = 'DuoError';
  readonly code: Code;
  /**
   * For `duo_rate_limited`: Duo's `Retry-After` in whole seconds, 1 to 3600.
   * Absent when Duo sent none (or one that could not be read).
   */
  readonly retryAfterSeconds?: number;
  /** For a refused id_token: which check failed. */
  readonly check?: DuoTokenCheck;

  constructor(code: Code, message: string, details: DuoErrorDetails = {}) {
    super(message);
    this.code = code;
    const retryAfter = details.retryAfterSeconds;
    if (typeof retryAfter === 'number' && Number.isFinite(retryAfter)) {
      // Read-only at run time too, not only for TypeScript.
      Object.defineProperty(this, 'retryAfterSeconds', {
        value: Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(retryAfter))),
        enumerable: true,
        writable: false,
        configurable: false,
      });
    }
    if (details.check !== undefined) Object.defineProperty(this, 'check', { value: details.check, enumerable: true, writable: false, configurable: false });
  }

  toJSON(): { name: string; code: Code; message: string; retryAfterSeconds?: number; check?: DuoTokenCheck } {
    const json: { name: string; code: Code; message: string; retryAfterSeconds?: number; check?: DuoTokenCheck } = {
      name: this.name,
      code: this.code,
      message: this.message,
    };
    if (this.retryAfterSeconds !== undefined) json.retryAfterSeconds = this.retryAfterSeconds;
    if (this.check !== undefined) json.check = this.check;
    return json;
  }

  /** util.inspect (and so console.log) shows what toJSON shows, never hidden fields or causes. */
  [inspect.custom](): string {
    const retry = this.retryAfterSeconds === undefined ? '' : ` (retry after ${this.retryAfterSeconds} s)`;
    const check = this.check === undefined ? '' : ` (check: ${this.check})`;
    return `${this.name} [${this.code}]: ${this.message}${check}${retry}`;
  }
}

/** A configuration mistake, reported when the module starts. */
export class DuoConfigError extends DuoError<'config_invalid'> {
  override readonly name = 'DuoConfigError';
  constructor(message: string) {
    super('config_invalid', message);
  }
}

/** Whatever its code: the protocol's or the Nest layer's. */
export function isDuoError(value: unknown): value is DuoError<string> {
  return value instanceof DuoError;
}

/**
 * Upstream text (Duo's `message`, `error_description`) shown in our messages is
 * cut short and stripped to printable ASCII, so that an answer can never smuggle
 * a long body, a token or control characters into a log line.
 */
export function upstreamText(value: unknown, max = 120): string | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const text = String(value).replace(/[^\x20-\x7e]/g, '?');
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
