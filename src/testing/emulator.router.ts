/**
 * From a request to its endpoint: the path and method, the counters, the
 * defect switched on (which may answer in the endpoint's place), the body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authorizeEndpoint, decisionEndpoint } from './authorize.endpoint.js';
import { PATH_AUTHORIZE, PATH_DECISION, PATH_HEALTH, PATH_TOKEN } from './emulator.constants.js';
import { DEFECTS, type DuoEmulatorFailure } from './emulator.defects.js';
import { duoFail, HttpExchange, readBody, type EmulatorLogger } from './emulator.http.js';
import type { EmulatorServer } from './emulator.server.js';
import type { EmulatorState } from './emulator.state.js';
import type { DuoEmulatorEndpoint, DuoEmulatorStats } from './emulator.types.js';
import { healthCheckEndpoint } from './health-check.endpoint.js';
import { tokenEndpoint } from './token.endpoint.js';

/** What an endpoint is handed: the body (empty for a GET), the query, the failure it meets. */
interface Call {
  readonly body: Buffer;
  readonly query: URLSearchParams;
  readonly failure: DuoEmulatorFailure;
}

interface Route {
  readonly method: 'GET' | 'POST';
  /** Duo's endpoints, which failures hit and the stats count; the decision page is the emulator's own. */
  readonly endpoint?: { readonly name: DuoEmulatorEndpoint; readonly counter: keyof DuoEmulatorStats };
  readonly handle: (state: EmulatorState, exchange: HttpExchange, call: Call) => void | Promise<void>;
}

const ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  [
    PATH_HEALTH,
    {
      method: 'POST',
      endpoint: { name: 'health', counter: 'healthChecks' },
      handle: (state, exchange, call) => healthCheckEndpoint(state, exchange, call.body, call.failure),
    },
  ],
  [
    PATH_AUTHORIZE,
    { method: 'GET', endpoint: { name: 'authorize', counter: 'authorizations' }, handle: (state, exchange, call) => authorizeEndpoint(state, exchange, call.query) },
  ],
  [
    PATH_TOKEN,
    {
      method: 'POST',
      endpoint: { name: 'token', counter: 'tokenExchanges' },
      handle: (state, exchange, call) => tokenEndpoint(state, exchange, call.body, call.failure),
    },
  ],
  [PATH_DECISION, { method: 'POST', handle: (state, exchange, call) => decisionEndpoint(state, exchange, call.body) }],
]);

/** The server's request listener. */
export function requestListener(state: EmulatorState, server: EmulatorServer, logger: EmulatorLogger): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    route(state, server, logger, req, res).catch(() => {
      // Never let one request take the server down.
      if (!res.headersSent && !res.destroyed) {
        HttpExchange.of(req, res, logger).json(500, duoFail(state.now(), 50000, 'Internal server error'), 'internal error');
      } else {
        res.destroy();
      }
    });
  };
}

async function route(state: EmulatorState, server: EmulatorServer, logger: EmulatorLogger, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const rawUrl = req.url ?? '';
  const queryAt = rawUrl.indexOf('?');
  const path = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
  const target = ROUTES.get(path);
  if (target === undefined) {
    req.resume();
    new HttpExchange(req, res, '(other)', logger).json(404, duoFail(state.now(), 40401, 'Resource not found'), 'unknown path');
    return;
  }
  const exchange = new HttpExchange(req, res, path, logger);
  if (req.method !== target.method) {
    req.resume();
    exchange.json(405, duoFail(state.now(), 40501, 'Method not allowed'), 'wrong method', { allow: target.method });
    return;
  }
  const endpoint = target.endpoint;
  if (endpoint !== undefined) state.stats[endpoint.counter]++;

  const failure = endpoint === undefined ? 'none' : state.failureAt(endpoint.name);
  const intercept = DEFECTS[failure].intercept;
  if (intercept !== undefined && endpoint !== undefined) {
    const answered = await intercept({
      exchange,
      endpoint: endpoint.name,
      note: `${failure} (failure)`,
      now: state.now(),
      slowMs: state.failure.slowMs,
      retryAfter: state.failure.retryAfter,
      sleep: async (ms) => {
        await server.sleep(ms);
        return !server.closing;
      },
    });
    if (answered) return;
  }

  let body: Buffer = Buffer.alloc(0);
  if (req.method === 'POST') {
    const read = await readBody(req);
    if (read === 'aborted') return;
    if (read === 'too_large') {
      exchange.json(413, duoFail(state.now(), 41301, 'Request entity too large'), 'body too large', { connection: 'close' });
      return;
    }
    body = read;
  } else {
    req.resume();
  }
  await target.handle(state, exchange, { body, query: new URLSearchParams(queryAt === -1 ? '' : rawUrl.slice(queryAt + 1)), failure });
}
