import { registerAs } from '@nestjs/config';
import type { DuoFailMode } from 'nestjs-duo';

/** The path of the `@DuoCallback()` route; Duo's redirect URI must point here. */
export const CALLBACK_PATH = '/duo/callback';

const DUO_VARIABLES = ['DUO_CLIENT_ID', 'DUO_CLIENT_SECRET', 'DUO_API_HOST', 'DUO_REDIRECT_URI'] as const;

/** Real Duo: the four DUO_* variables. */
export interface RealDuoSettings {
  kind: 'duo';
  clientId: string;
  clientSecret: string;
  apiHost: string;
  redirectUri: string;
}

/** No DUO_* variable set: the built-in emulator, started in prompt mode. */
export interface EmulatorSettings {
  kind: 'emulator';
  redirectUri: string;
  /** SAMPLE_EMULATOR_DOWN=1: the emulator's health check fails, to show fail modes. */
  down: boolean;
}

export interface SampleConfig {
  host: string;
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

  if (problems.length > 0) throw new SampleConfigError(problems);
  return {
    host,
    port,
    publicOrigin: new URL(duo.redirectUri).origin,
    duo,
    failMode,
    stepUpSeconds,
    ...(secretFromEnv === undefined ? {} : { sessionSecret: secretFromEnv }),
    secureCookie: duo.redirectUri.startsWith('https:'),
  };
}

/** The settings as a @nestjs/config namespace: inject with `@Inject(sampleConfig.KEY)`. */
export const sampleConfig = registerAs('sample', (): SampleConfig => parseSampleConfig(process.env));
