import { Controller, Get, Header, Query, Req } from '@nestjs/common';
import { DuoCallback, RequireSecondFactor } from 'nestjs-duo';
import type { SampleRequest } from './http.js';
import { SessionStatusService } from './session-status.service.js';
import { STYLESHEET } from './views/style.js';
import { accountPage, homePage } from './views/pages.js';

/** What /api/me answers once the second factor is passed. */
export interface MeResponse {
  username: string;
  displayName: string;
  secondFactor: { passed: boolean; at?: string; factor?: string; reason?: string; amr?: string[] };
  failOpen: { reason: string; until: string } | null;
}

@Controller()
export class PagesController {
  constructor(private readonly status: SessionStatusService) {}

  @Get()
  home(@Req() req: SampleRequest, @Query('signedOut') signedOut: unknown): string {
    return homePage(this.status.of(req), signedOut === '1' ? 'You have signed out; the session is gone.' : undefined);
  }

  @Get('account')
  @RequireSecondFactor()
  account(@Req() req: SampleRequest): string {
    return accountPage(this.status.of(req));
  }

  /** For API clients: without a passed second factor, 401 with the `location` to open in the browser. */
  @Get('api/me')
  @RequireSecondFactor()
  me(@Req() req: SampleRequest): MeResponse {
    const { user, verification, bypass } = this.status.of(req);
    return {
      username: user!.username,
      displayName: user!.displayName,
      secondFactor: verification
        ? {
            passed: true,
            at: new Date(verification.at).toISOString(),
            ...(verification.factor ? { factor: verification.factor } : {}),
            ...(verification.reason ? { reason: verification.reason } : {}),
            ...(verification.amr ? { amr: verification.amr } : {}),
          }
        : { passed: false },
      failOpen: bypass ? { reason: bypass.reason, until: new Date(bypass.until).toISOString() } : null,
    };
  }

  /**
   * Duo's redirect URI. The guard behind @DuoCallback() checks the state, exchanges
   * the code, verifies the id_token and marks the session; then the browser goes
   * back (303) to the page that started the login.
   */
  @Get('duo/callback')
  @DuoCallback()
  callback(): void {}

  @Get('assets/sample.css')
  @Header('Content-Type', 'text/css; charset=utf-8')
  @Header('Cache-Control', 'public, max-age=300')
  stylesheet(): string {
    return STYLESHEET;
  }
}
