import { Logger } from '@nestjs/common';
import { DuoEmulator, type DuoEmulatorApplication, type DuoEmulatorClientOptions } from 'nestjs-duo/testing';
import type { SampleConfig } from './sample.config.js';

/** The one start of this process: every app instance (SAMPLE_INSTANCES) shares the emulator. */
let started: Promise<SampleDuoEmulator> | undefined;

/**
 * The local Duo emulator, when no DUO_* variable is set: started in `prompt`
 * mode, so the browser shows an Approve / Deny page where Duo's prompt would be.
 * Started once per process, whatever the number of app instances, and closed
 * by main.ts after all of them.
 */
export class SampleDuoEmulator {
  /** The admin area's Duo application, on the same emulator. */
  readonly #admin: DuoEmulatorApplication | undefined;

  private constructor(readonly emulator: DuoEmulator | undefined) {
    this.#admin = emulator?.addApplication({ clientId: 'DIEMULATORADMIN00001' });
  }

  /** Starts the emulator (or not, with real Duo) the first time; later calls get the same one. */
  static start(config: SampleConfig): Promise<SampleDuoEmulator> {
    started ??= SampleDuoEmulator.#start(config);
    return started;
  }

  static async #start(config: SampleConfig): Promise<SampleDuoEmulator> {
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

  /** The admin application's options (a second Duo application on the same emulator). */
  adminClientOptions(redirectUri: string): DuoEmulatorClientOptions {
    if (!this.#admin) throw new Error('The Duo emulator is not running (DUO_* variables are set).');
    return this.#admin.clientOptions(redirectUri);
  }

  async close(): Promise<void> {
    await this.emulator?.close();
  }
}
