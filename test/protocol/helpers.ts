/**
 * Shared fixtures of the protocol tests: credentials, a tiny crafted "Duo"
 * HTTP server on 127.0.0.1, id_token signing, and assertions on DuoErrors
 * (including that no error ever carries a secret, code, token, assertion or state).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { inspect } from 'node:util';
import { SignJWT, type JWTPayload } from 'jose';
import { expect } from 'vitest';
import { DuoError, type DuoClientOptions } from '../../src/protocol/index.js';
import { DUO_ERROR_STATUS, statusOf, type DuoErrorCode } from '../../src/duo.errors.js';

export const CLIENT_ID = 'DIWJ8X6AEYOR5OMC6TQ1';
/** 40 characters, distinctive so that any echo of it (or of a long part of it) is caught. */
export const CLIENT_SECRET = 'Zq7sEcReTvAlUe0123456789AbCdEfGhIjKlMnOp';
export const API_HOST = 'api-1234abcd.duosecurity.com';
export const REDIRECT_URI = 'https://app.example.com/duo/callback';
export const SECRET_BYTES = new TextEncoder().encode(CLIENT_SECRET);

if (CLIENT_ID.length !== 20 || CLIENT_SECRET.length !== 40) throw new Error('fixture credentials have the wrong length');

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** Options that pass validation, pointing at Duo's real host (never called). */
export function validOptions(overrides: Partial<DuoClientOptions> = {}): DuoClientOptions {
  return { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, apiHost: API_HOST, redirectUri: REDIRECT_URI, ...overrides };
}

/** Options pointing at a crafted server on 127.0.0.1. */
export function localOptions(baseUrl: string, overrides: Partial<DuoClientOptions> = {}): DuoClientOptions {
  return {
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUri: REDIRECT_URI,
    apiBaseUrl: baseUrl,
    timeoutMs: 3000,
    ...overrides,
  };
}

// ---------------------------------------------------------------------------
// Leak checks

/** Every rendering of an error that could end up in a log or an HTTP answer. */
export function renderings(error: unknown): string[] {
  const err = error as Error;
  return [String(err?.message), JSON.stringify(error) ?? '', inspect(error, { depth: 10, showHidden: true }), String(err?.stack), String(error)];
}

/**
 * Asserts that none of the sensitive values (plus the client secret and any
 * 12-character window of it) appears in any rendering of the error. Values
 * shorter than 8 characters are ignored (they would match by chance).
 */
export function expectNoLeak(error: unknown, sensitive: ReadonlyArray<string | undefined> = []): void {
  const needles = new Set<string>();
  for (let i = 0; i + 12 <= CLIENT_SECRET.length; i += 4) needles.add(CLIENT_SECRET.slice(i, i + 12));
  for (const value of sensitive) if (typeof value === 'string' && value.length >= 8) needles.add(value);
  for (const text of renderings(error)) {
    for (const needle of needles) {
      if (text.includes(needle)) {
        throw new Error(`An error rendering leaks a sensitive value (${needle.slice(0, 6)}...): ${text.slice(0, 300)}`);
      }
    }
  }
}

/** Checks the error is a DuoError with the code, its mapped status, a message, and no leak. */
export function expectDuoErrorValue(error: unknown, code: DuoErrorCode, sensitive: ReadonlyArray<string | undefined> = []): DuoError {
  if (!(error instanceof DuoError)) {
    throw new Error(`expected a DuoError [${code}], got ${inspect(error)}`);
  }
  expect(error.code, `message: ${error.message}`).toBe(code);
  expect(statusOf(error.code)).toBe(DUO_ERROR_STATUS[code]);
  expect(typeof error.message).toBe('string');
  expect(error.message.length).toBeGreaterThan(10);
  expect(error).toBeInstanceOf(Error);
  expectNoLeak(error, sensitive);
  return error;
}

/** Awaits a promise (or calls a function) that must fail with a DuoError of this code. */
export async function expectDuoError(
  action: Promise<unknown> | (() => unknown),
  code: DuoErrorCode,
  sensitive: ReadonlyArray<string | undefined> = [],
): Promise<DuoError> {
  let caught: unknown;
  let resolved = false;
  try {
    await (typeof action === 'function' ? action() : action);
    resolved = true;
  } catch (error) {
    caught = error;
  }
  if (resolved) throw new Error(`expected a DuoError [${code}], but the call succeeded`);
  return expectDuoErrorValue(caught, code, sensitive);
}

/** Synchronous variant, for constructors. */
export function expectDuoErrorSync(action: () => unknown, code: DuoErrorCode, sensitive: ReadonlyArray<string | undefined> = []): DuoError {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  if (caught === undefined) throw new Error(`expected a DuoError [${code}], but the call succeeded`);
  return expectDuoErrorValue(caught, code, sensitive);
}

// ---------------------------------------------------------------------------
// Crafted server

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  form: Record<string, string>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, recorded: RecordedRequest) => void | Promise<void>;

export interface TestServer {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  readonly requests: RecordedRequest[];
  /** How many TCP connections the server has accepted. */
  connections: number;
  handler: Handler;
  close(): Promise<void>;
}

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

/** A node:http server on 127.0.0.1, port 0, that records each request and lets `handler` answer. */
export async function startServer(handler: Handler): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const requests: RecordedRequest[] = [];
  const state: { connections: number; handler: Handler } = { connections: 0, handler };
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body,
        form: Object.fromEntries(new URLSearchParams(body)),
      };
      requests.push(recorded);
      await state.handler(req, res, recorded);
    })().catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 599, { error: `test handler failed: ${String(error)}` });
    });
  });
  server.on('connection', (socket: Socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    requests,
    get connections() {
      return state.connections;
    },
    set connections(value: number) {
      state.connections = value;
    },
    get handler() {
      return state.handler;
    },
    set handler(value: Handler) {
      state.handler = value;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An HS512 id_token as Duo would sign it, with the test secret unless told otherwise. */
export async function signToken(
  claims: JWTPayload,
  options: { alg?: string; secret?: string; header?: Record<string, unknown> } = {},
): Promise<string> {
  const alg = options.alg ?? 'HS512';
  return new SignJWT(claims)
    .setProtectedHeader({ alg, ...options.header })
    .sign(new TextEncoder().encode(options.secret ?? CLIENT_SECRET));
}

/** The claims of a good id_token for this base URL, user and nonce. */
export function goodClaims(baseUrl: string, username: string, nonce?: string): JWTPayload {
  const now = nowSeconds();
  return {
    iss: `${baseUrl}/oauth/v1/token`,
    aud: CLIENT_ID,
    sub: username,
    preferred_username: username,
    iat: now,
    exp: now + 300,
    auth_time: now,
    ...(nonce === undefined ? {} : { nonce }),
    amr: ['mfa', 'push'],
    auth_result: { result: 'allow', status: 'allow', status_msg: 'Login Successful' },
    auth_context: {
      txid: '2b2d9f38-1d1f-4c1e-9e3f-0f4f0e3c9b11',
      timestamp: now,
      factor: 'duo_push',
      result: 'success',
      user: { name: username, key: 'DUXXXXXXXXXXXXXXXXXX' },
      auth_device: { ip: '192.0.2.1', name: 'My iPhone' },
      access_device: { ip: '198.51.100.7', browser: 'Firefox' },
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
