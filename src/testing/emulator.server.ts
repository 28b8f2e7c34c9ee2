/** The emulator's HTTP(S) server on 127.0.0.1: listening, the connections it keeps, waits that close() cuts short. */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { HOST } from './emulator.constants.js';
import type { DuoEmulatorTlsOptions } from './emulator.types.js';

export class EmulatorServer {
  readonly #server: Server;
  readonly #tls: boolean;
  readonly #sockets = new Set<Socket>();
  readonly #sleepers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  #closing: Promise<void> | undefined;

  /** `listen` makes the request listener, which may wait on this server (sleep) and ask whether it is closing. */
  constructor(tls: DuoEmulatorTlsOptions | undefined, listen: (server: EmulatorServer) => (req: IncomingMessage, res: ServerResponse) => void) {
    this.#tls = tls !== undefined;
    const listener = listen(this);
    this.#server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert }, listener) : createHttpServer(listener);
    // Benchmarks reuse connections: keep idle ones open long enough.
    this.#server.keepAliveTimeout = 30_000;
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  /** Listens on 127.0.0.1 and returns the origin, `http://127.0.0.1:PORT` (`https://` with TLS). */
  async listen(port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.#server.once('error', onError);
      this.#server.listen({ port, host: HOST }, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('Duo emulator: the server has no TCP address.');
    return `${this.#tls ? 'https' : 'http'}://${HOST}:${address.port}`;
  }

  /** True once close() was called. */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  /** Waits `ms`, or until close(). */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const sleeper = {
        timer: setTimeout(() => {
          this.#sleepers.delete(sleeper);
          resolve();
        }, ms),
        resolve,
      };
      this.#sleepers.add(sleeper);
    });
  }

  /** Stops listening and destroys every open connection, hung ones included. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      for (const sleeper of this.#sleepers) {
        clearTimeout(sleeper.timer);
        sleeper.resolve();
      }
      this.#sleepers.clear();
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => resolve());
      for (const socket of this.#sockets) socket.destroy();
      this.#server.closeAllConnections();
    });
    return this.#closing;
  }
}
