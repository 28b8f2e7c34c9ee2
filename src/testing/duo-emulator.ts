import { inspect } from 'node:util';
import { API_HOST } from './emulator.constants.js';
import { EmulatorBrowser } from './emulator.browser.js';
import type { DuoEmulatorFailure } from './emulator.defects.js';
import { checkApplicationOptions, checkClockOffset, checkMode, checkOptions, checkRememberedDevice, resolveAuthContext, resolveFailure } from './emulator.options.js';
import { requestListener } from './emulator.router.js';
import { EmulatorServer } from './emulator.server.js';
import { EmulatorState, zeroStats } from './emulator.state.js';
import type {
  DuoEmulatorApplicationOptions,
  DuoEmulatorAuthContext,
  DuoEmulatorAuthorizeRequest,
  DuoEmulatorClientOptions,
  DuoEmulatorFailureOptions,
  DuoEmulatorMode,
  DuoEmulatorOptions,
  DuoEmulatorStats,
} from './emulator.types.js';

/** One Duo application of a DuoEmulator (`addApplication()`): its credentials, and the options for DuoModule's `applications`. */
export class DuoEmulatorApplication {
  readonly apiHost: string = API_HOST;
  readonly #secret: string;

  constructor(
    readonly emulator: DuoEmulator,
    readonly clientId: string,
    clientSecret: string,
  ) {
    this.#secret = clientSecret;
  }

  /** Its client secret: never in `toJSON()` or `inspect()`. */
  get clientSecret(): string {
    return this.#secret;
  }

  get baseUrl(): string {
    return this.emulator.baseUrl;
  }

  /** Options ready for one entry of DuoModule's `applications`, or `new DuoClient()`. */
  clientOptions(redirectUri: string): DuoEmulatorClientOptions {
    return { clientId: this.clientId, clientSecret: this.#secret, apiBaseUrl: this.baseUrl, redirectUri };
  }

  toJSON(): Record<string, unknown> {
    return { baseUrl: this.baseUrl, clientId: this.clientId };
  }

  [inspect.custom](): string {
    return `DuoEmulatorApplication ${JSON.stringify(this.toJSON())}`;
  }
}

/**
 * A local stand-in for Duo's Universal Prompt endpoints (health check,
 * authorize, token), speaking Duo's wire protocol over real HTTP(S) on
 * 127.0.0.1, with the same checks Duo makes and switchable failures.
 * For development and tests only: never expose it to a network.
 */
export class DuoEmulator {
  /** The Duo application's client ID (`clientId` option, or `DIEMULATOR0000000001`). */
  readonly clientId: string;
  /** Its client secret: never logged, never in `toJSON()` or `inspect()`. */
  readonly clientSecret: string;
  /** A Duo-shaped API hostname, for a config that wants `apiHost`; the emulator is reached at `baseUrl` (`apiBaseUrl`). */
  readonly apiHost: string = API_HOST;

  readonly #state: EmulatorState;
  readonly #browser: EmulatorBrowser;
  readonly #server: EmulatorServer;

  private constructor(options: DuoEmulatorOptions) {
    this.#state = new EmulatorState(options);
    this.clientId = this.#state.clientId;
    this.clientSecret = this.#state.clientSecret;
    this.#browser = new EmulatorBrowser(options.tls);
    this.#server = new EmulatorServer(options.tls, (server) => requestListener(this.#state, server, options.logger));
  }

  /** Starts an emulator listening on 127.0.0.1 (a free port unless `port` is given). */
  static async start(options: DuoEmulatorOptions = {}): Promise<DuoEmulator> {
    checkOptions(options);
    const emulator = new DuoEmulator(options);
    emulator.#state.baseUrl = await emulator.#server.listen(options.port ?? 0);
    return emulator;
  }

  /** `http://127.0.0.1:PORT` (`https://` with `tls`): the emulator's origin, for `apiBaseUrl`. */
  get baseUrl(): string {
    return this.#state.baseUrl;
  }

  /** Options ready to spread into `DuoModule.forRoot()` or `new DuoClient()`. */
  clientOptions(redirectUri: string): DuoEmulatorClientOptions {
    return { clientId: this.clientId, clientSecret: this.clientSecret, apiBaseUrl: this.baseUrl, redirectUri };
  }

  /**
   * One more Duo application on this emulator (staff and admin, a tenant
   * each): its own client ID and secret, at the same `baseUrl`. A code is
   * issued to the application whose authorize request it answers, and only
   * that application's client can exchange it. The mode, failure, auth
   * context, remembered device, clock and counters are the emulator's, shared
   * by all its applications (one Duo). Throws a TypeError for a taken or
   * malformed client ID.
   */
  addApplication(options: DuoEmulatorApplicationOptions = {}): DuoEmulatorApplication {
    checkApplicationOptions(options);
    const application = this.#state.addApplication(options.clientId, options.clientSecret);
    return new DuoEmulatorApplication(this, application.clientId, application.clientSecret);
  }

  /** What the emulated user does at the prompt now. */
  get mode(): DuoEmulatorMode {
    return this.#state.mode;
  }

  /** Sets what the emulated user does at the next prompts. */
  setMode(mode: DuoEmulatorMode): void {
    this.#state.mode = checkMode(mode);
  }

  /** What the id_tokens of the next logins report in `auth_context` (factor, reason, result; null: left out). */
  get authContext(): Required<DuoEmulatorAuthContext> {
    return { ...this.#state.authContext };
  }

  /**
   * Sets what the id_tokens of the next logins report in `auth_context`, e.g.
   * `{ factor: 'WebAuthn Security Key' }` for a security key, `{ factor:
   * 'bypass_code', reason: 'bypass_user' }` for a user in bypass status,
   * `{ factor: 'trusted_network', reason: 'trusted_network' }` for an
   * authorized network, `{ factor: 'not_available', reason:
   * 'allow_unenrolled_user' }` for an unenrolled user let through by policy.
   * Keys left out keep their value; `null` leaves the claim out of the token.
   * Each login keeps the values set when it was decided (the user approved or
   * Duo skipped the prompt). Values are Duo's raw text, sent as given, known
   * or not. `reset()` goes back to the start's (`factor` option or
   * `duo_push`, `user_approved`, `success`).
   */
  setAuthContext(context: DuoEmulatorAuthContext): void {
    this.#state.authContext = resolveAuthContext(context, this.#state.authContext);
  }

  /** Shorthand for `setAuthContext({ factor })`. */
  setFactor(factor: string | null): void {
    this.setAuthContext({ factor });
  }

  /** Whether a remembered device lets logins through without a prompt (`setRememberedDevice`). */
  get rememberedDevice(): boolean {
    return this.#state.rememberedDevice;
  }

  /**
   * Emulates a remembered device (Duo's "remember me" policy): while on, a
   * login that did not send `prompt=login` passes at once, without a prompt
   * and whatever the mode, and its id_token reports factor and reason
   * `remembered_device`. A login with `prompt=login` is asked as usual and
   * reports the values of `setAuthContext()`. Off after `reset()`.
   */
  setRememberedDevice(on: boolean): void {
    this.#state.rememberedDevice = checkRememberedDevice(on);
  }

  /** The failure switched on (`none`: none). */
  get failure(): DuoEmulatorFailure {
    return this.#state.failure.failure;
  }

  /**
   * Makes the emulator fail in one way until `setFailure('none')`. By default a
   * failure hits the endpoints it is about: `health_fail` the health check,
   * `token_*` the token call, the others all three endpoints.
   *
   * `rate_limited` answers HTTP 429 as Duo does when an integration sends too
   * many requests (JSON `{stat: "FAIL", code: 42901, message: "Too Many
   * Requests"}`, a page for the browser's authorize request), with `retryAfter`
   * as its `Retry-After`, before looking at the request: a code stays unused.
   */
  setFailure(failure: DuoEmulatorFailure, options: DuoEmulatorFailureOptions = {}): void {
    this.#state.failure = resolveFailure(failure, options);
  }

  /**
   * Sets Duo's clock to the real clock plus `seconds`. It shows in the health
   * check timestamp and in the times of the id_tokens; as at Duo, the client's
   * assertions and request JWTs are also checked against it, so an offset
   * beyond their lifetime (300 s for ours) makes Duo refuse them.
   */
  setClockOffset(seconds: number): void {
    this.#state.clockOffsetSeconds = checkClockOffset(seconds);
  }

  /** A copy of the counters. */
  get stats(): DuoEmulatorStats {
    return { ...this.#state.stats };
  }

  /** Zeroes the counters. */
  resetStats(): void {
    this.#state.stats = zeroStats();
  }

  /**
   * Back to how the emulator started, for a `beforeEach`: its first mode, no
   * failure, no clock offset, its first auth_context, no remembered device,
   * zeroed stats. Codes and jtis already used stay used.
   */
  reset(): void {
    this.setMode(this.#state.initialMode);
    this.#state.authContext = this.#state.initialAuthContext;
    this.#state.rememberedDevice = false;
    this.setFailure('none');
    this.setClockOffset(0);
    this.resetStats();
  }

  /** What the last verified authorize request asked for, or undefined. */
  get lastAuthorizeRequest(): DuoEmulatorAuthorizeRequest | undefined {
    const last = this.#state.lastAuthorizeRequest;
    return last === undefined ? undefined : { ...last };
  }

  /**
   * Runs an authorize URL of this emulator as a browser would (GET, no redirect
   * followed) and returns the Location Duo sends the browser to. In `prompt`
   * mode, pass the user's `decision`: the prompt page's form is then posted.
   * Throws when the emulator refuses the request (HTTP 400 page) or answers
   * anything but a redirect.
   */
  authorize(authUrl: string, decision?: 'approve' | 'deny'): Promise<string> {
    return this.#browser.authorize(this.baseUrl, authUrl, decision);
  }

  /** Stops listening and destroys every open connection, hung ones included. */
  close(): Promise<void> {
    return this.#server.close();
  }

  /** The client secret is never shown. */
  toJSON(): Record<string, unknown> {
    return { baseUrl: this.baseUrl, clientId: this.clientId, apiHost: this.apiHost, mode: this.mode, failure: this.failure };
  }

  /** `toJSON()`'s fields, for console.log: the client secret is never shown. */
  [inspect.custom](): string {
    return `DuoEmulator ${JSON.stringify(this.toJSON())}`;
  }
}
