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
  duo_timeout: 504,
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
  store_unavailable: 503,
} as const;

export type DuoErrorCode = keyof typeof DUO_ERROR_STATUS;

export class DuoError extends Error {
  override readonly name: string = 'DuoError';
  readonly code: DuoErrorCode;
  readonly status: number;

  constructor(code: DuoErrorCode, message: string) {
    super(message);
    this.code = code;
    this.status = DUO_ERROR_STATUS[code];
  }

  toJSON(): { name: string; code: DuoErrorCode; status: number; message: string } {
    return { name: this.name, code: this.code, status: this.status, message: this.message };
  }

  /** util.inspect (and so console.log) shows what toJSON shows, never hidden fields or causes. */
  [inspect.custom](): string {
    return `${this.name} [${this.code}] (${this.status}): ${this.message}`;
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
