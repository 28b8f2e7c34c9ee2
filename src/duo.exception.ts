import { HttpException } from '@nestjs/common';
import type { DuoError } from './protocol/index.js';
import { statusOf, type DuoErrorCode } from './duo.errors.js';

/** The JSON body of every answer nestjs-duo gives an API client. */
export interface DuoErrorBody {
  statusCode: number;
  error: DuoErrorCode;
  message: string;
  /** For `second_factor_required`: send the browser here (a full-page navigation) to pass Duo. */
  location?: string;
}

/**
 * A DuoError on its way to the browser. The filter renders it as JSON for API
 * clients, as a short HTML page for browsers, or as a 303 when `redirectTo` is set.
 */
export class DuoHttpException extends HttpException {
  readonly code: DuoErrorCode;
  readonly redirectTo?: string;
  /** Where the HTML page's "start again" link points. */
  readonly retryPath: string;

  /** Sent as `Retry-After` (seconds): Duo's own, passed on when Duo rate-limits us. */
  readonly retryAfterSeconds?: number;

  constructor(error: DuoError<string>, options: { redirectTo?: string; location?: string; retryPath?: string } = {}) {
    const status = statusOf(error.code);
    const body: DuoErrorBody = { statusCode: status, error: error.code as DuoErrorCode, message: error.message };
    if (options.location) body.location = options.location;
    super(body, status);
    this.code = error.code as DuoErrorCode;
    this.retryPath = options.retryPath ?? '/';
    if (options.redirectTo) this.redirectTo = options.redirectTo;
    const retryAfter = (error as { retryAfterSeconds?: unknown }).retryAfterSeconds;
    if (typeof retryAfter === 'number' && Number.isInteger(retryAfter) && retryAfter > 0) this.retryAfterSeconds = retryAfter;
  }
}

/**
 * Builds an answer that is not a failure (the guard's 303 to Duo, its 401 that
 * says where to go) without capturing a stack trace, which nobody reads: the
 * guard writes these answers itself. Node's own internal errors do the same
 * with `Error.stackTraceLimit`; the limit is restored before anything else runs.
 */
export function withoutStack<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  try {
    Error.stackTraceLimit = 0;
  } catch {
    // Frozen intrinsics (node --frozen-intrinsics): a stack it is.
    return make();
  }
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
