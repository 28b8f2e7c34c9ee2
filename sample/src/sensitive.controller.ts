import { Controller, Get, Req, type Type } from '@nestjs/common';
import { RequireSecondFactor } from 'nestjs-duo';
import type { SampleRequest } from './http.js';
import { SessionStatusService } from './session-status.service.js';
import { sensitivePage } from './views/pages.js';

/**
 * The step-up page. Decorator arguments are fixed when a class is defined, and the
 * age comes from configuration (SAMPLE_STEP_UP_SECONDS), so the class is defined
 * here, once the configuration is known. In your app: `@RequireSecondFactor({ maxAge: 120 })`.
 */
export function sensitiveController(stepUpSeconds: number): Type {
  @Controller()
  class SensitiveController {
    constructor(private readonly status: SessionStatusService) {}

    @Get('sensitive')
    @RequireSecondFactor({ maxAge: stepUpSeconds })
    sensitive(@Req() req: SampleRequest): string {
      return sensitivePage(this.status.of(req));
    }
  }
  return SensitiveController;
}
