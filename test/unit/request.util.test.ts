import { describe, expect, it } from 'vitest';
import { safeReturnTo, wantsJson } from '../../src/request.util.js';

describe('safeReturnTo', () => {
  it.each([
    ['/account', '/account'],
    ['/account?tab=1#top', '/account?tab=1#top'],
    ['/a/../b', '/b'],
  ])('keeps the local path %s', (input, expected) => {
    expect(safeReturnTo(input)).toBe(expected);
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
    expect(safeReturnTo(input)).toBe('/');
  });

  it('is idempotent: its output passes through unchanged', () => {
    for (const input of ['/x/../y', '/%2e%2e/z', '/a//b', '/..//evil.example']) {
      const once = safeReturnTo(input);
      expect(safeReturnTo(once)).toBe(once);
      expect(once.startsWith('//')).toBe(false);
    }
  });

  it('refuses non-strings', () => {
    expect(safeReturnTo(['/a'])).toBe('/');
    expect(safeReturnTo(undefined, '/home')).toBe('/home');
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
