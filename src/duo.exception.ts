import { HttpException } from '@nestjs/common';
import type { DuoError, DuoErrorCode } from './protocol/index.js';

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

  constructor(error: DuoError, options: { redirectTo?: string; location?: string; retryPath?: string } = {}) {
    const status = error.status;
    const body: DuoErrorBody = { statusCode: status, error: error.code, message: error.message };
    if (options.location) body.location = options.location;
    super(body, status);
    this.code = error.code;
    this.retryPath = options.retryPath ?? '/';
    if (options.redirectTo) this.redirectTo = options.redirectTo;
    const retryAfter = (error as { retryAfterSeconds?: unknown }).retryAfterSeconds;
    if (typeof retryAfter === 'number' && Number.isInteger(retryAfter) && retryAfter > 0) this.retryAfterSeconds = retryAfter;
  }
}
