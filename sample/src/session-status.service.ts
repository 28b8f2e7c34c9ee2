import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { DuoService } from 'nestjs-duo';
import { SAMPLE_INSTANCE } from './cluster.js';
import type { SampleRequest } from './http.js';
import { redisAddress, sampleConfig, type SampleInstance } from './sample.config.js';
import { SampleDuoEmulator } from './sample-duo-emulator.js';
import type { PageStatus } from './views/layout.js';

/** Reads what the pages show about a session: the primary user and the Duo marker, through the module's public API. */
@Injectable()
export class SessionStatusService {
  constructor(
    private readonly duo: DuoService,
    private readonly emulator: SampleDuoEmulator,
    @Inject(sampleConfig.KEY) private readonly config: ConfigType<typeof sampleConfig>,
    @Inject(SAMPLE_INSTANCE) private readonly instance: SampleInstance,
  ) {}

  of(req: SampleRequest): PageStatus {
    const now = Date.now();
    const verification = this.duo.verification(req);
    const bypass = this.duo.bypass(req);
    return {
      ...(req.user ? { user: req.user } : {}),
      ...(verification ? { verification } : {}),
      ...(bypass ? { bypass } : {}),
      backend: {
        kind: this.config.duo.kind,
        where: this.emulator.running ? `local emulator at ${this.emulator.baseUrl} (prompt mode)` : `https://${this.config.duo.kind === 'duo' ? this.config.duo.apiHost : ''}`,
        failMode: this.config.failMode,
      },
      stepUpSeconds: this.config.stepUpSeconds,
      ...(this.config.redisUrl === undefined
        ? {}
        : { cluster: { instance: this.instance.index, port: this.instance.port, instances: this.config.instances.length, redis: redisAddress(this.config.redisUrl) } }),
      now,
    };
  }
}
