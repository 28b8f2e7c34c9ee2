/**
 * The emulator's HTTP plumbing: reading bodies and forms within limits, and
 * answering (JSON, HTML, redirects) with one log line per request.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { MAX_BODY_BYTES, MAX_FORM_FIELDS } from './emulator.constants.js';

/** Where log lines go; see `DuoEmulatorOptions.logger`. */
export type EmulatorLogger = ((line: string) => void) | undefined;

/** What the page of any answer may do: nothing but show itself. */
const PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** One request and its answer; `path` is what the log line shows (never the query). */
export class HttpExchange {
  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly path: string,
    private readonly logger: EmulatorLogger,
  ) {}

  /** For an answer made before the route is known: the path of the URL. */
  static of(req: IncomingMessage, res: ServerResponse, logger: EmulatorLogger): HttpExchange {
    return new HttpExchange(req, res, (req.url ?? '').split('?', 1)[0] ?? '', logger);
  }

  json(status: number, body: unknown, note: string, headers: OutgoingHttpHeaders = {}): void {
    this.send(status, 'application/json', JSON.stringify(body), note, headers);
  }

  html(status: number, page: string, note: string, headers: OutgoingHttpHeaders = {}): void {
    this.send(status, 'text/html; charset=utf-8', page, note, { 'content-security-policy': PAGE_POLICY, 'x-frame-options': 'DENY', ...headers });
  }

  redirect(status: 302 | 303, location: string, note: string): void {
    this.send(status, 'text/plain; charset=utf-8', '', note, { location, 'referrer-policy': 'no-referrer' });
  }

  send(status: number, contentType: string, body: string, note: string, headers: OutgoingHttpHeaders = {}): void {
    const { res } = this;
    if (res.headersSent || res.destroyed) return;
    const payload = Buffer.from(body, 'utf8');
    res.writeHead(status, {
      'content-type': contentType,
      'content-length': payload.length,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...headers,
    });
    res.end(payload);
    this.log(status, note);
  }

  /** One line per request: method, path, status (0: no answer) and why. */
  log(status: number, note: string): void {
    if (this.logger === undefined) return;
    try {
      this.logger(`[duo-emulator] ${this.req.method ?? '?'} ${this.path} -> ${status === 0 ? 'no answer' : status} ${note}`);
    } catch {
      // A failing logger must not break the emulator.
    }
  }
}

/** Duo's FAIL answer: `{ stat, code, message, message_detail?, timestamp }`, at `now` on Duo's clock. */
export function duoFail(now: number, code: number, message: string, detail?: string): Record<string, unknown> {
  return { stat: 'FAIL', code, message, ...(detail === undefined ? {} : { message_detail: detail }), timestamp: now };
}

export type Body = Buffer | 'too_large' | 'aborted';

/** Reads a request body up to MAX_BODY_BYTES. */
export function readBody(req: IncomingMessage): Promise<Body> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return Promise.resolve('too_large');
  return new Promise<Body>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: Body): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        finish('too_large');
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish(Buffer.concat(chunks)));
    req.once('error', () => finish('aborted'));
    req.once('close', () => finish(req.complete ? Buffer.concat(chunks) : 'aborted'));
  });
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A form body as single-valued fields; undefined when it is not UTF-8, repeats a field or has too many. */
export function parseForm(body: Buffer): Map<string, string> | undefined {
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    return undefined;
  }
  return uniqueParams(new URLSearchParams(text));
}

/** Parameters as single-valued fields; undefined when one repeats or there are too many. */
export function uniqueParams(params: URLSearchParams): Map<string, string> | undefined {
  const map = new Map<string, string>();
  let count = 0;
  for (const [name, value] of params) {
    if (++count > MAX_FORM_FIELDS || map.has(name)) return undefined;
    map.set(name, value);
  }
  return map;
}
