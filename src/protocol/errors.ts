import { inspect } from 'node:util';

/**
 * Every failure nestjs-duo reports, with a stable machine-readable code and the
 * HTTP status it maps to. Messages are written for the developer reading a log:
 * they say what happened and what to do, and never carry a secret, an
 * assertion, a code, a token, a state or an upstream body.
 */
export const DUO_ERROR_STATUS = {
  config_invalid: 500,
  input_invalid: 400,
  duo_unavailable: 503,
  duo_overloaded: 503,
  /** Duo answered HTTP 429: up, but refusing this integration for now. Never a reason to fail open. */
  duo_rate_limited: 503,
  duo_timeout: 504,
  /** Duo's certificate or the TLS handshake was refused: a misconfiguration or an attack, never an outage. */
  duo_tls_failed: 502,
  duo_upstream_invalid: 502,
  duo_invalid_client: 502,
  duo_request_rejected: 502,
  code_invalid: 401,
  token_invalid: 502,
  username_mismatch: 401,
  nonce_mismatch: 401,
  second_factor_denied: 401,
  // Raised by the Nest layer around the protocol.
  state_invalid: 400,
  state_unknown: 400,
  transaction_expired: 401,
  access_denied: 401,
  duo_error: 401,
  primary_auth_required: 401,
  second_factor_required: 401,
  step_up_required: 401,
  session_unavailable: 503,
  session_changed: 401,
  store_unavailable: 503,
} as const;

export type DuoErrorCode = keyof typeof DUO_ERROR_STATUS;

/** The longest wait `retryAfterSeconds` passes on: beyond it, Duo's value is cut to this. */
export const MAX_RETRY_AFTER_SECONDS = 3600;

export interface DuoErrorDetails {
  /** For `duo_rate_limited`: how long Duo asked us to wait (its `Retry-After`), in seconds. Clamped to 1..3600. */
  retryAfterSeconds?: number;
}

export class DuoError extends Error {
  override readonly name: string = 'DuoError';
  readonly code: DuoErrorCode;
  readonly status: number;
  /**
   * For `duo_rate_limited`: Duo's `Retry-After` in whole seconds, 1 to 3600.
   * Absent when Duo sent none (or one that could not be read).
   */
  readonly retryAfterSeconds?: number;

  constructor(code: DuoErrorCode, message: string, details: DuoErrorDetails = {}) {
    super(message);
    this.code = code;
    this.status = DUO_ERROR_STATUS[code];
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
  }

  toJSON(): { name: string; code: DuoErrorCode; status: number; message: string; retryAfterSeconds?: number } {
    const json: { name: string; code: DuoErrorCode; status: number; message: string; retryAfterSeconds?: number } = {
      name: this.name,
      code: this.code,
      status: this.status,
      message: this.message,
    };
    if (this.retryAfterSeconds !== undefined) json.retryAfterSeconds = this.retryAfterSeconds;
    return json;
  }

  /** util.inspect (and so console.log) shows what toJSON shows, never hidden fields or causes. */
  [inspect.custom](): string {
    const retry = this.retryAfterSeconds === undefined ? '' : ` (retry after ${this.retryAfterSeconds} s)`;
    return `${this.name} [${this.code}] (${this.status}): ${this.message}${retry}`;
  }
}

/** A configuration mistake, reported when the module starts. */
export class DuoConfigError extends DuoError {
  override readonly name = 'DuoConfigError';
  constructor(message: string) {
    super('config_invalid', message);
  }
}

export function isDuoError(value: unknown): value is DuoError {
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
