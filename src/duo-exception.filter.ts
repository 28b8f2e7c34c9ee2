import { Catch, Inject, type ArgumentsHost, type ExceptionFilter, type LoggerService } from '@nestjs/common';
import { HttpAdapterHost, type AbstractHttpAdapter } from '@nestjs/core';
import { DuoContext } from './duo.context.js';
import { DuoHttpException, type DuoErrorBody } from './duo.exception.js';
import {
  DEFAULT_ERROR_PAGE_TEXTS,
  RENDER_TIMEOUT_MS,
  mergeTexts,
  renderDefaultErrorPage,
  titleOf,
  type DuoErrorPageContext,
  type DuoErrorPageInput,
  type DuoErrorPageSettings,
  type DuoErrorPageTextOptions,
} from './duo-error-page.js';
import type { DuoRequest } from './duo.options.js';
import { safeReturnPath, wantsJson } from './request.util.js';
import { Throttle } from './throttle.js';

/** How often a failing render hook is reported: the first failure, then at most once a minute. */
const RENDER_FAILURE_LOG_INTERVAL_MS = 60_000;
const TIMED_OUT = Symbol('timed out');

/**
 * The HTML pages of one Duo application: the default page with the configured
 * strings, or the app's render hook, which never turns an error page into a 500.
 */
export class DuoErrorPages {
  readonly #failures = new Throttle(RENDER_FAILURE_LOG_INTERVAL_MS);

  constructor(
    private readonly settings: DuoErrorPageSettings,
    private readonly logger?: LoggerService,
  ) {}

  /** The page for an exception: a string, or a promise of one (with a render hook) that never rejects. */
  html(exception: DuoHttpException, request: DuoRequest): string | Promise<string> {
    const body = exception.getResponse() as DuoErrorBody;
    const input: DuoErrorPageInput = {
      code: body.error,
      status: exception.getStatus(),
      message: body.message,
      // Already a safe path where it is made; checked again here, since it goes into an href.
      retryPath: safeReturnPath(exception.retryPath, this.settings.homePath),
      homePath: this.settings.homePath,
    };
    const texts = this.settings.texts;
    const renderDefault = (other?: DuoErrorPageTextOptions): string =>
      renderDefaultErrorPage(input, other === undefined ? texts : mergeTexts(texts, other, 'renderDefault() texts'));
    const render = this.settings.render;
    if (!render) return renderDefault();
    const page: DuoErrorPageContext = Object.freeze({
      code: input.code,
      status: input.status,
      title: titleOf(texts, input.code, input.status),
      message: texts.messages[input.code] ?? input.message,
      retryPath: input.retryPath,
      homePath: input.homePath,
      ...(exception.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: exception.retryAfterSeconds }),
      texts,
      request,
      renderDefault,
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), RENDER_TIMEOUT_MS);
      timer.unref();
    });
    const rendered = (async () => render(page))();
    return Promise.race([rendered, deadline]).then(
      (html) => {
        clearTimeout(timer);
        if (typeof html === 'string' && html.length > 0) return html;
        this.#failed(input.code, html === TIMED_OUT ? `did not answer within ${RENDER_TIMEOUT_MS} ms` : `returned ${describe(html)}`);
        return renderDefault();
      },
      (error: unknown) => {
        clearTimeout(timer);
        this.#failed(input.code, `threw${error instanceof Error ? ` (${error.name})` : ''}`);
        return renderDefault();
      },
    );
  }

  #failed(code: string, what: string): void {
    const suppressed = this.#failures.pass();
    if (suppressed === undefined) return;
    const more = suppressed > 0 ? ` (${suppressed} more failure${suppressed === 1 ? '' : 's'} since the last report)` : '';
    this.logger?.error(
      `The errorPage.render hook ${what} for a "${code}" page; the default page was sent instead${more}. ` +
        `Fix the hook: it must return the page's HTML as a non-empty string (or a promise of one) within ${RENDER_TIMEOUT_MS / 1000} s, and not throw.`,
    );
  }
}

/** What a hook returned instead of a page, for the log line (never the value itself). */
function describe(value: unknown): string {
  if (value === '') return 'an empty string';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`;
}

/** The pages of one Duo application, shared by every filter instance (each module that binds the filter has one). */
const PAGES = new WeakMap<DuoContext, DuoErrorPages>();

function pagesOf(context: DuoContext): DuoErrorPages {
  let pages = PAGES.get(context);
  if (!pages) {
    pages = new DuoErrorPages(context.settings.errorPage, context.logger);
    PAGES.set(context, pages);
  }
  return pages;
}

/** The default page with the default strings, for answers written without the module's settings. */
const DEFAULT_PAGES = new DuoErrorPages({ texts: DEFAULT_ERROR_PAGE_TEXTS, homePath: '/' });

/**
 * Answers every DuoHttpException: 303 to Duo or to the login page, JSON for API
 * clients, a short HTML page for browsers. Never a stack trace, never a 500 for
 * a bad callback. Works through the HTTP adapter, on Express and Fastify.
 */
@Catch(DuoHttpException)
export class DuoExceptionFilter implements ExceptionFilter<DuoHttpException> {
  readonly #pages: DuoErrorPages;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(DuoContext) context: DuoContext,
  ) {
    this.#pages = pagesOf(context);
  }

  catch(exception: DuoHttpException, host: ArgumentsHost): DuoHttpException | void | Promise<void> {
    // GraphQL and other transports render errors themselves: hand the exception back.
    if (host.getType() !== 'http') return exception;
    const http = host.switchToHttp();
    return writeDuoAnswer(this.adapterHost.httpAdapter, http.getRequest<DuoRequest>(), http.getResponse<unknown>(), exception, this.#pages);
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
 * `pages` renders the HTML page (the default page with the default strings when
 * not given: the guard's own answers are never pages). With a render hook the
 * answer is written once the hook settles: the promise returned never rejects.
 */
export function writeDuoAnswer(
  adapter: AbstractHttpAdapter,
  request: DuoRequest,
  response: unknown,
  exception: DuoHttpException,
  pages: DuoErrorPages = DEFAULT_PAGES,
): void | Promise<void> {
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
  const html = pages.html(exception, request);
  if (typeof html === 'string') return sendPage(adapter, response, html, exception.getStatus());
  return html.then((page) => {
    // The connection may have been answered or closed meanwhile (a server timeout, say).
    if (adapter.isHeadersSent(response)) return;
    sendPage(adapter, response, page, exception.getStatus());
  });
}

function sendPage(adapter: AbstractHttpAdapter, response: unknown, html: string, status: number): void {
  adapter.setHeader(response, 'Content-Type', 'text/html; charset=utf-8');
  adapter.reply(response, html, status);
}
