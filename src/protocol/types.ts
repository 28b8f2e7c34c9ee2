import type { DuoNonce } from './nonce.js';

/** What Duo's health check told us. */
export interface DuoHealthCheckResult {
  /** Duo's clock, Unix seconds. */
  timestamp: number;
  /** Duo's clock minus ours, in seconds (positive: our clock is behind). */
  clockOffsetSeconds: number;
  /** Set when the offset is beyond `clockSkewWarningSeconds`: what to fix. */
  clockSkewWarning?: string;
}

export interface DuoAuthResultClaim {
  result?: string;
  status: string;
  status_msg?: string;
}

export interface DuoDeviceLocation {
  city?: string;
  country?: string;
  state?: string;
}

export interface DuoAuthContext {
  txid?: string;
  timestamp?: number;
  factor?: string;
  reason?: string;
  result?: string;
  event_type?: string;
  user?: { name?: string; key?: string; groups?: string[] };
  application?: { name?: string; key?: string };
  auth_device?: { ip?: string | null; name?: string | null; location?: DuoDeviceLocation };
  access_device?: {
    ip?: string | null;
    hostname?: string | null;
    browser?: string;
    browser_version?: string;
    os?: string;
    os_version?: string;
    location?: DuoDeviceLocation;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** The claims of a verified Duo id_token: the result of a passed second factor. */
export interface DuoIdTokenClaims {
  iss: string;
  aud: string | string[];
  sub: string;
  exp: number;
  iat: number;
  nbf?: number;
  auth_time?: number;
  preferred_username: string;
  nonce?: string;
  amr?: string[];
  auth_result: DuoAuthResultClaim;
  auth_context?: DuoAuthContext;
  [claim: string]: unknown;
}

/** The optional parameters of the authorize request that Duo documents; each sent only when set. */
export interface DuoAuthUrlExtras {
  /** The application name shown to the user in Duo Mobile. */
  destAppName?: string;
  /** The name shown to the user in the prompt, in place of the username. */
  displayUsername?: string;
  /** Seconds since the user's last interactive Duo authentication that are acceptable; 0 forces one. */
  maxAge?: number;
  /** Forces an interactive authentication (Duo's `prompt=login`). */
  promptLogin?: boolean;
}

/** What `createAuthUrl()` takes: the login's nonce (required) and the optional parameters. */
export interface DuoAuthUrlOptions extends DuoAuthUrlExtras {
  /**
   * Required. A fresh random value (`generateNonce()`, 16 to 1024 URL-safe
   * characters), kept server-side with the state and passed again to
   * `exchangeAuthorizationCode()`: Duo echoes it in the id_token, which binds
   * the token to this very login. Sent in the request JWT and as the `nonce`
   * query parameter, one value, so Duo echoes it whichever it reads.
   * `expectNoNonce` sends none, explicitly (see there why not to).
   * `startAuthorization()` makes one itself.
   */
  nonce: DuoNonce;
}

/** One started authorization: send the browser to `url`, keep `state` and `nonce` server-side. */
export interface DuoAuthorization {
  url: string;
  state: string;
  nonce: string;
}
