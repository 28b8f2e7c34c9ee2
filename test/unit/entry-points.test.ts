/**
 * The public API: what the root entry exports at run time is a short, documented
 * list (what an app writes); Duo's protocol client is `nestjs-duo/protocol`.
 * A new export is a promise to keep: add it here, and to the README.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as protocol from '../../src/protocol/index.js';
import * as root from '../../src/index.js';
import * as terminus from '../../src/terminus/index.js';

const ROOT = [
  'DUO_FACTORS',
  'DUO_MODULE_OPTIONS',
  'DuoCallback',
  'DuoCallbackResult',
  'DuoConfigError',
  'DuoError',
  'DuoHttpException',
  'DuoModule',
  'DuoService',
  'RETURN_TO_HEADER',
  'RedisTransactionStore',
  'RequireSecondFactor',
  'SecondFactorGuard',
  'SessionTransactionStore',
  'SkipSecondFactor',
  'expectNoNonce',
  'guardSessionStore',
  'isDuoError',
  'safeReturnPath',
];

describe('entry points', () => {
  it('nestjs-duo exports exactly what an app writes (at most about 20 runtime names)', () => {
    expect(Object.keys(root).sort()).toEqual([...ROOT].sort());
  });

  it('every runtime name of nestjs-duo is documented in the README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const undocumented = ROOT.filter((name) => !readme.includes(name));
    expect(undocumented).toEqual([]);
  });

  it('nestjs-duo/protocol has the client, its errors and its helpers; the root shares its error classes', () => {
    expect(Object.keys(protocol).sort()).toEqual(
      ['CLOCK_LEEWAY_SECONDS', 'DUO_PROTOCOL_ERROR_CODES', 'DuoClient', 'DuoConfigError', 'DuoError', 'NESTJS_DUO_VERSION', 'expectNoNonce', 'generateNonce', 'generateState', 'isDuoError', 'isLoopbackHost', 'resolveClientConfig'].sort(),
    );
    expect(root.DuoError).toBe(protocol.DuoError);
  });

  it('nestjs-duo/terminus has the health indicator only', () => {
    expect(Object.keys(terminus)).toEqual(['DuoHealthIndicator']);
  });

  it('package.json exports the four entry points and its own manifest', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { exports: Record<string, unknown> };
    expect(Object.keys(pkg.exports).sort()).toEqual(['.', './package.json', './protocol', './terminus', './testing']);
  });
});
