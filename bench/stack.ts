import type { DuoEmulatorOptions } from '../src/testing/index.js';
import type { AppInfo, AppProcessConfig } from './app-process.js';
import { LoginDriver, type LoginDriverOptions } from './driver.js';
import type { EmulatorInfo } from './emulator-process.js';
import { startChild, type Child } from './rpc.js';

/** The emulator and a Nest app, each in its own process, and a driver of logins through both. */
export interface Stack {
  emulator: Child<EmulatorInfo>;
  app: Child<AppInfo>;
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
  } = {},
): Promise<Stack> {
  const emulator = await startChild<EmulatorInfo>(new URL('./emulator-process.js', import.meta.url), {
    env: { BENCH_EMULATOR: JSON.stringify({ codeTtlSeconds: 600, ...options.emulator }) },
  });
  let app: Child<AppInfo> | undefined;
  try {
    const { baseUrl, clientId, clientSecret } = emulator.info;
    const config: AppProcessConfig = {
      ...options.app,
      duo: { clientId, clientSecret, apiBaseUrl: baseUrl, ...options.app?.duo },
    };
    app = await startChild<AppInfo>(new URL('./app-process.js', import.meta.url), {
      env: { BENCH_APP: JSON.stringify(config) },
      execArgv: ['--expose-gc', ...(options.appExecArgv ?? [])],
    });
  } catch (error) {
    await emulator.stop();
    throw error;
  }
  const started = app;
  const driver = new LoginDriver({ ...options.driver, appUrl: started.info.baseUrl, authorize: (url) => emulator.call<string>('authorize', url) });
  return {
    emulator,
    app: started,
    driver,
    async stop() {
      await driver.close();
      await started.stop();
      await emulator.stop();
    },
  };
}
