import { describe, expect, it } from 'vitest';
import { DuoClient, generateNonce, generateState } from '../../src/protocol/index.js';
import { randomToken } from '../../src/protocol/random.js';
import { validOptions } from './helpers.js';

const BASE64URL_43 = /^[A-Za-z0-9_-]{43}$/;

describe.each([
  ['generateState', generateState],
  ['generateNonce', generateNonce],
])('%s', (_name, generate) => {
  it('is at least 128 bits: 43 base64url characters that decode to 32 bytes', () => {
    const value = generate();
    expect(value).toMatch(BASE64URL_43);
    const bytes = Buffer.from(value, 'base64url');
    expect(bytes.length).toBeGreaterThanOrEqual(16);
    expect(bytes.length).toBe(32);
    // Round-trips: no padding, no characters outside base64url.
    expect(bytes.toString('base64url')).toBe(value);
  });

  it('uses a URL-safe alphabet only (never "+", "/", "=" or white space) and survives URL encoding unchanged', () => {
    for (let i = 0; i < 2000; i++) {
      const value = generate();
      expect(value).toMatch(BASE64URL_43);
      expect(encodeURIComponent(value)).toBe(value);
      expect(new URLSearchParams(`state=${value}`).get('state')).toBe(value);
    }
  });

  it('is unique over many calls and uses the whole alphabet (not hex, not a counter)', () => {
    const seen = new Set<string>();
    const characters = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const value = generate();
      seen.add(value);
      for (const c of value) characters.add(c);
    }
    expect(seen.size).toBe(20_000);
    expect(characters.size).toBe(64);
  });
});

describe('DuoClient random helpers', () => {
  it('client.generateState() and generateNonce() are fresh 43-character base64url values', async () => {
    const client = new DuoClient(validOptions());
    try {
      const values = new Set<string>();
      for (let i = 0; i < 100; i++) {
        const state = client.generateState();
        const nonce = generateNonce();
        expect(state).toMatch(BASE64URL_43);
        expect(nonce).toMatch(BASE64URL_43);
        values.add(state).add(nonce);
      }
      expect(values.size).toBe(200);
    } finally {
      await client.close();
    }
  });
});

describe('randomToken (a pool the CSPRNG fills, each byte handed out once)', () => {
  it('never hands out the same bytes twice, across refills of the pool and with sizes that do not divide it', () => {
    const sizes = [32, 32, 27, 27, 18, 300, 1, 256, 257];
    const prefixes = new Set<string>();
    let count = 0;
    for (let i = 0; i < 20_000; i++) {
      const bytes = sizes[i % sizes.length]!;
      const token = randomToken(bytes);
      const decoded = Buffer.from(token, 'base64url');
      expect(decoded.length).toBe(bytes);
      // 8-byte prefixes of independent random values do not collide in 20,000 draws (p < 1e-10); a reused offset would.
      if (bytes >= 8) {
        prefixes.add(decoded.subarray(0, 8).toString('hex'));
        count++;
      }
    }
    expect(prefixes.size).toBe(count);
  });

  it('refuses a size that is not a positive whole number', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => randomToken(bad)).toThrow(RangeError);
  });
});
