import { X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import type { DuoCaPinning } from './config.js';
import { DUO_PINNED_ROOTS } from './duo-roots.js';
import { DuoConfigError, DuoError, MAX_RETRY_AFTER_SECONDS } from './errors.js';

export const MAX_RESPONSE_BYTES = 64 * 1024;
/** Health checks in flight at most, outside the main cap. */
export const HEALTH_LANE = 4;

export interface DuoHttpOptions {
  timeoutMs: number;
  maxConcurrentRequests: number;
  userAgent: string;
  /** `duo`: only Duo's pinned roots (and `ca`) are trusted. Default `system` (the client resolves it per host). */
  pinning?: DuoCaPinning;
  ca?: string | Buffer | Array<string | Buffer>;
  proxy?: string;
  maxResponseBytes?: number;
}

export interface DuoHttpResponse {
  status: number;
  /** The parsed JSON body. */
  body: unknown;
}

/**
 * The one way nestjs-duo talks to Duo: undici with a keep-alive connection pool
 * reused across calls, a hard deadline per call that also covers a body that
 * trickles in, a response-size cap, no redirects, and a cap on calls in flight
 * so a slow Duo cannot pile up sockets and memory.
 */
export class DuoHttp {
  readonly #dispatcher: Dispatcher;
  readonly #options: DuoHttpOptions;
  #inFlight = 0;
  #healthInFlight = 0;

  constructor(options: DuoHttpOptions) {
    this.#options = options;
    // One secure context for every connection: given `ca` instead, tls.connect builds a new context
    // (tens of ms of CPU) per connection.
    const trusted = trustedCertificates(options.pinning ?? 'system', options.ca);
    const secureContext = trusted === undefined ? undefined : tls.createSecureContext({ ca: trusted });
    const common = {
      keepAliveTimeout: 30_000,
      // The health lane's few calls get connections of their own beyond the cap.
      connections: options.maxConcurrentRequests + HEALTH_LANE,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    };
    this.#dispatcher = options.proxy
      ? new ProxyAgent({ ...common, uri: options.proxy, ...(secureContext ? { requestTls: { secureContext } } : {}) })
      : new Agent({ ...common, connect: { timeout: options.timeoutMs, ...(secureContext ? { secureContext } : {}) } });
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get pinning(): DuoCaPinning {
    return this.#options.pinning ?? 'system';
  }

  /**
   * POSTs a form to Duo and returns the parsed JSON answer, whatever its status.
   * Health checks go through a lane of their own (a few at once), so a cap full
   * of slow token calls never looks like "Duo is down" to the health check.
   */
  async postForm(url: string, form: Record<string, string>, what: string, lane: 'default' | 'health' = 'default'): Promise<DuoHttpResponse> {
    const health = lane === 'health';
    const limit = health ? HEALTH_LANE : this.#options.maxConcurrentRequests;
    if ((health ? this.#healthInFlight : this.#inFlight) >= limit) {
      throw new DuoError(
        'duo_overloaded',
        `Too many calls to Duo are already waiting (${limit}); the ${what} was refused at once. Try again shortly; raise maxConcurrentRequests if Duo is healthy.`,
      );
    }
    if (health) this.#healthInFlight++;
    else this.#inFlight++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#options.timeoutMs);
    try {
      const response = await request(url, {
        method: 'POST',
        dispatcher: this.#dispatcher,
        signal: controller.signal,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          'user-agent': this.#options.userAgent,
        },
        body: new URLSearchParams(form).toString(),
      });
      const limit = this.#options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
      const declared = Number(response.headers['content-length']);
      if (response.statusCode >= 300 && response.statusCode < 400) {
        discard(response.body);
        throw new DuoError('duo_upstream_invalid', `Duo answered the ${what} with a redirect (HTTP ${response.statusCode}); redirects are not followed. Check apiHost / apiBaseUrl.`);
      }
      if (response.statusCode === 429) {
        // Rate limited: what the body says changes nothing, and the wait is in the header.
        discard(response.body);
        throw rateLimited(what, parseRetryAfter(response.headers['retry-after']));
      }
      if (Number.isFinite(declared) && declared > limit) {
        discard(response.body);
        throw new DuoError('duo_upstream_invalid', `Duo's answer to the ${what} is larger than ${limit} bytes; it was refused.`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) {
          discard(response.body);
          throw new DuoError('duo_upstream_invalid', `Duo's answer to the ${what} is larger than ${limit} bytes; it was refused.`);
        }
        chunks.push(chunk);
      }
      if (response.statusCode >= 500) {
        throw new DuoError('duo_unavailable', `Duo answered the ${what} with HTTP ${response.statusCode}; Duo is unavailable. Try again later.`);
      }
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        throw new DuoError('duo_upstream_invalid', `Duo's answer to the ${what} (HTTP ${response.statusCode}) is not JSON.`);
      }
      return { status: response.statusCode, body };
    } catch (error) {
      if (error instanceof DuoError) throw error;
      // Before the timeout check: a refused certificate is never "Duo is slow or down".
      const tlsCode = tlsFailureCode(error);
      if (tlsCode !== undefined) throw tlsFailure(tlsCode, what, this.pinning);
      const proxyStatus = proxyRefusal(error);
      if (proxyStatus !== undefined) throw proxyRefused(proxyStatus, what);
      if (controller.signal.aborted || isTimeout(error)) {
        throw new DuoError('duo_timeout', `Duo did not complete the ${what} within ${this.#options.timeoutMs} ms; the call was cut off.`);
      }
      const code = describeNetworkError(error);
      // Out of file descriptors, buffers, memory or local ports: this server's trouble, never "Duo is down".
      if (isLocalResourceFailure(error)) {
        throw new DuoError(
          'duo_overloaded',
          `This server could not open a connection to Duo for the ${what} (${code}): it is out of a resource of its own (file descriptors, memory, ports). Raise the limit (ulimit -n) or shed load; this is not treated as Duo being down.`,
        );
      }
      throw new DuoError('duo_unavailable', `Duo could not be reached for the ${what} (${code}). Check the network path to Duo (firewall, proxy, DNS).`);
    } finally {
      clearTimeout(timer);
      if (health) this.#healthInFlight--;
      else this.#inFlight--;
    }
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }
}

/** Node's own roots as it trusts them by default: `tls.getCACertificates('default')` (Node 22.15+/23.5+: bundled, NODE_EXTRA_CA_CERTS, and the system store with --use-system-ca), else the bundled roots. */
function nodeDefaultCertificates(): readonly string[] {
  const getCACertificates = (tls as { getCACertificates?: (type: 'default') => string[] }).getCACertificates;
  return typeof getCACertificates === 'function' ? getCACertificates('default') : tls.rootCertificates;
}

let pinnedRoots: readonly string[] | undefined;

/**
 * The PEMs of Duo's pinned roots (DUO_PINNED_ROOTS, by SHA-256 fingerprint, in
 * its order) among the roots this Node ships (`tls.rootCertificates`); found once
 * per process.
 * A root Duo lists that this Node lacks is not among them.
 */
export function pinnedRootCertificates(): readonly string[] {
  if (pinnedRoots === undefined) {
    const shipped = new Map(tls.rootCertificates.map((pem) => [new X509Certificate(pem).fingerprint256, pem]));
    pinnedRoots = Object.freeze(DUO_PINNED_ROOTS.flatMap((root) => shipped.get(root.sha256) ?? []));
  }
  return pinnedRoots;
}

/**
 * The CA certificates the one secure context trusts, or undefined for Node's
 * default trust (no secure context of our own). Pinned: exactly Duo's roots as
 * this Node ships them, plus `ca`. System: Node's default roots plus `ca`.
 */
export function trustedCertificates(pinning: DuoCaPinning, ca: DuoHttpOptions['ca']): Array<string | Buffer> | undefined {
  const extra = ca === undefined ? [] : Array.isArray(ca) ? ca : [ca];
  if (pinning === 'duo') {
    const pinned = pinnedRootCertificates();
    if (pinned.length === 0) {
      throw new DuoConfigError(
        `Duo option "tls.pinning" is "duo", but this Node (${process.version}) ships none of the root CAs Duo pins, so no certificate of Duo's could be trusted. Update Node, or set tls: { pinning: 'system' } (Node's trusted roots).`,
      );
    }
    return [...pinned, ...extra];
  }
  return extra.length === 0 ? undefined : [...nodeDefaultCertificates(), ...extra];
}

/** Drops an unread body. Destroying it makes undici emit an abort error, which must not become an uncaught exception. */
function discard(body: NodeJS.ReadableStream & { destroy(): void }): void {
  body.on('error', () => undefined);
  body.destroy();
}

function isTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
}

/**
 * Duo's `Retry-After` as whole seconds from now, clamped to 1..3600: delta-seconds
 * (`120`) or an HTTP date in the IMF-fixdate form senders must use
 * (`Thu, 15 Jan 2026 12:01:30 GMT`). Anything else, a repeated header included,
 * is undefined: no wait is better than a made-up one.
 */
export function parseRetryAfter(value: unknown, nowMs: number = Date.now()): number | undefined {
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  let seconds: number;
  if (/^[0-9]+$/.test(text)) {
    seconds = Number(text);
  } else {
    // The built-in date parser is lenient; only a value it reads back to the very same text is an IMF-fixdate.
    const at = Date.parse(text);
    if (!Number.isFinite(at) || new Date(at).toUTCString() !== text) return undefined;
    seconds = (at - nowMs) / 1000;
  }
  return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(seconds)));
}

/** HTTP 429: Duo is up and refusing this integration for now. Not retried, and never a reason to fail open. */
export function rateLimited(what: string, retryAfterSeconds: number | undefined): DuoError {
  const wait = retryAfterSeconds === undefined ? '' : `; Duo asks to wait ${retryAfterSeconds} s before the next call`;
  return new DuoError(
    'duo_rate_limited',
    `Duo is rate-limiting this integration (HTTP 429) and refused the ${what}${wait}. Lower the rate of calls to Duo (health checks, login attempts); this is not treated as Duo being down.`,
    retryAfterSeconds === undefined ? {} : { retryAfterSeconds },
  );
}

/**
 * Node's codes for a certificate it refused: X509ErrorCode() in Node's
 * src/crypto/crypto_common.cc (`UNSPECIFIED` is its fallback), plus the
 * hostname check of tls.checkServerIdentity.
 */
const CERTIFICATE_CODES: readonly string[] = [
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'OUT_OF_MEM',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'UNSPECIFIED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
];
/** Certificate dates: the local clock may be what is wrong. */
const DATE_CODES: ReadonlySet<string> = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD']);
const CERTIFICATE_CODE_SET: ReadonlySet<string> = new Set(CERTIFICATE_CODES);

/**
 * The exact codes that mean TLS failed: the certificate codes, `EPROTO` (a
 * protocol error of the TLS socket, as older Node reports handshake failures) and
 * undici's `UND_ERR_PRX_TLS` (TLS to an https proxy). Codes starting with
 * `ERR_TLS_` (Node's TLS layer), `ERR_SSL_` (OpenSSL's SSL library: wrong version
 * number, handshake alerts, ...) or `ERR_OSSL_` (other OpenSSL errors, e.g. a
 * CA that does not load) count too.
 */
export const TLS_FAILURE_CODES: ReadonlySet<string> = new Set([...CERTIFICATE_CODES, 'EPROTO', 'UND_ERR_PRX_TLS']);
const TLS_CODE_PREFIXES = ['ERR_TLS_', 'ERR_SSL_', 'ERR_OSSL_'];
/** What an error code must look like to be shown in a message. */
const SHOWABLE_CODE = /^[A-Z0-9_]{2,64}$/;

function isTlsCode(code: string): boolean {
  return TLS_FAILURE_CODES.has(code) || TLS_CODE_PREFIXES.some((prefix) => code.startsWith(prefix));
}

/**
 * The TLS failure in a network error, walking its `cause` chain (undici wraps
 * socket errors): the innermost TLS code, which names the actual problem rather
 * than a wrapper. Undefined when nothing in the chain is a TLS failure.
 */
export function tlsFailureCode(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  let found: string | undefined;
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && SHOWABLE_CODE.test(code) && isTlsCode(code)) found = code;
    current = (current as { cause?: unknown }).cause;
  }
  return found;
}

/**
 * The codes of a chain that leads to no trusted root: with pinning on, a
 * certificate outside Duo's pinned roots (and `ca`). Expired, wrong-host and other
 * failures keep their own meaning.
 */
const UNTRUSTED_ISSUER_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
]);

/** Names the failing code and what to fix; never a URL (a proxy's may hold credentials). */
function tlsFailure(code: string, what: string, pinning: DuoCaPinning): DuoError {
  if (pinning === 'duo' && UNTRUSTED_ISSUER_CODES.has(code)) {
    return new DuoError(
      'duo_tls_pinning_failed',
      `Duo's TLS certificate was refused in the ${what} (${code}): it does not lead to one of the root CAs Duo pins. With tls.pinning "duo" only Duo's roots and the "ca" option are trusted (not Node's other roots, nor NODE_EXTRA_CA_CERTS). Behind a TLS-inspecting proxy, pass the proxy's CA certificate (PEM) in the "ca" option, or turn pinning off with tls: { pinning: 'system' } (Node's trusted roots; the certificate is still verified). Otherwise check that apiHost / apiBaseUrl names Duo's API host. This is not treated as Duo being down.`,
    );
  }
  if (CERTIFICATE_CODE_SET.has(code)) {
    const clock = DATE_CODES.has(code) ? ", and that this server's clock is right (the certificate's dates are checked against it)" : '';
    return new DuoError(
      'duo_tls_failed',
      `Duo's TLS certificate was refused in the ${what} (${code}). Behind a TLS-inspecting proxy, pass that proxy's CA certificate (PEM) in the "ca" option; otherwise check that apiHost / apiBaseUrl names Duo's API host${clock}. This is not treated as Duo being down.`,
    );
  }
  return new DuoError(
    'duo_tls_failed',
    `The TLS handshake with Duo failed in the ${what} (${code}): the other end does not speak TLS as Duo does. Check that apiHost / apiBaseUrl names Duo's API host over https and what sits in between (a proxy); behind a TLS-inspecting proxy, pass its CA certificate (PEM) in the "ca" option. This is not treated as Duo being down.`,
  );
}

/**
 * The HTTP status a proxy refused the tunnel to Duo with, from undici's error
 * ("Proxy response (407) !== 200 when HTTP Tunneling"). Only the number is read:
 * undici's text is never copied into our messages.
 */
function proxyRefusal(error: unknown): number | undefined {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const message = (current as { message?: unknown }).message;
    if (typeof message === 'string') {
      const status = /^Proxy response \(([1-5][0-9]{2})\) !== 200 when HTTP Tunneling$/.exec(message)?.[1] ?? /^Proxy Authentication Required \((407)\)$/.exec(message)?.[1];
      if (status !== undefined) return Number(status);
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A proxy that refuses us (407 credentials, 403 policy, ...) is a configuration
 * to fix, not Duo being down: duo_request_rejected. A proxy that cannot reach Duo
 * (5xx) is reported as Duo unavailable.
 */
function proxyRefused(status: number, what: string): DuoError {
  if (status >= 500) {
    return new DuoError('duo_unavailable', `The proxy could not reach Duo for the ${what} (it answered HTTP ${status}). Check the network path from the proxy to Duo.`);
  }
  const fix =
    status === 407
      ? 'it wants other credentials: check the user and password in the "proxy" option'
      : "check that the proxy allows CONNECT to Duo's API host";
  return new DuoError('duo_request_rejected', `The proxy refused the tunnel to Duo for the ${what} (HTTP ${status}); ${fix}.`);
}

/** Network error codes that mean this process ran out of something, whatever Duo's state. */
const LOCAL_RESOURCE_CODES: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL', 'EAI_MEMORY']);

/**
 * Whether a network error (or any error in its cause chain) is this server running out of file descriptors, buffers, memory or local ports: an
 * attacker can cause that with idle connections while Duo is fine, so it is
 * `duo_overloaded` (never fails open), not `duo_unavailable`.
 */
export function isLocalResourceFailure(error: unknown): boolean {
  const seen = new Set<unknown>();
  for (let current: unknown = error; current && typeof current === 'object' && !seen.has(current); current = (current as { cause?: unknown }).cause) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && LOCAL_RESOURCE_CODES.has(code)) return true;
  }
  return false;
}

/** A network error's code only (ECONNREFUSED, ENOTFOUND, ...): never its message, which may hold a URL. */
function describeNetworkError(error: unknown): string {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return 'network error';
}
