import { Controller, Get, Req } from '@nestjs/common';
import { DuoService, RequireSecondFactor } from 'nestjs-duo';
import type { SampleRequest } from './http.js';
import { SessionStatusService } from './session-status.service.js';
import { adminPage } from './views/pages.js';

/**
 * The admin area, on a second Duo application (`admin` in DuoModule's
 * `applications`): a session that passed Duo for the account pages passes
 * again here, with the admin application, and Duo must have asked the user
 * (`requireInteraction`: no remembered device, no bypass).
 */
@Controller('admin')
export class AdminController {
  constructor(
    private readonly status: SessionStatusService,
    private readonly duo: DuoService,
  ) {}

  @Get()
  @RequireSecondFactor({ application: 'admin', requireInteraction: true })
  dashboard(@Req() req: SampleRequest): string {
    const admin = this.duo.forApplication('admin');
    return adminPage(this.status.of(req), admin.verification(req)!, admin.application);
  }
}
