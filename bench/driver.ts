import { Agent, request } from 'undici';

/** The steps of one complete login, as a browser walks them. */
export type LoginStep = 'login' | 'start' | 'duo' | 'callback' | 'account' | 'logout';

export interface StepRecord {
  step: LoginStep;
  /** HTTP status; 0 when the request failed without an answer. */
  status: number;
  ms: number;
}

export interface LoginOutcome {
  ok: boolean;
  /** The step that failed, when not ok. */
  failedAt?: LoginStep;
  status?: number;
  /** A short reason when not ok. */
  reason?: string;
  /** nestjs-duo's error code from the error page (duo_overloaded, duo_timeout, ...), when there was one. */
  code?: string;
  ms: number;
  steps: StepRecord[];
  /** The verified session's cookie (`connect.sid=...`), when ok. */
  cookie?: string;
}

export interface LoginDriverOptions {
  /**
   * The app's origin, e.g. http://127.0.0.1:3000; or several instances' origins,
   * taken in turn request by request (behind a round-robin load balancer, so a
   * login's callback lands on another instance than its start).
   */
  appUrl: string | readonly string[];
  /** Runs Duo's prompt for an authorize URL and returns where Duo sends the browser back (DuoEmulator.authorize). */
  authorize: (url: string) => Promise<string>;
  /** Keep-alive connections from the "browsers" to the app. Default 64. */
  connections?: number;
  /** Give up on one app request after this long (the load run's bound, not the app's deadline). Default 30 s. */
  requestTimeoutMs?: number;
  /** Called for every answer of the app, for latency bounds. */
  onAppResponse?: (record: StepRecord) => void;
}

/** Walks complete logins through a Nest app and the Duo emulator, keeping the session cookie like a browser. */
export class LoginDriver {
  readonly #agent: Agent;
  readonly #options: LoginDriverOptions;
  readonly #appUrls: readonly string[];
  #next = 0;

  constructor(options: LoginDriverOptions) {
    this.#options = options;
    this.#appUrls = typeof options.appUrl === 'string' ? [options.appUrl] : options.appUrl;
    if (this.#appUrls.length === 0) throw new Error('LoginDriver: no appUrl');
    const timeout = options.requestTimeoutMs ?? 30_000;
    this.#agent = new Agent({ connections: options.connections ?? 64, keepAliveTimeout: 10_000, headersTimeout: timeout, bodyTimeout: timeout });
  }

  /** One app request: status, Location, the session cookie it sets, the body as text. */
  async http(
    method: 'GET' | 'POST',
    path: string,
    cookie: string | undefined,
    body?: unknown,
  ): Promise<{ status: number; location?: string; setCookie?: string; text: string; ms: number }> {
    const started = performance.now();
    const headers: Record<string, string> = { accept: 'text/html' };
    if (cookie) headers.cookie = cookie;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const appUrl = this.#appUrls[this.#next++ % this.#appUrls.length]!;
    const response = await request(`${appUrl}${path}`, {
      method,
      headers,
      dispatcher: this.#agent,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.body.text();
    const location = response.headers.location;
    const rawCookies = response.headers['set-cookie'];
    const cookies = rawCookies === undefined ? [] : Array.isArray(rawCookies) ? rawCookies : [rawCookies];
    const sid = cookies.map((line) => line.split(';', 1)[0]!).find((pair) => pair.startsWith('connect.sid='));
    return {
      status: response.statusCode,
      ...(typeof location === 'string' ? { location } : {}),
      ...(sid ? { setCookie: sid } : {}),
      text,
      ms: performance.now() - started,
    };
  }

  /** login -> guard's 303 to Duo -> Duo's prompt -> callback (code exchange) -> protected page [-> logout]. */
  async login(username: string, options: { logout?: boolean } = {}): Promise<LoginOutcome> {
    const started = performance.now();
    const steps: StepRecord[] = [];
    const fail = (failedAt: LoginStep, status: number, reason: string, text?: string): LoginOutcome => {
      const code = text === undefined ? undefined : /Error code: <code>([a-z_]+)<\/code>/.exec(text)?.[1];
      return { ok: false, failedAt, status, reason, ...(code ? { code } : {}), ms: performance.now() - started, steps };
    };
    const app = async (step: LoginStep, method: 'GET' | 'POST', path: string, cookie: string | undefined, body?: unknown) => {
      try {
        const answer = await this.http(method, path, cookie, body);
        const record = { step, status: answer.status, ms: answer.ms };
        steps.push(record);
        this.#options.onAppResponse?.(record);
        return answer;
      } catch (error) {
        const record = { step, status: 0, ms: performance.now() - started };
        steps.push(record);
        this.#options.onAppResponse?.(record);
        throw Object.assign(new Error(`${step}: ${(error as Error).message}`), { step });
      }
    };
    try {
      const login = await app('login', 'POST', '/login', undefined, { username });
      if (login.status !== 201 || !login.setCookie) return fail('login', login.status, 'primary login refused');
      let cookie = login.setCookie;

      const start = await app('start', 'GET', '/account', cookie);
      if (start.status !== 303 || !start.location) return fail('start', start.status, 'the guard did not send the browser to Duo', start.text);

      const duoStarted = performance.now();
      let back: string;
      try {
        back = await this.#options.authorize(start.location);
      } catch (error) {
        steps.push({ step: 'duo', status: 0, ms: performance.now() - duoStarted });
        return fail('duo', 0, `Duo's prompt failed: ${(error as Error).message}`);
      }
      if (back.startsWith('ERROR')) {
        steps.push({ step: 'duo', status: 0, ms: performance.now() - duoStarted });
        return fail('duo', 0, back);
      }
      steps.push({ step: 'duo', status: 302, ms: performance.now() - duoStarted });
      const backUrl = new URL(back);

      const callback = await app('callback', 'GET', `${backUrl.pathname}${backUrl.search}`, cookie);
      if (callback.status !== 303 || callback.location !== '/account') return fail('callback', callback.status, 'the callback did not complete', callback.text);
      if (callback.setCookie) cookie = callback.setCookie;

      const account = await app('account', 'GET', '/account', cookie);
      if (account.status !== 200 || account.text !== `account of ${username}`) return fail('account', account.status, 'the protected page was not served', account.text);

      if (options.logout) {
        const logout = await app('logout', 'POST', '/logout', cookie);
        if (logout.status !== 201) return fail('logout', logout.status, 'logout failed');
      }
      return { ok: true, ms: performance.now() - started, steps, cookie };
    } catch (error) {
      const step = (error as { step?: LoginStep }).step ?? 'login';
      return fail(step, 0, (error as Error).message);
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

/** The session id inside an express-session cookie (`connect.sid=s%3A<id>.<signature>`). */
export function sessionIdOf(cookie: string): string {
  const value = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1));
  return value.startsWith('s:') ? value.slice(2, value.lastIndexOf('.')) : value;
}
