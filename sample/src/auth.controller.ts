import { Body, Controller, Get, Inject, Logger, Post, Query, Req, Res } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Response } from 'express';
import { SAMPLE_INSTANCE } from './cluster.js';
import { safeReturnPath } from 'nestjs-duo';
import type { SampleRequest } from './http.js';
import { sampleConfig, type SampleInstance } from './sample.config.js';
import { SessionStatusService } from './session-status.service.js';
import { UsersService } from './users.service.js';
import { loginPage } from './views/pages.js';

export const SESSION_COOKIE = 'sample.sid';

function sessionCall(req: SampleRequest, method: 'regenerate' | 'save' | 'destroy'): Promise<void> {
  return new Promise((resolve, reject) => req.session[method]((error: unknown) => (error ? reject(error) : resolve())));
}

/**
 * The primary login: username and password against the in-memory demo users.
 * Duo comes after, when a protected page is opened. The form relies on the
 * session cookie's SameSite=Lax against cross-site posts.
 */
@Controller()
export class AuthController {
  readonly #logger: Logger;

  constructor(
    private readonly users: UsersService,
    private readonly status: SessionStatusService,
    @Inject(sampleConfig.KEY) private readonly config: ConfigType<typeof sampleConfig>,
    @Inject(SAMPLE_INSTANCE) instance: SampleInstance,
  ) {
    // With several instances, the log says which one took the login.
    this.#logger = new Logger(config.instances.length > 1 ? `Login#${instance.index}` : 'Login');
  }

  @Get('login')
  form(@Req() req: SampleRequest, @Query('returnTo') returnTo: unknown): string {
    return loginPage(this.status.of(req), { returnTo: safeReturnPath(returnTo) });
  }

  @Post('login')
  async login(@Req() req: SampleRequest, @Res() res: Response, @Body() body: Record<string, unknown> = {}): Promise<void> {
    const username = typeof body.username === 'string' ? body.username.trim().toLowerCase() : '';
    const password = typeof body.password === 'string' ? body.password : '';
    const returnTo = safeReturnPath(body.returnTo);
    const refuse = (status: number, error: string): void => {
      res.status(status).type('html').send(loginPage(this.status.of(req), { returnTo, username: username.slice(0, 64), error }));
    };
    if (username.length === 0 || password.length === 0 || username.length > 64 || password.length > 1024) {
      refuse(400, 'Enter a username and a password.');
      return;
    }
    const user = await this.users.verify(username, password);
    if (!user) {
      this.#logger.warn('Failed sign-in (wrong username or password).');
      refuse(401, 'Wrong username or password.');
      return;
    }
    // A new session id at every login (session fixation); whatever the old session held is dropped.
    await sessionCall(req, 'regenerate');
    req.session.user = user;
    await sessionCall(req, 'save');
    this.#logger.log(`"${user.username}" signed in with a password; Duo follows on protected pages.`);
    res.redirect(303, returnTo);
  }

  @Post('logout')
  async logout(@Req() req: SampleRequest, @Res() res: Response): Promise<void> {
    const username = req.session.user?.username;
    await sessionCall(req, 'destroy');
    res.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'lax', secure: this.config.secureCookie });
    if (username) this.#logger.log(`"${username}" signed out; the session is destroyed.`);
    res.redirect(303, '/?signedOut=1');
  }
}
