import { rootCertificates } from 'node:tls';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import { DuoError } from './errors.js';

export const MAX_RESPONSE_BYTES = 64 * 1024;
/** Health checks in flight at most, outside the main cap. */
export const HEALTH_LANE = 4;

export interface DuoHttpOptions {
  timeoutMs: number;
  maxConcurrentRequests: number;
  userAgent: string;
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
    // Extra CAs are added to Node's roots, not put in their place.
    const ca = options.ca === undefined ? undefined : [...rootCertificates, ...(Array.isArray(options.ca) ? options.ca : [options.ca])];
    const common = {
      keepAliveTimeout: 30_000,
      // The health lane's few calls get connections of their own beyond the cap.
      connections: options.maxConcurrentRequests + HEALTH_LANE,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    };
    this.#dispatcher = options.proxy
      ? new ProxyAgent({ ...common, uri: options.proxy, ...(ca ? { requestTls: { ca } } : {}) })
      : new Agent({ ...common, connect: { timeout: options.timeoutMs, ...(ca ? { ca } : {}) } });
  }

  get inFlight(): number {
    return this.#inFlight;
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
      if (controller.signal.aborted || isTimeout(error)) {
        throw new DuoError('duo_timeout', `Duo did not complete the ${what} within ${this.#options.timeoutMs} ms; the call was cut off.`);
      }
      throw new DuoError('duo_unavailable', `Duo could not be reached for the ${what} (${describeNetworkError(error)}). Check the network path to Duo (firewall, proxy, DNS).`);
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

/** Drops an unread body. Destroying it makes undici emit an abort error, which must not become an uncaught exception. */
function discard(body: NodeJS.ReadableStream & { destroy(): void }): void {
  body.on('error', () => undefined);
  body.destroy();
}

function isTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
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
