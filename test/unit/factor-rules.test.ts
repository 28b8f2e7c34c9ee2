import { describe, expect, it } from 'vitest';
import { DuoConfigError, isDuoError } from '../../src/protocol/index.js';
import type { DuoIdTokenClaims } from '../../src/protocol/index.js';
import {
  DUO_DENIAL_REASONS,
  DUO_FACTORS,
  DUO_FACTOR_NAMES,
  DUO_INTERACTIVE_REASONS,
  DUO_NO_FACTOR_VALUES,
  DUO_NO_INTERACTION_REASONS,
  DUO_RESULTS,
  DUO_UNNAMED_FACTOR_VALUES,
  checkFactorEvidence,
  checkFactorRule,
  decodeFactorRule,
  encodeFactorRule,
  factorEvidence,
  factorRuleOf,
  resolveFactorRule,
  type DuoFactor,
  type FactorRule,
  type ResolvedFactorRule,
} from '../../src/factor-rules.js';

/** Claims as Duo sends them, with the three values the check reads. */
function claims(context: Record<string, unknown> | undefined): DuoIdTokenClaims {
  return {
    iss: 'https://api-12345678.duosecurity.com/oauth/v1/token',
    aud: 'DIXXXXXXXXXXXXXXXXXX',
    sub: 'alice',
    exp: 2_000_000_000,
    iat: 1_999_999_000,
    preferred_username: 'alice',
    auth_result: { result: 'allow', status: 'allow', status_msg: 'Login Successful' },
    ...(context === undefined ? {} : { auth_context: { txid: 'tx-1', event_type: 'authentication', ...context } }),
  };
}

const passed = (factor: string, reason = 'user_approved') => claims({ factor, reason, result: 'success' });
const rule = (input: FactorRule): ResolvedFactorRule => {
  const resolved = resolveFactorRule(input, '@RequireSecondFactor() on AdminController.remove');
  if (resolved === undefined) throw new Error('expected a rule');
  return resolved;
};
const interaction = rule({ requireInteraction: true });

function refusal(outcome: ReturnType<typeof checkFactorRule>) {
  if (outcome.ok) throw new Error('expected a refusal');
  return outcome;
}

function configError(run: () => unknown): DuoConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DuoConfigError);
    expect(isDuoError(error) && error.code).toBe('config_invalid');
    return error as DuoConfigError;
  }
  throw new Error('expected a DuoConfigError');
}

describe('the vocabulary', () => {
  it('maps each raw Duo value to one factor name only', () => {
    const seen = new Map<string, DuoFactor>();
    for (const name of DUO_FACTOR_NAMES) {
      expect(DUO_FACTORS[name].raw.length).toBeGreaterThan(0);
      for (const raw of DUO_FACTORS[name].raw) {
        expect(seen.get(raw), `${raw} is under ${seen.get(raw)} and ${name}`).toBeUndefined();
        seen.set(raw, name);
      }
    }
  });

  it('keeps the values that mean "not asked", and the unnamed passcode, out of every factor', () => {
    const raw = new Set(DUO_FACTOR_NAMES.flatMap((name) => DUO_FACTORS[name].raw));
    for (const value of DUO_NO_FACTOR_VALUES) expect(raw.has(value), value).toBe(false);
    for (const value of DUO_UNNAMED_FACTOR_VALUES.keys()) {
      expect(raw.has(value), value).toBe(false);
      expect((DUO_NO_FACTOR_VALUES as readonly string[]).includes(value), value).toBe(false);
    }
  });

  it('keeps the three kinds of reason apart', () => {
    const kinds = [DUO_INTERACTIVE_REASONS, DUO_NO_INTERACTION_REASONS, DUO_DENIAL_REASONS] as const;
    const all = kinds.flatMap((list) => [...list]);
    expect(new Set(all).size).toBe(all.length);
  });
});

describe('resolveFactorRule', () => {
  it('has no rule when none is asked for', () => {
    expect(resolveFactorRule(undefined)).toBeUndefined();
    expect(resolveFactorRule({})).toBeUndefined();
    expect(resolveFactorRule({ requireInteraction: false })).toBeUndefined();
  });

  it('resolves requireInteraction alone, and always asks Duo for prompt=login', () => {
    expect(interaction).toEqual({ requireInteraction: true, promptLogin: true });
    expect(interaction.factors).toBeUndefined();
    expect(Object.isFrozen(interaction)).toBe(true);
  });

  it('accepts every factor name, keeps the order written and drops repeats', () => {
    for (const name of DUO_FACTOR_NAMES) expect(rule({ factors: [name] }).factors).toEqual([name]);
    const resolved = rule({ factors: ['hardware_token', 'webauthn', 'hardware_token'], requireInteraction: true });
    expect(resolved.factors).toEqual(['hardware_token', 'webauthn']);
    expect(resolved.requireInteraction).toBe(true);
    expect(resolved.promptLogin).toBe(true);
    expect(Object.isFrozen(resolved.factors)).toBe(true);
    expect([...resolved.rawFactors!].sort()).toEqual([...DUO_FACTORS.hardware_token.raw, ...DUO_FACTORS.webauthn.raw].sort());
  });

  it('names an unknown factor, the place, and the valid names', () => {
    const error = configError(() => resolveFactorRule({ factors: ['webauthn', 'yubikey' as DuoFactor] }, '@RequireSecondFactor() on AdminController.remove'));
    expect(error.message).toContain('@RequireSecondFactor() on AdminController.remove');
    expect(error.message).toContain('"yubikey", which is not a factor name');
    expect(error.message).toContain(`Use these names: ${DUO_FACTOR_NAMES.join(', ')}.`);
  });

  it("tells a Duo raw value from a name, and says which name to write", () => {
    expect(configError(() => resolveFactorRule({ factors: ['duo_push' as DuoFactor] })).message).toContain(
      `"duo_push", which is Duo's raw value for the factor "push": write "push"`,
    );
    expect(configError(() => resolveFactorRule({ factors: ['WebAuthn Security Key' as DuoFactor] })).message).toContain('write "webauthn"');
  });

  it('refuses a "not asked" value as a factor and points to requireInteraction', () => {
    for (const value of DUO_NO_FACTOR_VALUES) {
      expect(configError(() => resolveFactorRule({ factors: [value as DuoFactor] })).message).toContain('use requireInteraction to refuse it');
    }
  });

  it('refuses names that are not strings, an empty list and a list that is not one', () => {
    expect(configError(() => resolveFactorRule({ factors: [3 as unknown as DuoFactor] })).message).toContain('a number where a factor name belongs');
    expect(configError(() => resolveFactorRule({ factors: [null as unknown as DuoFactor] })).message).toContain('a null where a factor name belongs');
    expect(configError(() => resolveFactorRule({ factors: [] })).message).toContain('must be a non-empty list of factor names');
    expect(configError(() => resolveFactorRule({ factors: 'webauthn' as unknown as DuoFactor[] })).message).toContain('must be a non-empty list');
  });

  it('refuses a rule that is not an object, "factor" for "factors", and a non-boolean requireInteraction', () => {
    for (const bad of [null, 'webauthn', ['webauthn'], 1]) {
      expect(configError(() => resolveFactorRule(bad as unknown as FactorRule)).message).toContain('the factor rule must be an object');
    }
    expect(configError(() => resolveFactorRule({ factor: ['webauthn'] } as unknown as FactorRule)).message).toContain('the option is "factors"');
    expect(configError(() => resolveFactorRule({ requireInteraction: 'yes' } as unknown as FactorRule)).message).toContain(
      '"requireInteraction" must be true or false',
    );
  });

  it('refuses factors with requireInteraction: false, which it could never honour', () => {
    expect(configError(() => resolveFactorRule({ factors: ['push'], requireInteraction: false })).message).toContain('cannot go with requireInteraction: false');
  });
});

describe('checkFactorRule: factors', () => {
  it('passes every raw value of a factor, with either interactive reason', () => {
    for (const name of DUO_FACTOR_NAMES) {
      for (const raw of DUO_FACTORS[name].raw) {
        for (const reason of DUO_INTERACTIVE_REASONS) {
          expect(checkFactorRule(passed(raw, reason), rule({ factors: [name] })), `${raw} / ${reason}`).toEqual({ ok: true });
        }
      }
    }
  });

  it('refuses every raw value of every other factor, naming what was used and what is needed', () => {
    for (const name of DUO_FACTOR_NAMES) {
      const others = DUO_FACTOR_NAMES.filter((other) => other !== name);
      const needs = rule({ factors: others });
      for (const raw of DUO_FACTORS[name].raw) {
        const outcome = refusal(checkFactorRule(passed(raw), needs));
        expect(outcome.rule).toBe('factors');
        expect(outcome.message).toContain(`You used ${DUO_FACTORS[name].label}.`);
        for (const other of others) expect(outcome.message).toContain(DUO_FACTORS[other].label);
        expect(outcome.observed).toEqual({ factor: raw, reason: 'user_approved', result: 'success' });
      }
    }
  });

  it('says in plain words what to do instead', () => {
    expect(refusal(checkFactorRule(passed('duo_push'), rule({ factors: ['webauthn'] }))).message).toBe(
      'This page needs a security key or passkey (WebAuthn). You used Duo Push. Sign in again with a security key or passkey (WebAuthn).',
    );
    expect(refusal(checkFactorRule(passed('sms_passcode'), rule({ factors: ['webauthn', 'hardware_token', 'push'] }))).message).toBe(
      'This page needs a security key or passkey (WebAuthn), a hardware token or Duo Push. You used a passcode sent by text message (SMS). ' +
        'Sign in again with a security key or passkey (WebAuthn), a hardware token or Duo Push.',
    );
  });

  it("counts Duo's unnamed passcode as an interaction but as none of the named factors", () => {
    expect(checkFactorRule(passed('passcode', 'valid_passcode'), interaction)).toEqual({ ok: true });
    for (const name of DUO_FACTOR_NAMES) {
      const outcome = refusal(checkFactorRule(passed('passcode', 'valid_passcode'), rule({ factors: [name] })));
      expect(outcome.rule).toBe('factors');
      expect(outcome.message).toContain('You used a passcode of a kind Duo did not name.');
    }
  });

  it('refuses a bypass code unless the route lists it', () => {
    expect(refusal(checkFactorRule(passed('bypass_code', 'valid_passcode'), rule({ factors: ['passcode', 'hardware_token'] }))).rule).toBe('factors');
    expect(checkFactorRule(passed('bypass_code', 'valid_passcode'), rule({ factors: ['bypass_code'] }))).toEqual({ ok: true });
    // Duo's reason for a bypass code can be bypass_user, which a user in bypass status gets too: refused even here.
    expect(refusal(checkFactorRule(passed('bypass_code', 'bypass_user'), rule({ factors: ['bypass_code'] }))).rule).toBe('interaction');
  });
});

describe('checkFactorRule: interaction', () => {
  it('passes any known factor the user used', () => {
    for (const name of DUO_FACTOR_NAMES) {
      for (const raw of DUO_FACTORS[name].raw) expect(checkFactorRule(passed(raw), interaction), raw).toEqual({ ok: true });
    }
  });

  it('refuses every reason that means Duo did not ask, under either kind of rule, naming the reason in words', () => {
    const words: Record<(typeof DUO_NO_INTERACTION_REASONS)[number], string> = {
      bypass_user:
        'Duo let you in through a bypass (your Duo account is set to bypass, or you used a bypass code), not a check of one of your devices. ' +
        'If your account is set to bypass, ask your help desk to turn that off, then sign in again',
      remembered_device: 'because it remembers this device.',
      trusted_network: 'because you are on a network it trusts.',
      trusted_location: 'because your location is one it trusts.',
      allow_unenrolled_user: 'you have not enrolled a device with Duo. Enroll a device with Duo (your help desk can tell you how), then sign in again',
      allow_unenrolled_user_on_trusted_network: 'you have not enrolled a device with Duo and are on a network it trusts.',
      allowed_by_policy: 'because its policy allowed it.',
    };
    for (const reason of DUO_NO_INTERACTION_REASONS) {
      // Duo logs the user's usual factor beside such a reason (duo_push with bypass_user): the reason decides.
      for (const rules of [interaction, rule({ factors: ['push'] })]) {
        const outcome = refusal(checkFactorRule(passed('duo_push', reason), rules));
        expect(outcome.rule, reason).toBe('interaction');
        expect(outcome.message, reason).toContain(words[reason]);
      }
    }
    expect(refusal(checkFactorRule(passed('duo_push', 'remembered_device'), interaction)).message).toBe(
      'This page needs you to complete a Duo check. Duo let you in without asking because it remembers this device. Sign in again and complete the Duo prompt.',
    );
    expect(refusal(checkFactorRule(passed('duo_push', 'trusted_network'), rule({ factors: ['webauthn'] }))).message).toBe(
      'This page needs a security key or passkey (WebAuthn). Duo let you in without asking because you are on a network it trusts. ' +
        'Sign in again with a security key or passkey (WebAuthn). If Duo lets you in without asking again, ask your administrator.',
    );
  });

  it('refuses every factor value that means Duo did not ask, even beside an interactive reason', () => {
    const words: Record<(typeof DUO_NO_FACTOR_VALUES)[number], string> = {
      remembered_device: 'Duo let you in without asking because it remembers this device.',
      trusted_network: 'Duo let you in without asking because you are on a network it trusts.',
      trusted_mobile_authenticator: 'Duo let you in through Duo Mobile on this device without a separate check.',
      not_available: 'Duo let you in without asking you for any method.',
      sms_refresh: 'Duo recorded a request for new text-message passcodes, not a sign-in.',
    };
    for (const value of DUO_NO_FACTOR_VALUES) {
      for (const rules of [interaction, rule({ factors: [...DUO_FACTOR_NAMES] })]) {
        const outcome = refusal(checkFactorRule(passed(value), rules));
        expect(outcome.rule, value).toBe('interaction');
        expect(outcome.message, value).toContain(words[value]);
      }
    }
  });

  it('refuses every denial reason as not confirmed', () => {
    for (const reason of DUO_DENIAL_REASONS) {
      const outcome = refusal(checkFactorRule(passed('duo_push', reason), interaction));
      expect(outcome.rule).toBe('interaction');
      expect(outcome.message).toContain('Duo did not confirm that you completed a check.');
    }
  });

  it('passes only the result "success"', () => {
    for (const result of [...DUO_RESULTS.filter((value) => value !== 'success'), 'SUCCESS', 'Success', ' success', 'allow', '']) {
      const outcome = refusal(checkFactorRule(claims({ factor: 'duo_push', reason: 'user_approved', result }), rule({ factors: ['push'] })));
      expect(outcome.rule, result).toBe('interaction');
      expect(outcome.message).toContain('Duo did not report this sign-in as successful.');
    }
  });
});

describe('checkFactorRule: fails closed', () => {
  const webauthn = rule({ factors: ['webauthn'] });

  it('refuses factor values it does not know, spelled close to known ones or like object keys', () => {
    for (const factor of ['webauthn', 'webauthn_credential', 'WebAuthn', 'security_key', 'Duo_Push', 'duo_push ', 'DUO_PUSH', 'webauthn security key', '', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      for (const rules of [interaction, webauthn, rule({ factors: [...DUO_FACTOR_NAMES] })]) {
        const outcome = refusal(checkFactorRule(passed(factor), rules));
        expect(outcome.message, factor).toContain('Duo reported a sign-in method this page does not recognise');
        expect(outcome.rule).toBe(rules === interaction ? 'interaction' : 'factors');
      }
    }
  });

  it('refuses reasons it does not know', () => {
    for (const reason of ['USER_APPROVED', 'user approved', 'approved', 'constructor', '__proto__', 'valueOf']) {
      expect(refusal(checkFactorRule(passed('duo_push', reason), interaction)).message, reason).toContain('Duo did not confirm that you completed a check.');
    }
  });

  it('refuses a token without auth_context, or with one that is not an object', () => {
    for (const context of [undefined, null, 'duo_push', ['duo_push'], 7]) {
      const token = { ...claims(undefined), ...(context === undefined ? {} : { auth_context: context }) } as DuoIdTokenClaims;
      const outcome = refusal(checkFactorRule(token, webauthn));
      expect(outcome.rule).toBe('interaction');
      expect(outcome.observed).toEqual({});
    }
  });

  it('refuses each of the three values missing or not a string', () => {
    const good = { factor: 'u2f_token', reason: 'user_approved', result: 'success' };
    expect(checkFactorRule(claims(good), webauthn)).toEqual({ ok: true });
    for (const key of ['factor', 'reason', 'result'] as const) {
      for (const value of [undefined, null, 1, true, {}, ['u2f_token'], { toString: () => good[key] }]) {
        const context: Record<string, unknown> = { ...good };
        if (value === undefined) delete context[key];
        else context[key] = value;
        const outcome = refusal(checkFactorRule(claims(context), webauthn));
        expect(outcome.observed[key], `${key}=${String(value)}`).toBeUndefined();
      }
    }
    expect(refusal(checkFactorRule(claims({ reason: 'user_approved', result: 'success' }), webauthn)).message).toContain(
      'Duo did not say which method you used',
    );
  });

  it('reads auth_context only, never amr', () => {
    const token = { ...passed('duo_push'), amr: ['mfa', 'hwk', 'pop'] };
    expect(refusal(checkFactorRule(token, webauthn)).message).toContain('You used Duo Push.');
  });
});

describe('what a refusal records', () => {
  it('keeps what Duo reported, printable and short', () => {
    const outcome = refusal(checkFactorRule(claims({ factor: `duo\npush\u0000${'x'.repeat(200)}`, reason: 'bypass_user', result: 'success' }), interaction));
    expect(outcome.observed.reason).toBe('bypass_user');
    expect(outcome.observed.result).toBe('success');
    expect(outcome.observed.factor).toMatch(/^duo\?push\?x+\.\.\.$/);
    expect(outcome.observed.factor!.length).toBe(64 + 3);
  });

  it('never puts what Duo reported into the message the user sees', () => {
    const odd = '<script>alert(1)</script>';
    for (const context of [{ factor: odd, reason: 'user_approved', result: 'success' }, { factor: 'duo_push', reason: odd, result: 'success' }, { factor: 'duo_push', reason: 'user_approved', result: odd }]) {
      expect(refusal(checkFactorRule(claims(context), interaction)).message).not.toContain('script');
    }
  });
});

describe('factorEvidence and checkFactorEvidence', () => {
  it('take the three strings out of the claims and check them the same way', () => {
    const token = passed('phone_call');
    expect(factorEvidence(token)).toEqual({ factor: 'phone_call', reason: 'user_approved', result: 'success' });
    expect(checkFactorEvidence(factorEvidence(token), rule({ factors: ['phone'] }))).toEqual({ ok: true });
    expect(refusal(checkFactorEvidence({ factor: 'phone_call', reason: 'user_approved', result: 'success' }, rule({ factors: ['push'] }))).message).toContain(
      'You used a phone call from Duo.',
    );
    expect(checkFactorEvidence({}, interaction).ok).toBe(false);
  });
});

describe('a pending login\'s compact rule (encodeFactorRule / decodeFactorRule)', () => {
  it('round-trips both kinds of rule in a few characters', () => {
    const factors = resolveFactorRule({ factors: ['webauthn', 'hardware_token'] })!;
    expect(encodeFactorRule(factors)).toBe('webauthn,hardware_token');
    expect(decodeFactorRule('webauthn,hardware_token')).toEqual(factors);
    const interaction = resolveFactorRule({ requireInteraction: true })!;
    expect(encodeFactorRule(interaction)).toBe('*');
    expect(decodeFactorRule('*')).toEqual(interaction);
  });

  it.each([[''], ['duo_push'], ['webauthn,'], ['WEBAUTHN'], ['constructor'], ['*,push'], [undefined], [42], [['webauthn']], ['push,'.repeat(50)]])(
    'stored data it did not write (%j) reads as no rule it can check: undefined, and the callback refuses',
    (text) => {
      expect(decodeFactorRule(text)).toBeUndefined();
    },
  );
});

describe('factorRuleOf (what the decorator and the guard call)', () => {
  it('resolves once per options object, and undefined for options without a rule', () => {
    const options = { factors: ['push'] as DuoFactor[] };
    const rule = factorRuleOf(options, 'here');
    expect(rule?.factors).toEqual(['push']);
    expect(factorRuleOf(options)).toBe(rule);
    expect(factorRuleOf({})).toBeUndefined();
    expect(factorRuleOf({ maxAge: 60 } as object)).toBeUndefined();
    expect(factorRuleOf({ requireInteraction: false })).toBeUndefined();
    expect(factorRuleOf({ requireInteraction: true })).toMatchObject({ requireInteraction: true, promptLogin: true });
  });

  it('names the place it is given in a DuoConfigError', () => {
    expect(() => factorRuleOf({ factors: ['sms_passcode'] as never }, '@RequireSecondFactor() on A.b')).toThrow(
      /^@RequireSecondFactor\(\) on A\.b: option "factors" has "sms_passcode", which is Duo's raw value for the factor "sms": write "sms"/,
    );
    expect(() => factorRuleOf({ factor: 'push' } as never, 'X')).toThrow(DuoConfigError);
  });
});
