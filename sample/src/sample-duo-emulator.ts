import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { DuoEmulator, type DuoEmulatorClientOptions } from 'nestjs-duo/testing';
import type { SampleConfig } from './sample.config.js';

/**
 * The local Duo emulator, when no DUO_* variable is set: started in `prompt`
 * mode, so the browser shows an Approve / Deny page where Duo's prompt would be.
 */
export class SampleDuoEmulator implements OnApplicationShutdown {
  private constructor(readonly emulator: DuoEmulator | undefined) {}

  static async start(config: SampleConfig): Promise<SampleDuoEmulator> {
    if (config.duo.kind !== 'emulator') return new SampleDuoEmulator(undefined);
    const logger = new Logger('DuoEmulator');
    const emulator = await DuoEmulator.start({ mode: 'prompt', logger: (line) => logger.log(line.replace(/^\[duo-emulator\] /, '')) });
    // Only to show fail modes: Duo's health check answers "unavailable".
    if (config.duo.down) emulator.setFailure('health_fail');
    return new SampleDuoEmulator(emulator);
  }

  get running(): boolean {
    return this.emulator !== undefined;
  }

  get baseUrl(): string {
    return this.emulator?.baseUrl ?? '';
  }

  clientOptions(redirectUri: string): DuoEmulatorClientOptions {
    if (!this.emulator) throw new Error('The Duo emulator is not running (DUO_* variables are set).');
    return this.emulator.clientOptions(redirectUri);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.emulator?.close();
  }
}
