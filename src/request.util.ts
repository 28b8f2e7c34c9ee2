import type { DuoRequest } from './duo.options.js';

function header(request: DuoRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** API clients (JSON or XHR) get JSON answers; a redirect through fetch would fail on Duo's CORS. */
export function wantsJson(request: DuoRequest): boolean {
  if ((header(request, 'x-requested-with') ?? '').toLowerCase() === 'xmlhttprequest') return true;
  const accept = (header(request, 'accept') ?? '').toLowerCase();
  return accept.includes('application/json') && !accept.includes('text/html');
}

const PLACEHOLDER_ORIGIN = 'http://return-to.invalid';
/** The longest return path kept (UTF-8 bytes, after normalisation): pending logins stay small in every store. */
export const MAX_RETURN_PATH_BYTES = 1024;

/**
 * A return target is only ever a path on this site. The value is parsed as a
 * URL against a placeholder origin; anything that leaves it (//evil, /\evil,
 * https:..., javascript:...) or carries control characters falls back to
 * `fallback` (`/`), and so does the result of normalising it when that would
 * leave (`/..//evil` becomes `//evil`). A normalised path longer than 1024 bytes
 * loses its query and fragment, or falls back when the path alone is longer.
 * Use it for every `returnTo` your app accepts (a login form's, say).
 */
export function safeReturnPath(value: unknown, fallback = '/'): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return fallback;
  if (!value.startsWith('/') || value.startsWith('//') || value.includes('\\') || /[\x00-\x1f\x7f]/.test(value)) return fallback;
  let url: URL;
  try {
    url = new URL(value, PLACEHOLDER_ORIGIN);
  } catch {
    return fallback;
  }
  if (url.origin !== PLACEHOLDER_ORIGIN) return fallback;
  const target = `${url.pathname}${url.search}${url.hash}`;
  // Normalising dot segments can produce what the input checks refused ("/..//evil" -> "//evil"): check again.
  if (target.startsWith('//') || target.startsWith('/\\')) return fallback;
  if (Buffer.byteLength(target) <= MAX_RETURN_PATH_BYTES) return target;
  return Buffer.byteLength(url.pathname) <= MAX_RETURN_PATH_BYTES ? url.pathname : fallback;
}

/** The path and query the browser asked for (Express: originalUrl; Fastify: url). */
export function requestPath(request: DuoRequest): string {
  const raw = (request.originalUrl ?? request.url ?? '/') as string;
  return raw;
}

/** Query parameters by name: exactly one string, or undefined when absent; arrays and objects are reported as such. */
export function singleQueryValue(request: DuoRequest, name: string): { value?: string; malformed: boolean } {
  const query = (request.query ?? {}) as Record<string, unknown>;
  const raw = Object.prototype.hasOwnProperty.call(query, name) ? query[name] : undefined;
  if (raw === undefined) {
    // `name[]=x` or `name[a]=x` with a simple query parser arrive under another key: still malformed.
    const bracketed = Object.keys(query).some((key) => key.startsWith(`${name}[`));
    return { malformed: bracketed };
  }
  if (typeof raw !== 'string') return { malformed: true };
  return { value: raw, malformed: false };
}

/** Whether a query parameter appears at all, in whatever shape. */
export function hasQueryParam(request: DuoRequest, name: string): boolean {
  const query = (request.query ?? {}) as Record<string, unknown>;
  return Object.keys(query).some((key) => key === name || key.startsWith(`${name}[`));
}
