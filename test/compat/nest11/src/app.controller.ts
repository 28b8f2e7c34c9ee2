import { Body, Controller, Get, Post, Req } from '@nestjs/common';
import { DuoCallback, DuoCallbackResult, RequireSecondFactor, type DuoCallbackOutcome } from 'nestjs-duo';
import type { Request } from 'express';

interface AppRequest extends Request {
  user?: { username: string };
}

@Controller()
export class AppController {
  @Get()
  getHello(): string {
    return 'Hello World!';
  }

  /** The app's primary login: whatever puts the user in the session (here it trusts the posted name). */
  @Post('login')
  login(@Req() req: AppRequest, @Body() body: { username: string }): { ok: true } {
    (req.session as unknown as { user?: { username: string } }).user = { username: body.username };
    return { ok: true };
  }

  @Get('account')
  @RequireSecondFactor()
  account(@Req() req: AppRequest): string {
    return `account of ${req.user?.username}`;
  }

  /** Duo's redirect URI. The module answers (303 back to the page the login was for). */
  @Get('duo/callback')
  @DuoCallback()
  callback(@DuoCallbackResult() outcome: DuoCallbackOutcome): void {
    if (typeof outcome?.returnTo !== 'string') throw new Error('callback outcome missing');
  }
}
