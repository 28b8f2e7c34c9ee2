import { upstreamText } from './protocol/errors.js';

/**
 * The request object of the HTTP platform (Express or Fastify), as the module
 * reads it. Public methods take any request object; hooks such as `getUsername`
 * receive it under this type.
 */
export type DuoRequest = Record<string, unknown> & { headers: Record<string, string | string[] | undefined> };

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

/** One query parameter of the callback: its value when it appears exactly once. */
export interface QueryValue {
  value?: string;
  /** It appears more than once: never guess which one was meant. */
  repeated: boolean;
  present: boolean;
}

/**
 * Reads query parameters from the raw URL with URLSearchParams, each name at
 * most once, the same on Express and Fastify whatever query parser the app
 * set (`state[]=x` is a parameter named `state[]`, not an array `state`).
 */
export function rawQuery(request: DuoRequest, names: readonly string[]): Record<string, QueryValue> {
  let params: URLSearchParams;
  try {
    params = new URL(requestPath(request), 'http://request.invalid').searchParams;
  } catch {
    params = new URLSearchParams();
  }
  const values: Record<string, QueryValue> = {};
  for (const name of names) {
    const all = params.getAll(name);
    values[name] = all.length === 1 ? { value: all[0]!, repeated: false, present: true } : { repeated: all.length > 1, present: all.length > 0 };
  }
  return values;
}

/** Text from a request or from Duo, safe for a log line: printable ASCII, cut short. */
export function printable(value: string, max = 80): string {
  return upstreamText(value, max) ?? '';
}
