/**
 * `DuoEmulator.authorize()`'s browser: runs an authorize URL against the
 * emulator as a browser would (no redirect followed, TLS pinned to the
 * emulator's certificate) and, in mode `prompt`, posts the user's decision.
 */
import { X509Certificate } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type RequestOptions } from 'node:http';
import { request as httpsRequest, type RequestOptions as HttpsRequestOptions } from 'node:https';
import { PATH_AUTHORIZE, PATH_DECISION } from './emulator.constants.js';
import type { DuoEmulatorTlsOptions } from './emulator.types.js';

const TIMEOUT_MS = 10_000;
const MAX_BODY = 256 * 1024;
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 nestjs-duo-emulator';

interface BrowserAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export class EmulatorBrowser {
  readonly #tls: DuoEmulatorTlsOptions | undefined;
  readonly #fingerprint: string | undefined;

  constructor(tls: DuoEmulatorTlsOptions | undefined) {
    this.#tls = tls;
    this.#fingerprint = tls ? new X509Certificate(tls.cert).fingerprint256 : undefined;
  }

  /** See `DuoEmulator.authorize()`: the Location Duo sends the browser to. */
  async authorize(baseUrl: string, authUrl: string, decision?: 'approve' | 'deny'): Promise<string> {
    let url: URL;
    try {
      url = new URL(authUrl);
    } catch {
      throw new TypeError('authorize: authUrl is not an absolute URL.');
    }
    if (url.origin !== baseUrl || url.pathname !== PATH_AUTHORIZE) {
      throw new Error(`authorize: the URL is not this emulator's authorize endpoint (${baseUrl}${PATH_AUTHORIZE}).`);
    }
    if (decision !== undefined && decision !== 'approve' && decision !== 'deny') throw new TypeError('authorize: decision must be approve or deny.');
    const first = await this.#request(baseUrl, 'GET', `${url.pathname}${url.search}`);
    const location = redirectLocation(first);
    if (location !== undefined) return location;
    const transaction = first.status === 200 ? /name="txn" value="([A-Za-z0-9_-]+)"/.exec(first.body)?.[1] : undefined;
    if (transaction === undefined) throw new Error(`Duo emulator: the authorize request was refused (HTTP ${first.status}): ${pageText(first.body)}`);
    if (decision === undefined) {
      throw new Error('Duo emulator: the prompt page is shown (mode "prompt"); pass a decision ("approve" or "deny") to authorize().');
    }
    const second = await this.#request(baseUrl, 'POST', PATH_DECISION, new URLSearchParams({ txn: transaction, decision }).toString());
    const next = redirectLocation(second);
    if (next === undefined) throw new Error(`Duo emulator: the decision was refused (HTTP ${second.status}): ${pageText(second.body)}`);
    return next;
  }

  /** One request to the emulator as a browser makes it: no redirect followed, TLS pinned to its certificate. */
  #request(baseUrl: string, method: 'GET' | 'POST', path: string, form?: string): Promise<BrowserAnswer> {
    const url = new URL(path, baseUrl);
    const headers: OutgoingHttpHeaders = { 'user-agent': USER_AGENT, accept: 'text/html', connection: 'close' };
    if (form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(form);
    }
    const common: RequestOptions = { method, headers, agent: false, timeout: TIMEOUT_MS };
    return new Promise<BrowserAnswer>((resolve, reject) => {
      const onResponse = (response: IncomingMessage): void => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY) {
            request.destroy(new Error('Duo emulator: the answer is too large.'));
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      };
      let request: ReturnType<typeof httpRequest>;
      if (this.#tls) {
        const fingerprint = this.#fingerprint;
        const tlsOptions: HttpsRequestOptions = {
          ...common,
          ca: this.#tls.ca ?? this.#tls.cert,
          // Pinned: only the emulator's own certificate is accepted, whatever names it carries.
          checkServerIdentity: (_host, peer) =>
            peer.fingerprint256 === fingerprint ? undefined : new Error('Duo emulator: unexpected TLS certificate.'),
        };
        request = httpsRequest(url, tlsOptions, onResponse);
      } else {
        request = httpRequest(url, common, onResponse);
      }
      request.on('timeout', () => request.destroy(new Error(`Duo emulator: no answer within ${TIMEOUT_MS} ms.`)));
      request.on('error', reject);
      request.end(form);
    });
  }
}

function redirectLocation(answer: BrowserAnswer): string | undefined {
  if (answer.status !== 302 && answer.status !== 303) return undefined;
  const location = answer.headers.location;
  return typeof location === 'string' && location.length > 0 ? location : undefined;
}

/** The readable text of one of our pages, short, for an error message. */
function pageText(html: string): string {
  const h1 = /<h1>([\s\S]*?)<\/h1>\s*<p>([\s\S]*?)<\/p>/.exec(html);
  const text = h1 ? `${h1[1]}: ${h1[2]}` : html.replace(/<[^>]*>/g, ' ');
  return text
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#61;/g, '=')
    .replace(/&#96;/g, '`')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
}
