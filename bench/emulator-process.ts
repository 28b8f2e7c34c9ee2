/**
 * Child process: one DuoEmulator on 127.0.0.1, driven over IPC (see rpc.ts).
 * Configured by the BENCH_EMULATOR environment variable (JSON DuoEmulatorOptions).
 */
import { DuoEmulator, type DuoEmulatorFailure, type DuoEmulatorFailureOptions, type DuoEmulatorOptions } from '../src/testing/index.js';
import { serveRpc } from './rpc.js';

export interface EmulatorInfo {
  baseUrl: string;
  port: number;
  clientId: string;
  clientSecret: string;
}

const options = JSON.parse(process.env.BENCH_EMULATOR ?? '{}') as DuoEmulatorOptions;
const emulator = await DuoEmulator.start(options);

async function authorizeMany(urls: string[], concurrency: number): Promise<string[]> {
  const out: string[] = Array.from({ length: urls.length }, () => '');
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < urls.length) {
      const index = next++;
      try {
        out[index] = await emulator.authorize(urls[index]!);
      } catch (error) {
        out[index] = `ERROR ${(error as Error).message}`;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, urls.length)) }, worker));
  return out;
}

const info: EmulatorInfo = {
  baseUrl: emulator.baseUrl,
  port: Number(new URL(emulator.baseUrl).port),
  clientId: emulator.clientId,
  clientSecret: emulator.clientSecret,
};

serveRpc(
  info,
  {
    authorize: (url: string) => emulator.authorize(url),
    authorizeMany,
    setFailure: (failure: DuoEmulatorFailure, failureOptions?: DuoEmulatorFailureOptions) => emulator.setFailure(failure, failureOptions),
    setClockOffset: (seconds: number) => emulator.setClockOffset(seconds),
    stats: () => emulator.stats,
    resetStats: () => emulator.resetStats(),
    cpu: () => process.cpuUsage(),
  },
  () => emulator.close(),
);
