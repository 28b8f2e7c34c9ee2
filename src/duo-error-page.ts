/**
 * The error page a browser sees when the second factor could not be passed:
 * the `errorPage` option's types, its defaults and checks, and the default page.
 * (The filter in `duo-exception.filter.ts` decides when a page is sent and runs
 * the app's render hook.)
 */
import { DUO_ERROR_STATUS, type DuoErrorCode } from './duo.errors.js';
import { DuoConfigError } from './protocol/index.js';
import { escapeHtml } from './protocol/html.js';
import { safeReturnPath, type DuoRequest } from './request.util.js';

/** Every string of the default error page. */
export interface DuoErrorPageTexts {
  /** The page's `lang` attribute (a BCP 47 tag such as `de` or `pt-BR`). Default `en`. */
  readonly lang: string;
  /** The heading per error code. Codes not listed get `fallbackTitle` (4xx) or `unavailableTitle` (5xx). */
  readonly titles: Readonly<Partial<Record<DuoErrorCode, string>>>;
  /** The explanation per error code, instead of the module's own (English) message. */
  readonly messages: Readonly<Partial<Record<DuoErrorCode, string>>>;
  /** The heading of a 4xx code without a title of its own. */
  readonly fallbackTitle: string;
  /** The heading of a 5xx code without a title of its own. */
  readonly unavailableTitle: string;
  /** The label of the link that starts the login again (to the page that asked for Duo). */
  readonly startAgain: string;
  /** The label of the link to `homePath`. */
  readonly home: string;
  /** The label before the error code in the page's footer. */
  readonly errorCode: string;
}

/** What `errorPage.texts` takes: any of the strings; `titles` and `messages` are merged over the defaults per code. */
export type DuoErrorPageTextOptions = Partial<Omit<DuoErrorPageTexts, 'titles' | 'messages'>> & {
  titles?: Partial<Record<DuoErrorCode, string>>;
  messages?: Partial<Record<DuoErrorCode, string>>;
};

/** What the `errorPage.render` hook is given for one page. A fresh object per answer; nothing in it is secret. */
export interface DuoErrorPageContext {
  /** The error code, e.g. `access_denied`. */
  readonly code: DuoErrorCode;
  /** The HTTP status the page is sent with. */
  readonly status: number;
  /** The heading the default page shows (from `texts`). Plain text: escape it. */
  readonly title: string;
  /** The explanation the default page shows (from `texts.messages`, else the module's message). Plain text: escape it. */
  readonly message: string;
  /** Where "start again" leads: a path on this site (the page that asked for Duo, or `/`). Escape it in an attribute. */
  readonly retryPath: string;
  /** The `homePath` option: a path on this site. */
  readonly homePath: string;
  /** Seconds until a retry makes sense, when Duo rate-limited us (also sent as `Retry-After`). */
  readonly retryAfterSeconds?: number;
  /** The resolved strings of the default page. */
  readonly texts: DuoErrorPageTexts;
  /** The request being answered (e.g. for its `Accept-Language` or the signed-in user, in your layout). */
  readonly request: DuoRequest;
  /** The module's default page for this error, optionally with other strings (e.g. in the request's language). */
  renderDefault(texts?: DuoErrorPageTextOptions): string;
}

/** The `errorPage` option: render errors in the app's own layout, or change the default page's strings and home link. */
export interface DuoErrorPageOptions {
  /**
   * Renders the page instead of the default one: return its HTML (or a promise of it).
   * It is sent as `text/html` with the error's status and the module's
   * `Cache-Control: no-store` and `Referrer-Policy: no-referrer`. A hook that
   * throws, rejects, returns anything but a non-empty string, or takes longer than
   * 2 s is logged (with the fix) and the default page is sent instead.
   * Escape what you put in the page: `title`, `message` and the paths are text.
   */
  render?: (page: DuoErrorPageContext) => string | Promise<string>;
  /** The default page's strings (i18n): any of them, per error code for titles and messages. */
  texts?: DuoErrorPageTextOptions;
  /** Where the page's home link leads: a path on this site. Default `/`. */
  homePath?: string;
}

/** The `errorPage` option after validation. */
export interface DuoErrorPageSettings {
  readonly render?: (page: DuoErrorPageContext) => string | Promise<string>;
  readonly texts: DuoErrorPageTexts;
  readonly homePath: string;
}

/** How long a render hook may take before the default page is sent instead. */
export const RENDER_TIMEOUT_MS = 2000;

const MAX_TEXT_LENGTH = 1000;
const LANG_TAG = /^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$/;

export const DEFAULT_ERROR_PAGE_TEXTS: DuoErrorPageTexts = deepFreeze({
  lang: 'en',
  titles: {
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
    duo_tls_pinning_failed: 'The connection to Duo is not trusted',
    session_changed: 'Your session changed during sign-in',
    primary_auth_required: 'Please sign in first',
    session_unavailable: 'Your session is unavailable',
    store_unavailable: 'Sign-in is unavailable',
    factor_rule_not_met: 'This page needs another kind of Duo sign-in',
    application_unknown: 'This site does not know this address',
    application_unavailable: 'Sign-in is unavailable',
  },
  messages: {},
  fallbackTitle: 'The second factor was not passed',
  unavailableTitle: 'Duo sign-in is unavailable',
  startAgain: 'Start again',
  home: 'Home',
  errorCode: 'Error code',
});

const PLAIN_TEXT_KEYS = ['lang', 'fallbackTitle', 'unavailableTitle', 'startAgain', 'home', 'errorCode'] as const;
const PER_CODE_KEYS = ['titles', 'messages'] as const;
const ERROR_PAGE_KEYS = ['render', 'texts', 'homePath'];

/**
 * Checks the `errorPage` option (each mistake a DuoConfigError naming the
 * option) and merges its texts over the defaults. An optional string given as
 * '' (an environment variable set but empty) counts as not given.
 */
export function resolveErrorPageSettings(option: unknown): DuoErrorPageSettings {
  if (option === undefined) return { texts: DEFAULT_ERROR_PAGE_TEXTS, homePath: '/' };
  if (!isPlainObject(option)) {
    throw new DuoConfigError('Duo option "errorPage" must be an object: { render?, texts?, homePath? }.');
  }
  for (const key of Object.keys(option)) {
    if (!ERROR_PAGE_KEYS.includes(key)) {
      throw new DuoConfigError(`Duo option "errorPage.${printableKey(key)}" is unknown: errorPage takes ${ERROR_PAGE_KEYS.join(', ')}.`);
    }
  }
  const { render, texts } = option;
  if (render !== undefined && typeof render !== 'function') {
    throw new DuoConfigError('Duo option "errorPage.render" must be a function of the page context that returns the HTML (or a promise of it).');
  }
  const homePath = option.homePath === '' ? undefined : option.homePath;
  if (homePath !== undefined && safeReturnPath(homePath, '') !== homePath) {
    throw new DuoConfigError('Duo option "errorPage.homePath" must be a path on this site, such as / or /dashboard.');
  }
  return {
    ...(render === undefined ? {} : { render: render as NonNullable<DuoErrorPageSettings['render']> }),
    texts: mergeTexts(DEFAULT_ERROR_PAGE_TEXTS, texts, 'errorPage.texts'),
    homePath: (homePath as string | undefined) ?? '/',
  };
}

/** `texts` (checked; errors name `where`) merged over `base`; frozen. */
export function mergeTexts(base: DuoErrorPageTexts, texts: unknown, where: string): DuoErrorPageTexts {
  if (texts === undefined) return base;
  if (!isPlainObject(texts)) throw new DuoConfigError(`Duo option "${where}" must be an object of strings.`);
  const merged: { -readonly [K in keyof DuoErrorPageTexts]: DuoErrorPageTexts[K] } = {
    ...base,
    titles: { ...base.titles },
    messages: { ...base.messages },
  };
  for (const [key, value] of Object.entries(texts)) {
    if ((PLAIN_TEXT_KEYS as readonly string[]).includes(key)) {
      const text = checkText(value, `${where}.${key}`);
      if (text === undefined) continue;
      if (key === 'lang' && !LANG_TAG.test(text)) {
        throw new DuoConfigError(`Duo option "${where}.lang" must be a language tag such as en, de or pt-BR.`);
      }
      merged[key as (typeof PLAIN_TEXT_KEYS)[number]] = text;
    } else if ((PER_CODE_KEYS as readonly string[]).includes(key)) {
      if (value === undefined) continue;
      if (!isPlainObject(value)) throw new DuoConfigError(`Duo option "${where}.${key}" must be an object from error codes to strings.`);
      const target = merged[key as (typeof PER_CODE_KEYS)[number]] as Partial<Record<DuoErrorCode, string>>;
      for (const [code, perCode] of Object.entries(value)) {
        if (!Object.hasOwn(DUO_ERROR_STATUS, code)) {
          throw new DuoConfigError(`Duo option "${where}.${key}.${printableKey(code)}" is not an error code of nestjs-duo (see the README's Errors table).`);
        }
        const text = checkText(perCode, `${where}.${key}.${code}`);
        if (text !== undefined) target[code as DuoErrorCode] = text;
      }
    } else {
      throw new DuoConfigError(
        `Duo option "${where}.${printableKey(key)}" is unknown: the texts are ${[...PLAIN_TEXT_KEYS, ...PER_CODE_KEYS].join(', ')}.`,
      );
    }
  }
  return deepFreeze(merged);
}

/** The heading for a code under `texts`. */
export function titleOf(texts: DuoErrorPageTexts, code: DuoErrorCode, status: number): string {
  return texts.titles[code] ?? (status >= 500 ? texts.unavailableTitle : texts.fallbackTitle);
}

/** What the default page needs of one error. */
export interface DuoErrorPageInput {
  code: DuoErrorCode;
  status: number;
  /** The module's message (used when `texts.messages` has none for the code). */
  message: string;
  retryPath: string;
  homePath: string;
}

/**
 * The default page: what happened, a way to start again and a way home.
 * Self-contained (inline style, no script, no external resource; the empty
 * data: icon keeps the browser from asking for /favicon.ico), every value escaped.
 */
export function renderDefaultErrorPage(input: DuoErrorPageInput, texts: DuoErrorPageTexts): string {
  const title = titleOf(texts, input.code, input.status);
  const message = texts.messages[input.code] ?? input.message;
  // When both would lead to the same page, "start again" is that way home.
  const home = input.retryPath === input.homePath ? '' : ` · <a href="${escapeHtml(input.homePath)}">${escapeHtml(texts.home)}</a>`;
  return `<!doctype html>
<html lang="${escapeHtml(texts.lang)}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.4rem}code{background:#f2f2f4;padding:.1rem .3rem;border-radius:4px}a{color:#0b57d0}</style></head>
<body><main><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>
<p><a href="${escapeHtml(input.retryPath)}">${escapeHtml(texts.startAgain)}</a>${home}</p>
<p><small>${escapeHtml(texts.errorCode)}: <code>${escapeHtml(input.code)}</code> (HTTP ${input.status})</small></p></main></body></html>
`;
}

/** A string of 1 to 1000 characters, or undefined for '' and undefined (not given). */
function checkText(value: unknown, name: string): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string' || value.length > MAX_TEXT_LENGTH) {
    throw new DuoConfigError(`Duo option "${name}" must be a string of at most ${MAX_TEXT_LENGTH} characters.`);
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A key of the app's own object, safe to quote in an error message. */
function printableKey(key: string): string {
  return key.replace(/[^\x20-\x7e]/g, '?').slice(0, 60);
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) if (typeof inner === 'object' && inner !== null) Object.freeze(inner);
  return Object.freeze(value);
}
