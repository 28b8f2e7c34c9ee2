import type { DuoEmulatorOptions } from '../src/testing/index.js';
import type { AppInfo, AppProcessConfig } from './app-process.js';
import { LoginDriver, type LoginDriverOptions } from './driver.js';
import type { EmulatorInfo } from './emulator-process.js';
import { startChild, type Child } from './rpc.js';

/** The emulator and a Nest app, each in its own process, and a driver of logins through both. */
export interface Stack {
  emulator: Child<EmulatorInfo>;
  /** The first (or only) instance. */
  app: Child<AppInfo>;
  /** Every instance of the app (one unless `instances` was given). */
  apps: Array<Child<AppInfo>>;
  driver: LoginDriver;
  stop(): Promise<void>;
}

export async function startStack(
  options: {
    emulator?: DuoEmulatorOptions;
    app?: Omit<AppProcessConfig, 'duo'> & { duo?: Partial<AppProcessConfig['duo']> };
    driver?: Omit<LoginDriverOptions, 'appUrl' | 'authorize'>;
    /** More Node flags for the app process (--cpu-prof, ...). */
    appExecArgv?: string[];
    /** App instances, each its own process; more than one needs shared sessions (app.redisUrl with redisSessions). */
    instances?: number;
  } = {},
): Promise<Stack> {
  const instances = options.instances ?? 1;
  if (instances > 1 && !(options.app?.redisUrl && options.app.redisSessions)) throw new Error('startStack: several instances need app.redisUrl and app.redisSessions');
  const emulator = await startChild<EmulatorInfo>(new URL('./emulator-process.js', import.meta.url), {
    env: { BENCH_EMULATOR: JSON.stringify({ codeTtlSeconds: 600, ...options.emulator }) },
  });
  const apps: Array<Child<AppInfo>> = [];
  try {
    const { baseUrl, clientId, clientSecret } = emulator.info;
    const config: AppProcessConfig = {
      ...options.app,
      duo: { clientId, clientSecret, apiBaseUrl: baseUrl, ...options.app?.duo },
    };
    for (let i = 0; i < instances; i++) {
      apps.push(
        await startChild<AppInfo>(new URL('./app-process.js', import.meta.url), {
          env: { BENCH_APP: JSON.stringify(config) },
          execArgv: ['--expose-gc', ...(options.appExecArgv ?? [])],
        }),
      );
    }
  } catch (error) {
    for (const app of apps) await app.stop();
    await emulator.stop();
    throw error;
  }
  const started = apps[0]!;
  const driver = new LoginDriver({
    ...options.driver,
    appUrl: apps.map((app) => app.info.baseUrl),
    authorize: (url) => emulator.call<string>('authorize', url),
  });
  return {
    emulator,
    app: started,
    apps,
    driver,
    async stop() {
      await driver.close();
      for (const app of apps) await app.stop();
      await emulator.stop();
    },
  };
}
