import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DUO_PROTOCOL_ERROR_CODES, DuoConfigError, DuoError, isDuoError } from '../../src/protocol/index.js';
import { DUO_ERROR_STATUS, statusOf, type DuoErrorCode } from '../../src/duo.errors.js';
import { upstreamText } from '../../src/protocol/errors.js';

describe('DuoError', () => {
  it('the Nest layer maps the protocol codes to their HTTP statuses (the protocol layer knows none)', () => {
    const expected: Partial<Record<DuoErrorCode, number>> = {
      config_invalid: 500,
      input_invalid: 400,
      duo_unavailable: 503,
      duo_overloaded: 503,
      duo_timeout: 504,
      duo_tls_failed: 502,
      duo_upstream_invalid: 502,
      duo_invalid_client: 502,
      duo_request_rejected: 502,
      code_invalid: 401,
      token_invalid: 502,
      username_mismatch: 401,
      nonce_mismatch: 401,
      second_factor_denied: 401,
      state_invalid: 400,
    };
    for (const [code, status] of Object.entries(expected)) {
      expect(DUO_ERROR_STATUS[code as DuoErrorCode], code).toBe(status);
    }
    // Every protocol code has a status; the Nest layer's own codes are not the protocol's.
    for (const code of DUO_PROTOCOL_ERROR_CODES) expect(statusOf(code), code).toBe(DUO_ERROR_STATUS[code]);
    expect(DUO_PROTOCOL_ERROR_CODES).not.toContain('state_unknown');
    expect(DUO_PROTOCOL_ERROR_CODES).not.toContain('session_unavailable');
    expect(statusOf('some_store_error')).toBe(500);
  });

  it('every code gives an Error with code and message (its status is the Nest layer\'s)', () => {
    for (const code of Object.keys(DUO_ERROR_STATUS) as DuoErrorCode[]) {
      const error = new DuoError<DuoErrorCode>(code, `something about ${code}`);
      expect(error).toBeInstanceOf(Error);
      expect(error).toBeInstanceOf(DuoError);
      expect(isDuoError(error)).toBe(true);
      expect(error.code).toBe(code);
      expect(statusOf(error.code)).toBe(DUO_ERROR_STATUS[code]);
      expect(error).not.toHaveProperty('status');
      expect(error.message).toBe(`something about ${code}`);
      expect(error.name).toBe('DuoError');
      expect(typeof error.stack).toBe('string');
    }
  });

  it('serializes to exactly name, code and message, plus the failed check when there is one', () => {
    const error = new DuoError('token_invalid', 'bad token');
    expect(JSON.parse(JSON.stringify(error))).toEqual({ name: 'DuoError', code: 'token_invalid', message: 'bad token' });
    const detailed = new DuoError('token_invalid', 'bad issuer', { check: 'iss' });
    expect(JSON.parse(JSON.stringify(detailed))).toEqual({ name: 'DuoError', code: 'token_invalid', message: 'bad issuer', check: 'iss' });
    expect(detailed.check).toBe('iss');
  });

  it('inspects to one line with the code, never hidden fields or a cause', () => {
    const error = new DuoError('duo_timeout', 'too slow');
    (error as unknown as { cause: unknown }).cause = { hidden: 'HIDDEN-CAUSE-VALUE' };
    (error as unknown as { extra: unknown }).extra = 'HIDDEN-EXTRA-VALUE';
    const text = inspect(error, { showHidden: true, depth: 10 });
    expect(text).toBe('DuoError [duo_timeout]: too slow');
    expect(text).not.toContain('HIDDEN');
    expect(JSON.stringify(error)).not.toContain('HIDDEN');
    expect(inspect({ wrapped: error })).toContain('DuoError [duo_timeout]: too slow');
  });

  it('DuoConfigError is a DuoError with code config_invalid (500 in the Nest layer)', () => {
    const error = new DuoConfigError('Duo option "x" is wrong.');
    expect(error).toBeInstanceOf(DuoError);
    expect(isDuoError(error)).toBe(true);
    expect(error.name).toBe('DuoConfigError');
    expect(error.code).toBe('config_invalid');
    expect(statusOf(error.code)).toBe(500);
    expect(JSON.parse(JSON.stringify(error))).toMatchObject({ name: 'DuoConfigError', code: 'config_invalid' });
    expect(inspect(error)).toBe('DuoConfigError [config_invalid]: Duo option "x" is wrong.');
  });

  it('isDuoError refuses look-alikes', () => {
    expect(isDuoError(new Error('x'))).toBe(false);
    expect(isDuoError({ name: 'DuoError', code: 'token_invalid', status: 502, message: 'x' })).toBe(false);
    expect(isDuoError(undefined)).toBe(false);
    expect(isDuoError(null)).toBe(false);
  });
});

describe('upstreamText (how text from Duo may appear in our messages)', () => {
  it('cuts long text short', () => {
    const text = upstreamText('x'.repeat(10_000));
    expect(text).toBe(`${'x'.repeat(120)}...`);
    expect(upstreamText('y'.repeat(100), 40)).toBe(`${'y'.repeat(40)}...`);
    expect(upstreamText('short')).toBe('short');
  });

  it('replaces control and non-ASCII characters', () => {
    const text = upstreamText('line1\r\nline2\u001b[31mred\u0000\u2028end\u00e9');
    expect(text).toBe('line1??line2?[31mred??end?');
    expect(text).not.toMatch(/[\u0000-\u001f\u007f-\uffff]/);
  });

  it('keeps numbers, refuses anything else', () => {
    expect(upstreamText(40002)).toBe('40002');
    expect(upstreamText(undefined)).toBeUndefined();
    expect(upstreamText(null)).toBeUndefined();
    expect(upstreamText({ toString: () => 'x' })).toBeUndefined();
    expect(upstreamText(['a'])).toBeUndefined();
  });
});
