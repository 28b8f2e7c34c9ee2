/**
 * Benchmark 7's floor: a minimal hand-rolled Duo login in the same app, as the
 * issue describes it (a synchronous HMAC for every JWT, the same checks, the
 * session regenerated), with no module, guard or exception path: GET
 * /hand/account (200 when this session passed, else a 303 to Duo) and GET
 * /hand/callback (state, code exchange, id_token HS512 and claims, regenerate,
 * save, 303 back). Express only. Not for use outside the benchmark: it has no
 * deadline handling, fail modes, limits or telemetry.
 */
import { createHmac, createSecretKey, randomBytes, timingSafeEqual } from 'node:crypto';
import { Controller, Get, Req, Res, type Type } from '@nestjs/common';
import { Agent, request } from 'undici';
import { HsKey, signJwtSync } from '../src/protocol/jwt.js';

export const HAND_REDIRECT_URI = 'http://localhost/hand/callback';

interface HandConfig {
  clientId: string;
  clientSecret: string;
  apiBaseUrl: string;
}

type Req = Record<string, any>;
type Res = Record<string, any>;

const CLOCK_LEEWAY = 60;

export function handLoginController(config: HandConfig): Type {
  const { clientId, apiBaseUrl } = config;
  const key = new HsKey(config.clientSecret);
  const hmacKey = createSecretKey(Buffer.from(config.clientSecret));
  const tokenUrl = `${apiBaseUrl}/oauth/v1/token`;
  const authorizeHead = `${apiBaseUrl}/oauth/v1/authorize?${new URLSearchParams({ response_type: 'code', client_id: clientId })}&request=`;
  const authorizeTail = `&${new URLSearchParams({ redirect_uri: HAND_REDIRECT_URI, scope: 'openid' })}`;
  const agent = new Agent({ connections: 64, keepAliveTimeout: 60_000 });
  const token = (): string => randomBytes(32).toString('base64url');

  /** The id_token's claims when its HS512 signature is ours, else undefined. */
  function verified(idToken: unknown): Record<string, any> | undefined {
    if (typeof idToken !== 'string') return undefined;
    const parts = idToken.split('.');
    if (parts.length !== 3) return undefined;
    const [header, payload, signature] = parts as [string, string, string];
    const expected = createHmac('sha512', hmacKey).update(`${header}.${payload}`).digest();
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    try {
      if ((JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg?: unknown }).alg !== 'HS512') return undefined;
      return JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, any>;
    } catch {
      return undefined;
    }
  }

  @Controller('hand')
  class HandLoginController {
    @Get('account')
    account(@Req() req: Req, @Res() res: Res): void {
      const username: unknown = req.session?.user?.username;
      if (typeof username !== 'string') {
        res.status(401).send('sign in first');
        return;
      }
      if (req.session.hand?.username === username) {
        res.send(`account of ${username}`);
        return;
      }
      const state = token();
      const nonce = token();
      req.session.handPending = { state, nonce, username, expiresAt: Date.now() + 600_000 };
      const now = Math.floor(Date.now() / 1000);
      const jwt = signJwtSync(key, {
        response_type: 'code',
        scope: 'openid',
        client_id: clientId,
        redirect_uri: HAND_REDIRECT_URI,
        state,
        duo_uname: username,
        use_duo_code_attribute: true,
        iss: clientId,
        aud: apiBaseUrl,
        iat: now,
        exp: now + 300,
        nonce,
      });
      res.redirect(303, `${authorizeHead}${jwt}${authorizeTail}&nonce=${nonce}`);
    }

    @Get('callback')
    async callback(@Req() req: Req, @Res() res: Res): Promise<void> {
      const pending = req.session?.handPending as { state: string; nonce: string; username: string; expiresAt: number } | undefined;
      const { state, duo_code: code } = req.query as Record<string, unknown>;
      if (!pending || state !== pending.state || typeof code !== 'string' || pending.expiresAt < Date.now() || req.session.user?.username !== pending.username) {
        res.status(400).send('unknown or expired login');
        return;
      }
      delete req.session.handPending;
      const now = Math.floor(Date.now() / 1000);
      const assertion = signJwtSync(key, { iss: clientId, sub: clientId, aud: tokenUrl, jti: randomBytes(27).toString('base64url'), iat: now, exp: now + 300 }, 'JWT');
      const answer = await request(tokenUrl, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: HAND_REDIRECT_URI,
          client_id: clientId,
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        }).toString(),
        headersTimeout: 3000,
        bodyTimeout: 3000,
      });
      const body = (await answer.body.json().catch(() => undefined)) as { id_token?: unknown } | undefined;
      const claims = answer.statusCode === 200 ? verified(body?.id_token) : undefined;
      const at = Math.floor(Date.now() / 1000);
      const ok =
        claims !== undefined &&
        claims.iss === tokenUrl &&
        (claims.aud === clientId || (Array.isArray(claims.aud) && claims.aud.length === 1 && claims.aud[0] === clientId)) &&
        typeof claims.exp === 'number' &&
        claims.exp > at - CLOCK_LEEWAY &&
        typeof claims.iat === 'number' &&
        claims.iat <= at + CLOCK_LEEWAY &&
        claims.nonce === pending.nonce &&
        claims.preferred_username === pending.username &&
        claims.auth_result?.status === 'allow';
      if (!ok) {
        res.status(403).send('second factor refused');
        return;
      }
      const user = req.session.user as unknown;
      req.session.regenerate((error: unknown) => {
        if (error) return void res.status(503).send('session store');
        req.session.user = user;
        req.session.hand = { username: pending.username, at: Date.now() };
        req.session.save((saveError: unknown) => {
          if (saveError) return void res.status(503).send('session store');
          res.redirect(303, '/hand/account');
        });
      });
    }
  }
  return HandLoginController;
}
