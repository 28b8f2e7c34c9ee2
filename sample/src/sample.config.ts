import { registerAs } from '@nestjs/config';
import type { DuoFailMode } from 'nestjs-duo';

/** The path of the `@DuoCallback()` route; Duo's redirect URI must point here. */
export const CALLBACK_PATH = '/duo/callback';

const DUO_VARIABLES = ['DUO_CLIENT_ID', 'DUO_CLIENT_SECRET', 'DUO_API_HOST', 'DUO_REDIRECT_URI'] as const;

/** The most app instances SAMPLE_INSTANCES may start in one process: a demo, not a load test. */
export const MAX_INSTANCES = 5;

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Real Duo: the four DUO_* variables. */
export interface RealDuoSettings {
  kind: 'duo';
  clientId: string;
  clientSecret: string;
  apiHost: string;
  redirectUri: string;
  /** DUO_ADMIN_CLIENT_ID and DUO_ADMIN_CLIENT_SECRET: the admin area's own Duo application (same API host); else the same application as the rest. */
  admin?: { clientId: string; clientSecret: string };
}

/** No DUO_* variable set: the built-in emulator, started in prompt mode. */
export interface EmulatorSettings {
  kind: 'emulator';
  redirectUri: string;
  /** SAMPLE_EMULATOR_DOWN=1: the emulator's health check fails, to show fail modes. */
  down: boolean;
}

/** One app instance of the process (SAMPLE_INSTANCES): instance 0 listens on PORT, instance i on PORT + i. */
export interface SampleInstance {
  index: number;
  port: number;
  /**
   * Where people open this instance. Instance 0: the redirect URI's origin.
   * The others, when that origin is this machine's PORT (no proxy in front):
   * the same host name on their own port, so the session cookie (which
   * ignores ports) is shared by all of them.
   */
  origin: string;
}

export interface SampleConfig {
  host: string;
  /** Instance 0's port (PORT). */
  port: number;
  /** Where people open the app: the redirect URI's origin. */
  publicOrigin: string;
  duo: RealDuoSettings | EmulatorSettings;
  failMode: DuoFailMode;
  /** maxAge of the step-up route /sensitive, in seconds. */
  stepUpSeconds: number;
  /** SESSION_SECRET; when unset, main.ts makes a random one per start. */
  sessionSecret?: string;
  /** The session cookie gets the Secure flag when the redirect URI is https. */
  secureCookie: boolean;
  /** REDIS_URL: cluster mode, sessions and pending Duo logins in Redis. */
  redisUrl?: string;
  /** SAMPLE_INSTANCES app instances (default 1), all in this process, sharing the emulator and Redis. */
  instances: SampleInstance[];
}

/** Every configuration mistake at once, so one restart fixes them all. */
export class SampleConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`The sample's configuration is invalid:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'SampleConfigError';
  }
}

type Env = Record<string, string | undefined>;

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function list(names: readonly string[]): string {
  return names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} and ${names.at(-1)!}`;
}

function wholeNumber(env: Env, name: string, fallback: number, min: number, max: number, problems: string[]): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}").`);
    return fallback;
  }
  return value;
}

/**
 * Reads the sample's settings from the environment (ConfigModule loads a `.env`
 * file into it first). Pure: the same environment gives the same settings.
 * Throws SampleConfigError naming every bad variable.
 */
export function parseSampleConfig(env: Env): SampleConfig {
  const problems: string[] = [];
  const host = text(env, 'HOST') ?? '127.0.0.1';
  const port = wholeNumber(env, 'PORT', 3000, 1, 65_535, problems);
  const stepUpSeconds = wholeNumber(env, 'SAMPLE_STEP_UP_SECONDS', 120, 1, 86_400, problems);

  const failModeRaw = text(env, 'DUO_FAIL_MODE') ?? 'closed';
  if (failModeRaw !== 'closed' && failModeRaw !== 'open') problems.push(`DUO_FAIL_MODE must be "closed" or "open" (got "${failModeRaw}").`);
  const failMode: DuoFailMode = failModeRaw === 'open' ? 'open' : 'closed';

  const set = DUO_VARIABLES.filter((name) => text(env, name) !== undefined);
  let duo: RealDuoSettings | EmulatorSettings;
  if (set.length === 0) {
    duo = { kind: 'emulator', redirectUri: `http://localhost:${port}${CALLBACK_PATH}`, down: text(env, 'SAMPLE_EMULATOR_DOWN') === '1' };
  } else {
    const missing = DUO_VARIABLES.filter((name) => !set.includes(name));
    if (missing.length > 0) {
      problems.push(
        `${list(missing)} ${missing.length === 1 ? 'is' : 'are'} not set, but ${list(set)} ${set.length === 1 ? 'is' : 'are'}. ` +
          'Set all four DUO_* variables to use real Duo, or none of them to use the local emulator.',
      );
    }
    duo = {
      kind: 'duo',
      clientId: text(env, 'DUO_CLIENT_ID') ?? '',
      clientSecret: text(env, 'DUO_CLIENT_SECRET') ?? '',
      apiHost: text(env, 'DUO_API_HOST') ?? '',
      redirectUri: text(env, 'DUO_REDIRECT_URI') ?? '',
    };
    const adminId = text(env, 'DUO_ADMIN_CLIENT_ID');
    const adminSecret = text(env, 'DUO_ADMIN_CLIENT_SECRET');
    if ((adminId === undefined) !== (adminSecret === undefined)) {
      problems.push('Set both DUO_ADMIN_CLIENT_ID and DUO_ADMIN_CLIENT_SECRET (the admin area\'s Duo application), or neither (the admin area then uses DUO_CLIENT_ID\'s application).');
    } else if (adminId !== undefined && adminSecret !== undefined) {
      duo.admin = { clientId: adminId, clientSecret: adminSecret };
    }
    if (duo.redirectUri !== '') {
      let path: string | undefined;
      try {
        path = new URL(duo.redirectUri).pathname;
      } catch {
        problems.push(`DUO_REDIRECT_URI must be an absolute URL such as https://app.example.com${CALLBACK_PATH}.`);
      }
      if (path !== undefined && path !== CALLBACK_PATH) {
        problems.push(`DUO_REDIRECT_URI must end in ${CALLBACK_PATH}, the sample's callback route (got the path "${path}").`);
      }
    }
  }

  const secretFromEnv = text(env, 'SESSION_SECRET');
  if (secretFromEnv !== undefined && secretFromEnv.length < 32) problems.push('SESSION_SECRET must be at least 32 characters long.');

  const redisUrl = text(env, 'REDIS_URL');
  if (redisUrl !== undefined && !isRedisUrl(redisUrl)) {
    // Not echoed: the URL may carry a password.
    problems.push('REDIS_URL must be a redis:// or rediss:// URL such as redis://127.0.0.1:6379.');
  }
  const instanceCount = wholeNumber(env, 'SAMPLE_INSTANCES', 1, 1, MAX_INSTANCES, problems);
  if (instanceCount > 1 && redisUrl === undefined) {
    problems.push(
      `SAMPLE_INSTANCES=${instanceCount} needs REDIS_URL (cluster mode): the instances stand for separate processes behind a load balancer, ` +
        'which share sessions and pending Duo logins only through Redis. Set REDIS_URL=redis://127.0.0.1:6379, or SAMPLE_INSTANCES=1.',
    );
  }
  if (port + instanceCount - 1 > 65_535) problems.push(`PORT=${port} leaves no room for ${instanceCount} instances (ports ${port} to ${port + instanceCount - 1}).`);

  if (problems.length > 0) throw new SampleConfigError(problems);
  const publicOrigin = new URL(duo.redirectUri).origin;
  return {
    host,
    port,
    publicOrigin,
    duo,
    failMode,
    stepUpSeconds,
    ...(secretFromEnv === undefined ? {} : { sessionSecret: secretFromEnv }),
    secureCookie: duo.redirectUri.startsWith('https:'),
    ...(redisUrl === undefined ? {} : { redisUrl }),
    instances: Array.from({ length: instanceCount }, (_, index) => ({ index, port: port + index, origin: instanceOrigin(publicOrigin, port, index) })),
  };
}

function isRedisUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * Instance 0 is opened at the redirect URI's origin. When that origin is this
 * machine on PORT (nothing in front), instance i is the same host name on
 * PORT + i; otherwise (a proxy or tunnel in front) every instance belongs to
 * that origin, as backends of a load balancer do.
 */
function instanceOrigin(publicOrigin: string, port: number, index: number): string {
  const url = new URL(publicOrigin);
  const urlPort = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  if (index === 0 || !LOOPBACK_HOSTS.has(url.hostname) || urlPort !== port) return publicOrigin;
  url.port = String(port + index);
  return url.origin;
}

/** A Redis URL to print: the host and port, never the credentials. */
export function redisAddress(redisUrl: string): string {
  const url = new URL(redisUrl);
  const credentials = url.username !== '' || url.password !== '' ? '***@' : '';
  return `${url.protocol}//${credentials}${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

/** The settings as a @nestjs/config namespace: inject with `@Inject(sampleConfig.KEY)`. */
export const sampleConfig = registerAs('sample', (): SampleConfig => parseSampleConfig(process.env));
