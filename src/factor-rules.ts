/**
 * Factor rules per route (issue 13 item 2): which second factor a route
 * accepts, and whether Duo must have asked the user at all, judged from what
 * Duo reports in the id_token's `auth_context` (`factor`, `reason`, `result`).
 *
 * Pure logic: the vocabulary, a resolver run at startup, and a check. No Nest,
 * no session; the guard decides where the evidence comes from and what to do
 * with a refusal.
 *
 * Fail closed: a value this file does not know (a new Duo factor, a different
 * spelling, a missing claim, a number where a string belongs) never matches.
 * Matching is exact and case-sensitive, through Maps and Sets (never object
 * lookups, so `constructor` or `__proto__` is just another unknown string).
 *
 * Sources for every value are in the comments beside it; the README section
 * "Factor rules" has the same table with links. Duo documents the vocabulary
 * for its Admin API authentication log (https://duo.com/docs/adminapi#authentication-logs);
 * the Universal Prompt id_token's `auth_context` has the same shape and names
 * (Duo's typed Universal SDKs model it with the log's fields, and their tests use
 * the log's values `duo_push` / `user_approved` / `success`). `amr` is not used
 * here: Duo documents it only by one example (`["mfa","otp"]`, duo.com/docs/oauthapi
 * #json-web-tokens) and no mapping from factors to `amr` values.
 */
import { DuoConfigError } from './protocol/index.js';
import { printable } from './request.util.js';

/** The factor names a route rule is written in, each standing for one or more of Duo's raw `auth_context.factor` values. */
export const DUO_FACTOR_NAMES = ['webauthn', 'push', 'passcode', 'sms', 'phone', 'hardware_token', 'bypass_code'] as const;
export type DuoFactor = (typeof DUO_FACTOR_NAMES)[number];

export interface DuoFactorDescription {
  /** How a user knows it, as a noun phrase ("a hardware token"). */
  readonly label: string;
  /** Duo's raw `auth_context.factor` values that count as this factor. */
  readonly raw: readonly string[];
}

/**
 * Each factor name, the words a user knows it by, and Duo's raw values.
 *
 * Sources. The Admin API authentication log's `factors` filter
 * (duo.com/docs/adminapi#authentication-logs), as copied with Duo's own
 * descriptions in JohnDuprey/DuoSecurity Docs/Get-DuoAuthLog.md
 * (f989e8e434f8e859c50662b99ef8e3febb6d5dd6): every value below except
 * `yubikey_passcode` and `verified_duo_push`. The log's `factor` field
 * description (panther-labs/panther internal/log_analysis/log_processor/parsers/duologs/authentication.go,
 * c7564cdd1fd8179e8b93d1fc017254d4cc7e9f30) spells the YubiKey OTP
 * `yubikey_passcode` where the filter says `yubikey_code`: both are accepted.
 * `duo_push` in an id_token: duosecurity/duo_universal_csharp
 * DuoUniversal.Tests/TestBase.cs (ec8abecf07ba86ea31c198fa5268d1a87415ec6f).
 * `verified_duo_push` (a push with a code typed in) is in no Duo list, only in
 * third-party data; it is a push, and accepted as one.
 *
 * The WebAuthn values are Duo's display names with capitals and spaces, unlike
 * the rest; the Universal Prompt's own factor names are of that kind too
 * ("Duo Push", "Passcode", "Phone Call", "WebAuthn Security Key":
 * venth/aws-adfs aws_adfs/consts.py, 6d243e76af89ef4d71894d2932075530c3c9f27d).
 * `webauthn_credential` is the prompt's device id for a WebAuthn login
 * (same repository), not a factor value, and does not match.
 */
export const DUO_FACTORS: Readonly<Record<DuoFactor, DuoFactorDescription>> = Object.freeze({
  webauthn: { label: 'a security key or passkey (WebAuthn)', raw: Object.freeze(['WebAuthn Security Key', 'WebAuthn Chrome Touch ID', 'WebAuthn Credential', 'u2f_token']) },
  push: { label: 'Duo Push', raw: Object.freeze(['duo_push', 'verified_duo_push']) },
  passcode: { label: 'a passcode from Duo Mobile', raw: Object.freeze(['duo_mobile_passcode']) },
  sms: { label: 'a passcode sent by text message (SMS)', raw: Object.freeze(['sms_passcode']) },
  phone: { label: 'a phone call from Duo', raw: Object.freeze(['phone_call']) },
  hardware_token: { label: 'a hardware token', raw: Object.freeze(['hardware_token', 'yubikey_code', 'yubikey_passcode', 'digipass_go_7_token']) },
  bypass_code: { label: 'a bypass code', raw: Object.freeze(['bypass_code']) },
});

/**
 * A raw factor value the user did use but that stands for no one factor:
 * Duo's `passcode` is "a passcode not identified as another known type"
 * (Get-DuoAuthLog.md above). It counts as an interaction, and matches no
 * factor name, so a `factors` rule refuses it.
 */
export const DUO_UNNAMED_FACTOR_VALUES: ReadonlyMap<string, string> = new Map([['passcode', 'a passcode of a kind Duo did not name']]);

/**
 * Raw `auth_context.factor` values that mean Duo did not ask the user for any
 * factor (Get-DuoAuthLog.md above): a remembered device's token, an authorized
 * network, Duo Mobile Inline Auth on the phone itself
 * (`trusted_mobile_authenticator`, "effective authentication factor", like the
 * network), no factor at all (`not_available`), and a request for new SMS
 * passcodes (`sms_refresh`), which is not a sign-in.
 */
export const DUO_NO_FACTOR_VALUES = Object.freeze(['remembered_device', 'trusted_network', 'trusted_mobile_authenticator', 'not_available', 'sms_refresh'] as const);

/**
 * `auth_context.reason` values of a success in which the user did something
 * at Duo: approved a push or call (`user_approved`) or typed a code
 * (`valid_passcode`). Admin API log documentation (Get-DuoAuthLog.md above);
 * the id_token value `user_approved` also in duo_universal_csharp's TestBase.cs (above) and
 * duosecurity/duo_api_golang admin/logs_test.go (8aff7fde997964966b44c71aedcb2aee7c4193b0),
 * which copies Duo's documented example.
 */
export const DUO_INTERACTIVE_REASONS = Object.freeze(['user_approved', 'valid_passcode'] as const);

/**
 * `auth_context.reason` values of a success Duo granted without asking the
 * user, with what to tell them. Admin API log documentation (Get-DuoAuthLog.md
 * and panther authentication.go above; also rapid7/insightconnect-plugins
 * plugins/duo_admin/komand_duo_admin/util/constants.py,
 * 4d897d044a7e2377cf77e342977af9f655dd8956, "Duo Admin API 2024-09-17");
 * remembered devices and authorized networks: duo.com/docs/remembered-devices.
 * Duo describes `bypass_user` as "successful because a bypass code was used",
 * yet it is also what a user in bypass status gets; the token cannot tell
 * the two apart, so every rule refuses it.
 */
export const DUO_NO_INTERACTION_REASONS = Object.freeze([
  'bypass_user',
  'remembered_device',
  'trusted_network',
  'trusted_location',
  'allow_unenrolled_user',
  'allow_unenrolled_user_on_trusted_network',
  'allowed_by_policy',
] as const);
export type DuoNoInteractionReason = (typeof DUO_NO_INTERACTION_REASONS)[number];

/**
 * `auth_context.reason` values of a denied, failed or fraud-flagged attempt
 * (Admin API log documentation: Get-DuoAuthLog.md, rapid7 constants.py and
 * panther authentication.go above; `user_mistake`, `denied_network` and
 * `touchid_disabled` only in the latter). A verified id_token should never
 * carry one; if it does, the check refuses it as "not confirmed".
 */
export const DUO_DENIAL_REASONS = Object.freeze([
  'user_marked_fraud', 'deny_unenrolled_user', 'error', 'locked_out', 'user_disabled', 'user_cancelled',
  'invalid_passcode', 'no_response', 'no_keys_pressed', 'call_timed_out', 'location_restricted',
  'factor_restricted', 'platform_restricted', 'version_restricted', 'rooted_device', 'no_screen_lock',
  'touch_id_disabled', 'touchid_disabled', 'no_disk_encryption', 'anonymous_ip', 'out_of_date',
  'denied_by_policy', 'denied_network', 'software_restricted', 'no_duo_certificate_present',
  'user_provided_invalid_certificate', 'could_not_determine_if_endpoint_was_trusted',
  'invalid_management_certificate_collection_state', 'no_referring_hostname_provided',
  'invalid_referring_hostname_provided', 'no_web_referer_match', 'endpoint_failed_google_verification',
  'endpoint_is_not_trusted', 'invalid_device', 'anomalous_push', 'endpoint_is_not_in_management_system',
  'no_activated_duo_mobile_account', 'user_mistake', 'user_not_in_permitted_group',
] as const);

/**
 * `auth_context.result` values (Get-DuoAuthLog.md and rapid7 constants.py above; the id_token's
 * `success` in duo_universal_csharp's TestBase.cs). Only `success` passes.
 * Older Duo documentation spelled them in capitals (`SUCCESS`, `FAILURE`,
 * `ERROR`, `FRAUD`, panther authentication.go); those never match.
 */
export const DUO_RESULTS = Object.freeze(['success', 'denied', 'fraud'] as const);

/** A route's factor rule, as an application writes it. */
export interface FactorRule {
  /** Only these factors count (one of them, used interactively). Implies `requireInteraction`. */
  factors?: readonly DuoFactor[];
  /** Refuse a login Duo let through without asking the user (bypass, remembered device, trusted network, unenrolled user allowed by policy). */
  requireInteraction?: boolean;
}

/** A checked factor rule; `undefined` from the resolver means the route has none. */
export interface ResolvedFactorRule {
  /** The accepted factors, without repeats, in the order written; absent: any factor used interactively. */
  readonly factors?: readonly DuoFactor[];
  /** Always true for a rule: every rule needs a login Duo asked for. */
  readonly requireInteraction: true;
  /**
   * Send Duo `prompt=login` when starting this route's login: Duo would
   * otherwise pass a remembered device without asking, and the rule would
   * refuse it again and again.
   */
  readonly promptLogin: true;
  /** Duo's raw values the rule accepts (from `factors`); absent: any known interactive factor. */
  readonly rawFactors?: ReadonlySet<string>;
}

/** Which rule refused, in words the user can act on, and what Duo reported (printable, for the event and the log). */
export type FactorRuleOutcome =
  | { ok: true }
  | { ok: false; rule: 'factors' | 'interaction'; message: string; observed: ObservedFactor };

/** Duo's reported values, made printable and short; a value that was missing or not a string is absent. */
export interface ObservedFactor {
  factor?: string;
  reason?: string;
  result?: string;
}

/** What the check reads: the id_token claims, or anything carrying an `auth_context` of the same shape. */
export interface FactorClaims {
  auth_context?: unknown;
}

/** The three values the check reads, each kept only when it is a string. */
export interface FactorEvidence {
  factor?: string;
  reason?: string;
  result?: string;
}

const NAMES: ReadonlySet<string> = new Set(DUO_FACTOR_NAMES);
/** Raw value -> factor name. */
const RAW_TO_NAME: ReadonlyMap<string, DuoFactor> = new Map(DUO_FACTOR_NAMES.flatMap((name) => DUO_FACTORS[name].raw.map((raw) => [raw, name] as const)));
const INTERACTIVE: ReadonlySet<string> = new Set(DUO_INTERACTIVE_REASONS);

/** Why Duo did not ask, and what the user can do about it. */
interface NoInteraction {
  why: string;
  /** A step before signing in again, when signing in again alone cannot help. */
  first?: string;
  /** Where to turn when Duo skips the check again. */
  after?: string;
}

const ASK_ADMIN = 'If Duo lets you in without asking again, ask your administrator.';
const STILL = 'If this keeps happening, ask your administrator.';
const ENROLL = 'Enroll a device with Duo (your help desk can tell you how)';
const TRUSTED_NETWORK: NoInteraction = { why: 'Duo let you in without asking because you are on a network it trusts.', after: ASK_ADMIN };
const REMEMBERED: NoInteraction = { why: 'Duo let you in without asking because it remembers this device.' };

/** The reasons of `DUO_NO_INTERACTION_REASONS`, in words. */
const NO_INTERACTION_REASON: ReadonlyMap<string, NoInteraction> = new Map<DuoNoInteractionReason, NoInteraction>([
  // Duo describes bypass_user as "a bypass code was used"; Duo's bypass status logs it too, and the two cannot be told apart.
  [
    'bypass_user',
    {
      why: 'Duo let you in through a bypass (your Duo account is set to bypass, or you used a bypass code), not a check of one of your devices.',
      first: 'If your account is set to bypass, ask your help desk to turn that off',
    },
  ],
  ['remembered_device', REMEMBERED],
  ['trusted_network', TRUSTED_NETWORK],
  ['trusted_location', { why: 'Duo let you in without asking because your location is one it trusts.', after: ASK_ADMIN }],
  ['allow_unenrolled_user', { why: 'Duo let you in without a check because you have not enrolled a device with Duo.', first: ENROLL }],
  ['allow_unenrolled_user_on_trusted_network', { why: 'Duo let you in without a check because you have not enrolled a device with Duo and are on a network it trusts.', first: ENROLL }],
  ['allowed_by_policy', { why: 'Duo let you in without asking because its policy allowed it.', after: ASK_ADMIN }],
]);

/** The factor values of `DUO_NO_FACTOR_VALUES`, in words. */
const NO_FACTOR_CAUSE: ReadonlyMap<string, NoInteraction> = new Map<(typeof DUO_NO_FACTOR_VALUES)[number], NoInteraction>([
  ['remembered_device', REMEMBERED],
  ['trusted_network', TRUSTED_NETWORK],
  ['trusted_mobile_authenticator', { why: 'Duo let you in through Duo Mobile on this device without a separate check.', after: ASK_ADMIN }],
  ['not_available', { why: 'Duo let you in without asking you for any method.', after: ASK_ADMIN }],
  ['sms_refresh', { why: 'Duo recorded a request for new text-message passcodes, not a sign-in.' }],
]);

/**
 * Checks a route's factor rule at startup. `where` names the place for the
 * error, e.g. `@RequireSecondFactor() on AdminController.remove`. Returns
 * `undefined` when the route has no rule (neither `factors` nor
 * `requireInteraction: true`).
 */
export function resolveFactorRule(rule: FactorRule | undefined, where = '@RequireSecondFactor()'): ResolvedFactorRule | undefined {
  if (rule === undefined) return undefined;
  if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) {
    throw new DuoConfigError(`${where}: the factor rule must be an object like { factors: ['webauthn'] } or { requireInteraction: true }.`);
  }
  if ('factor' in rule && !('factors' in rule)) {
    throw new DuoConfigError(`${where}: unknown option "factor"; the option is "factors" (a list), e.g. { factors: ['webauthn'] }.`);
  }
  const { factors, requireInteraction } = rule;
  if (requireInteraction !== undefined && typeof requireInteraction !== 'boolean') {
    throw new DuoConfigError(`${where}: option "requireInteraction" must be true or false.`);
  }
  if (factors === undefined) {
    return requireInteraction === true ? Object.freeze({ requireInteraction: true, promptLogin: true }) : undefined;
  }
  if (requireInteraction === false) {
    throw new DuoConfigError(
      `${where}: "factors" counts only a factor the user used at Duo, so it cannot go with requireInteraction: false. Drop requireInteraction, or drop factors.`,
    );
  }
  if (!Array.isArray(factors) || factors.length === 0) {
    throw new DuoConfigError(`${where}: option "factors" must be a non-empty list of factor names: ${DUO_FACTOR_NAMES.join(', ')}.`);
  }
  const names: DuoFactor[] = [];
  for (const item of factors as readonly unknown[]) {
    if (typeof item !== 'string' || !NAMES.has(item)) {
      throw new DuoConfigError(`${where}: option "factors" has ${describeBadName(item)}. Use these names: ${DUO_FACTOR_NAMES.join(', ')}.`);
    }
    if (!names.includes(item as DuoFactor)) names.push(item as DuoFactor);
  }
  return Object.freeze({
    factors: Object.freeze(names),
    requireInteraction: true,
    promptLogin: true,
    rawFactors: new Set(names.flatMap((name) => DUO_FACTORS[name].raw)),
  });
}

function describeBadName(item: unknown): string {
  if (typeof item !== 'string') return `a ${item === null ? 'null' : typeof item} where a factor name belongs`;
  const shown = JSON.stringify(printable(item, 40));
  const name = RAW_TO_NAME.get(item);
  if (name !== undefined) return `${shown}, which is Duo's raw value for the factor "${name}": write "${name}"`;
  if (NO_FACTOR_CAUSE.has(item)) return `${shown}, which is not a factor (Duo reports it when it did not ask the user); use requireInteraction to refuse it`;
  return `${shown}, which is not a factor name`;
}

/** The three values the check reads, from id_token claims; anything not a string is left out. */
export function factorEvidence(claims: FactorClaims): FactorEvidence {
  const context = claims.auth_context;
  if (typeof context !== 'object' || context === null) return {};
  const { factor, reason, result } = context as Record<string, unknown>;
  return {
    ...(typeof factor === 'string' ? { factor } : {}),
    ...(typeof reason === 'string' ? { reason } : {}),
    ...(typeof result === 'string' ? { result } : {}),
  };
}

/** Checks Duo's id_token claims against a route's resolved rule. */
export function checkFactorRule(claims: FactorClaims, rule: ResolvedFactorRule): FactorRuleOutcome {
  return checkFactorEvidence(factorEvidence(claims), rule);
}

/**
 * Checks what Duo reported against a route's resolved rule (the same check as
 * `checkFactorRule`, for evidence kept in a session). The login passes when
 * Duo's `result` is `success`, its `reason` says the user did something
 * (`user_approved`, `valid_passcode`), and its `factor` is a known factor (one
 * of the rule's, when it names factors). Anything else is refused.
 */
export function checkFactorEvidence(evidence: FactorEvidence, rule: ResolvedFactorRule): FactorRuleOutcome {
  const { factor, reason, result } = evidence;
  const need = rule.factors === undefined ? undefined : needed(rule.factors);
  const refuse = (kind: 'factors' | 'interaction', message: string): FactorRuleOutcome => ({ ok: false, rule: kind, message, observed: observed(evidence) });
  const lead = need === undefined ? 'This page needs you to complete a Duo check.' : `This page needs ${need}.`;
  const again = need === undefined ? 'sign in again and complete the Duo prompt' : `sign in again with ${need}`;

  const skipped = (cause: NoInteraction): FactorRuleOutcome =>
    refuse('interaction', [lead, cause.why, cause.first === undefined ? `${capital(again)}.` : `${cause.first}, then ${again}.`, cause.after].filter(Boolean).join(' '));

  if (result !== 'success') {
    return refuse('interaction', `${lead} Duo did not report this sign-in as successful. ${capital(again)}.`);
  }
  if (reason === undefined || !INTERACTIVE.has(reason)) {
    const cause = reason === undefined ? undefined : NO_INTERACTION_REASON.get(reason);
    if (cause !== undefined) return skipped(cause);
    return refuse('interaction', `${lead} Duo did not confirm that you completed a check. ${capital(again)}.`);
  }
  const factorRule = rule.factors === undefined ? 'interaction' : 'factors';
  if (factor === undefined) {
    return refuse(factorRule, `${lead} Duo did not say which method you used, so this page cannot accept it. ${capital(again)}.`);
  }
  const noFactor = NO_FACTOR_CAUSE.get(factor);
  if (noFactor !== undefined) return skipped(noFactor);
  const used = RAW_TO_NAME.get(factor);
  if (used === undefined) {
    const unnamed = DUO_UNNAMED_FACTOR_VALUES.get(factor);
    if (unnamed === undefined) {
      return refuse(factorRule, `${lead} Duo reported a sign-in method this page does not recognise, so it cannot accept it. ${capital(again)}. ${STILL}`);
    }
    return rule.rawFactors === undefined ? { ok: true } : refuse('factors', `${lead} You used ${unnamed}. ${capital(again)}.`);
  }
  if (rule.rawFactors !== undefined && !rule.rawFactors.has(factor)) {
    return refuse('factors', `${lead} You used ${DUO_FACTORS[used].label}. ${capital(again)}.`);
  }
  return { ok: true };
}

function needed(factors: readonly DuoFactor[]): string {
  const labels = factors.map((name) => DUO_FACTORS[name].label);
  if (labels.length === 1) return labels[0]!;
  return `${labels.slice(0, -1).join(', ')} or ${labels[labels.length - 1]!}`;
}

function capital(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function observed(evidence: FactorEvidence): ObservedFactor {
  return {
    ...(evidence.factor === undefined ? {} : { factor: printable(evidence.factor, 64) }),
    ...(evidence.reason === undefined ? {} : { reason: printable(evidence.reason, 64) }),
    ...(evidence.result === undefined ? {} : { result: printable(evidence.result, 64) }),
  };
}

/**
 * A resolved rule in the few characters a pending login keeps of it (in the
 * session or in Redis): the factor names joined by commas, or `*` for a rule
 * without `factors` (any factor, used interactively).
 */
export function encodeFactorRule(rule: ResolvedFactorRule): string {
  return rule.factors === undefined ? '*' : rule.factors.join(',');
}

/**
 * A pending login's rule back from `encodeFactorRule`'s text. Stored data is
 * not trusted: anything that is not such a text gives `undefined`, and the
 * callback refuses the login (a rule that cannot be read is not met).
 */
export function decodeFactorRule(text: unknown): ResolvedFactorRule | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 200) return undefined;
  try {
    return resolveFactorRule(text === '*' ? { requireInteraction: true } : { factors: text.split(',') as DuoFactor[] });
  } catch {
    return undefined;
  }
}

/** Resolved rules per options object, so that the guard resolves each route's rule once (the decorator does it at import time). */
const RESOLVED = new WeakMap<object, ResolvedFactorRule | null>();

/**
 * The factor rule of `@RequireSecondFactor()`'s options (`factors`,
 * `requireInteraction`), checked once per options object; `undefined` when
 * the options set none. A mistake is a DuoConfigError naming `where`.
 */
export function factorRuleOf(options: { factors?: readonly DuoFactor[]; requireInteraction?: boolean }, where?: string): ResolvedFactorRule | undefined {
  const cached = RESOLVED.get(options);
  if (cached !== undefined) return cached ?? undefined;
  const given = 'factors' in options || 'requireInteraction' in options || 'factor' in options;
  const rule = given
    ? resolveFactorRule(
        {
          ...('factors' in options ? { factors: options.factors } : {}),
          ...('requireInteraction' in options ? { requireInteraction: options.requireInteraction } : {}),
          ...('factor' in options ? { factor: (options as { factor?: unknown }).factor } : {}),
        } as FactorRule,
        where,
      )
    : undefined;
  RESOLVED.set(options, rule ?? null);
  return rule;
}
