import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The benchmarks run the Nest app and the Duo emulator in child processes of
 * their own, so that the load generator, the app and "Duo" do not share one
 * event loop and the app's CPU time can be measured alone. They talk over
 * Node's IPC channel with a tiny request/answer protocol.
 */

type Handler = (...args: never[]) => unknown;

interface CallMessage {
  id: number;
  method: string;
  args: unknown[];
}

interface AnswerMessage {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

interface ReadyMessage {
  ready: true;
  info: unknown;
}

const CALL_TIMEOUT_MS = 300_000;
const START_TIMEOUT_MS = 60_000;

export interface Child<Info> {
  readonly pid: number;
  readonly info: Info;
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T>;
  /** Asks the child to shut down, and kills it (this child only) if it has not exited within 10 s. */
  stop(): Promise<void>;
}

/** Forks a compiled child script and waits for it to say it is ready. */
export async function startChild<Info>(script: URL, options: { env?: Record<string, string>; execArgv?: string[] } = {}): Promise<Child<Info>> {
  const child: ChildProcess = fork(fileURLToPath(script), [], {
    env: { ...process.env, ...options.env },
    execArgv: options.execArgv ?? [],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 1;
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      for (const call of pending.values()) {
        clearTimeout(call.timer);
        call.reject(new Error(`child ${child.pid} exited`));
      }
      pending.clear();
      resolve();
    });
  });

  const info = await new Promise<Info>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child ${script.pathname} did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child ${script.pathname} exited with code ${code} before it was ready`));
    });
    child.on('message', (message: ReadyMessage | AnswerMessage) => {
      if ('ready' in message) {
        clearTimeout(timer);
        resolve(message.info as Info);
        return;
      }
      const call = pending.get(message.id);
      if (!call) return;
      pending.delete(message.id);
      clearTimeout(call.timer);
      if (message.ok) call.resolve(message.result);
      else call.reject(new Error(message.error ?? 'child call failed'));
    });
  });

  return {
    pid: child.pid!,
    info,
    call<T>(method: string, ...args: unknown[]): Promise<T> {
      if (exited) return Promise.reject(new Error(`child ${child.pid} has exited`));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`child call ${method} took more than ${CALL_TIMEOUT_MS} ms`));
        }, CALL_TIMEOUT_MS);
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
        child.send({ id, method, args } satisfies CallMessage);
      });
    },
    async stop(): Promise<void> {
      if (exited) return;
      child.send({ id: 0, method: 'shutdown', args: [] } satisfies CallMessage);
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(killer);
    },
  };
}

/** The child's side: answers calls with `handlers`, says it is ready, exits on `shutdown` or when the parent goes. */
export function serveRpc(info: unknown, handlers: Record<string, Handler>, shutdown: () => Promise<void>): void {
  let closing = false;
  const close = (): void => {
    if (closing) return;
    closing = true;
    const force = setTimeout(() => process.exit(0), 5_000);
    force.unref();
    shutdown()
      .catch(() => undefined)
      .finally(() => process.exit(0));
  };
  process.on('disconnect', close);
  process.on('message', (message: CallMessage) => {
    if (message.method === 'shutdown') {
      close();
      return;
    }
    const handler = handlers[message.method];
    const answer = (reply: AnswerMessage): void => {
      if (process.connected) process.send!(reply);
    };
    if (!handler) {
      answer({ id: message.id, ok: false, error: `unknown method ${message.method}` });
      return;
    }
    Promise.resolve()
      .then(() => (handler as (...args: unknown[]) => unknown)(...message.args))
      .then(
        (result) => answer({ id: message.id, ok: true, result }),
        (error: unknown) => answer({ id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) }),
      );
  });
  process.send!({ ready: true, info } satisfies ReadyMessage);
}
