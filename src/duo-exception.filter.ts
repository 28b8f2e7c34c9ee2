import { Catch, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { HttpAdapterHost, type AbstractHttpAdapter } from '@nestjs/core';
import { DuoHttpException, type DuoErrorBody } from './duo.exception.js';
import type { DuoRequest } from './duo.options.js';
import { escapeHtml } from './protocol/html.js';
import { wantsJson } from './request.util.js';

const TITLES: Partial<Record<string, string>> = {
  access_denied: 'Duo denied the sign-in',
  second_factor_denied: 'Duo denied the sign-in',
  transaction_expired: 'The sign-in expired',
  state_unknown: 'This sign-in link is no longer valid',
  state_invalid: 'This sign-in response is not valid',
  duo_unavailable: 'Duo is unavailable',
  duo_overloaded: 'Duo is busy',
  duo_timeout: 'Duo did not answer in time',
  duo_rate_limited: 'Duo is busy',
  duo_tls_failed: 'The connection to Duo is not trusted',
  session_changed: 'Your session changed during sign-in',
  primary_auth_required: 'Please sign in first',
  session_unavailable: 'Your session is unavailable',
  store_unavailable: 'Sign-in is unavailable',
};


/** The short page a browser sees when the second factor could not be passed: what happened and a way to start again. */
export function renderDuoErrorPage(body: DuoErrorBody, retryPath: string): string {
  const title = TITLES[body.error] ?? (body.statusCode >= 500 ? 'Duo sign-in is unavailable' : 'The second factor was not passed');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.4rem}code{background:#f2f2f4;padding:.1rem .3rem;border-radius:4px}a{color:#0b57d0}</style></head>
<body><main><h1>${escapeHtml(title)}</h1><p>${escapeHtml(body.message)}</p>
<p><a href="${escapeHtml(retryPath)}">Start again</a></p>
<p><small>Error code: <code>${escapeHtml(body.error)}</code> (HTTP ${body.statusCode})</small></p></main></body></html>
`;
}

/**
 * Answers every DuoHttpException: 303 to Duo or to the login page, JSON for API
 * clients, a short HTML page for browsers. Never a stack trace, never a 500 for
 * a bad callback. Works through the HTTP adapter, on Express and Fastify.
 */
@Catch(DuoHttpException)
export class DuoExceptionFilter implements ExceptionFilter<DuoHttpException> {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  catch(exception: DuoHttpException, host: ArgumentsHost): DuoHttpException | void {
    // GraphQL and other transports render errors themselves: hand the exception back.
    if (host.getType() !== 'http') return exception;
    const http = host.switchToHttp();
    writeDuoAnswer(this.adapterHost.httpAdapter, http.getRequest<DuoRequest>(), http.getResponse<unknown>(), exception);
  }
}

/** Every answer of the module's: never cached, and never handing its URL (codes, states) on as a Referer. */
export function noStore(adapter: AbstractHttpAdapter, response: unknown): void {
  adapter.setHeader(response, 'Cache-Control', 'no-store');
  adapter.setHeader(response, 'Referrer-Policy', 'no-referrer');
}

/**
 * What a guard returns for a request it has answered itself: a promise that never
 * settles, so the route, its interceptors and the exception filters never run and
 * nothing else writes to the response (as @nestjs/passport does when a strategy
 * redirects). Nothing holds the promise once the response is done.
 */
export function answeredHere(): Promise<boolean> {
  return new Promise<boolean>(() => undefined);
}

/**
 * Writes the answer for a DuoHttpException through the HTTP adapter: the filter
 * uses it, and so does the guard for the answers it gives itself (the 303 to Duo,
 * the 401 with `location`), which must not depend on the app's exception filters.
 */
export function writeDuoAnswer(adapter: AbstractHttpAdapter, request: DuoRequest, response: unknown, exception: DuoHttpException): void {
  if (adapter.isHeadersSent(response)) {
    adapter.end(response);
    return;
  }
  noStore(adapter, response);
  if (exception.redirectTo) {
    adapter.redirect(response, 303, exception.redirectTo);
    return;
  }
  if (exception.retryAfterSeconds !== undefined) adapter.setHeader(response, 'Retry-After', String(exception.retryAfterSeconds));
  const body = exception.getResponse() as DuoErrorBody;
  if (wantsJson(request)) {
    adapter.reply(response, body, exception.getStatus());
    return;
  }
  adapter.setHeader(response, 'Content-Type', 'text/html; charset=utf-8');
  adapter.reply(response, renderDuoErrorPage(body, exception.retryPath), exception.getStatus());
}
