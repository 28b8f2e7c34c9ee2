import { Body, Controller, Get, HttpCode, Post, Req, UnauthorizedException } from '@nestjs/common';
import { DuoCallback, DuoCallbackResult, RequireSecondFactor, type DuoCallbackOutcome } from 'nestjs-duo';
import type { Request } from 'express';

/** The app's own primary login (a stand-in: one demo user and password). */
@Controller('login')
export class LoginController {
  @Post()
  @HttpCode(204)
  login(@Req() req: Request, @Body() body: { username?: string; password?: string }): void {
    if (body.username !== 'alice' || body.password !== 'correct horse') throw new UnauthorizedException();
    (req.session as unknown as { user?: { username: string } }).user = { username: body.username };
  }
}

@Controller('account')
export class AccountController {
  @Get()
  @RequireSecondFactor()
  account(@Req() req: Request & { user?: { username: string } }): string {
    return `account of ${req.user?.username}`;
  }
}

@Controller('duo')
export class DuoCallbackController {
  @Get('callback')
  @DuoCallback()
  callback(@DuoCallbackResult() outcome: DuoCallbackOutcome): { url: string } | undefined {
    return outcome.returnTo === '/' ? { url: '/account' } : undefined;
  }
}
