import { describe, expect, it } from 'vitest';
import { safeReturnPath, wantsJson } from '../../src/request.util.js';
import { safeReturnPath as exported } from '../../src/index.js';
import { MAX_RETURN_PATH_BYTES } from '../../src/request.util.js';

describe('safeReturnPath', () => {
  it('is the one check the library exports, for the return targets an app accepts (the sample uses it)', () => {
    expect(exported).toBe(safeReturnPath);
    // The sample's own copy had lost the re-check after dot segments: this one keeps it.
    expect(exported('/login?x=1')).toBe('/login?x=1');
    expect(exported('/..//evil.example')).toBe('/');
  });

  it('keeps a return path within 1024 bytes: the query goes first, then the path falls back', () => {
    const longQuery = `/reports?${'q=1&'.repeat(400)}`;
    expect(safeReturnPath(longQuery)).toBe('/reports');
    const longPath = `/${'é'.repeat(600)}`;
    expect(safeReturnPath(longPath)).toBe('/');
    const fits = `/${'a'.repeat(MAX_RETURN_PATH_BYTES - 1)}`;
    expect(safeReturnPath(fits)).toBe(fits);
  });

  it.each([
    ['/account', '/account'],
    ['/account?tab=1#top', '/account?tab=1#top'],
    ['/a/../b', '/b'],
  ])('keeps the local path %s', (input, expected) => {
    expect(safeReturnPath(input)).toBe(expected);
  });

  it.each([
    '//evil.example/x',
    '/\\evil.example',
    'https://evil.example/',
    'javascript:alert(1)',
    'account',
    '',
    '/a\nb',
    '/..//evil.example/x',
    '/%2e//evil.example',
    '/.//evil.example',
    `/${'a'.repeat(2100)}`,
  ])('sends %j to the fallback', (input) => {
    expect(safeReturnPath(input)).toBe('/');
  });

  it('is idempotent: its output passes through unchanged', () => {
    for (const input of ['/x/../y', '/%2e%2e/z', '/a//b', '/..//evil.example']) {
      const once = safeReturnPath(input);
      expect(safeReturnPath(once)).toBe(once);
      expect(once.startsWith('//')).toBe(false);
    }
  });

  it('refuses non-strings', () => {
    expect(safeReturnPath(['/a'])).toBe('/');
    expect(safeReturnPath(undefined, '/home')).toBe('/home');
  });
});

describe('wantsJson', () => {
  it('treats JSON accept (without html) and XHR as API clients', () => {
    expect(wantsJson({ headers: { accept: 'application/json' } })).toBe(true);
    expect(wantsJson({ headers: { 'x-requested-with': 'XMLHttpRequest' } })).toBe(true);
    expect(wantsJson({ headers: { accept: 'text/html,application/json' } })).toBe(false);
    expect(wantsJson({ headers: {} })).toBe(false);
  });
});
