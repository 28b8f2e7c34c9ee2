/**
 * The public option and result types of the Duo emulator (`nestjs-duo/testing`).
 * `DuoEmulatorFailure` is derived from the table of defects, in `emulator.defects.ts`.
 */

/** What the emulated user does at the prompt. */
export type DuoEmulatorMode = 'approve' | 'deny' | 'prompt';

/** The certificate the emulator serves HTTPS with (`DuoEmulatorOptions.tls`). */
export interface DuoEmulatorTlsOptions {
  /** PEM private key. */
  key: string | Buffer;
  /** PEM certificate (chain), leaf first. */
  cert: string | Buffer;
  /**
   * Only for `authorize()`, which pins `cert`: the CA that signed `cert`, when
   * `cert` is not self-signed.
   */
  ca?: string | Buffer;
}

/** `DuoEmulator.start()`'s options; every one is optional. */
export interface DuoEmulatorOptions {
  /** Default `DIEMULATOR0000000001` (20 characters, as Duo's). */
  clientId?: string;
  /** Default: 40 random alphanumeric characters, fresh per instance. */
  clientSecret?: string;
  /** Default `approve`. */
  mode?: DuoEmulatorMode;
  /** Default 0 (a free port). The host is always 127.0.0.1. */
  port?: number;
  /** Lifetime of authorization codes (single-use), in seconds; default 60. */
  codeTtlSeconds?: number;
  /** Serve HTTPS instead of HTTP. */
  tls?: DuoEmulatorTlsOptions;
  /** `auth_context.factor` reported in id_tokens; default `duo_push`. `setAuthContext()` changes it later. */
  factor?: string;
  /** Receives one line per request (method, path, status, reason). Never a secret, code, token, assertion or state. */
  logger?: (line: string) => void;
}

/**
 * What the id_tokens of the next logins report in `auth_context`
 * (`DuoEmulator.setAuthContext()`): each value is Duo's raw text, e.g.
 * factor `duo_push`, `WebAuthn Security Key`, `sms_passcode`,
 * `remembered_device`; reason `user_approved`, `valid_passcode`,
 * `bypass_user`, `trusted_network`, `allow_unenrolled_user`; result
 * `success`. `null` leaves the claim out of the token. Values the emulator
 * does not know are sent as given (to test that a client refuses them).
 */
export interface DuoEmulatorAuthContext {
  factor?: string | null;
  reason?: string | null;
  result?: string | null;
}

/** Duo's three endpoints, as `setFailure` names them: the health check, authorize and token. */
export type DuoEmulatorEndpoint = 'health' | 'authorize' | 'token';

/** `setFailure()`'s options: where the failure hits, and the settings of `slow` and `rate_limited`. */
export interface DuoEmulatorFailureOptions {
  /** The endpoints that fail; default: the ones the failure is about. */
  endpoints?: DuoEmulatorEndpoint[];
  /** For `slow`: the delay before answering, in milliseconds; default 1000. */
  slowMs?: number;
  /**
   * For `rate_limited`: the `Retry-After` sent with the 429, either whole seconds
   * or a header value sent verbatim (an HTTP date, or anything a client should
   * cope with). Default: no `Retry-After`.
   */
  retryAfter?: number | string;
}

/** The emulator's counters since it started or since `resetStats()` / `reset()`. */
export interface DuoEmulatorStats {
  /** Calls to POST /oauth/v1/health_check (whatever the answer). */
  healthChecks: number;
  /** Calls to GET /oauth/v1/authorize (whatever the answer). */
  authorizations: number;
  /** Calls to POST /oauth/v1/token (whatever the answer). */
  tokenExchanges: number;
  /** Token calls that accepted the code and answered HTTP 200 (also with an injected token_* defect). */
  tokenExchangesOk: number;
  /** Authorization codes handed out. */
  codesIssued: number;
}

/** What the last verified authorize request asked for (for tests of the layers that build it). */
export interface DuoEmulatorAuthorizeRequest {
  username: string;
  redirectUri: string;
  useDuoCodeAttribute: boolean;
  nonce?: string;
  maxAge?: number;
  prompt?: string;
  destAppName?: string;
  destAppId?: string;
  displayUsername?: string;
}

/** `clientOptions()`'s answer: what a client needs to speak to this emulator. */
export interface DuoEmulatorClientOptions {
  clientId: string;
  clientSecret: string;
  apiBaseUrl: string;
  redirectUri: string;
}

/** `DuoEmulator.addApplication()`'s options. */
export interface DuoEmulatorApplicationOptions {
  /** Default: the next free `DIEMULATOR…` number (20 characters, as Duo's). */
  clientId?: string;
  /** Default: 40 random alphanumeric characters. */
  clientSecret?: string;
}
