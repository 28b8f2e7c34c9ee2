/**
 * Outbound JWTs are signed with one node:crypto HMAC (src/protocol/jwt.ts), not
 * with jose: this file proves the bytes are jose's, over thousands of generated
 * claim sets (seeded; set JWT_SIGN_SEED to replay one run), and that whatever
 * jose refuses to sign, ours refuses too.
 */
import { CompactSign, SignJWT, jwtVerify, type JWTPayload } from 'jose';
import { describe, expect, it } from 'vitest';
import { DuoClient, expectNoNonce } from 'nestjs-duo/protocol';
import { DUO_JWT_ALG, HsKey, signJwt, signJwtSync } from '../../src/protocol/jwt.js';
import { CLIENT_ID, CLIENT_SECRET, SECRET_BYTES, nowSeconds, validOptions } from './helpers.js';

const SEED = Number(process.env.JWT_SIGN_SEED ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;
const key = new HsKey(CLIENT_SECRET);
const encoder = new TextEncoder();

/** mulberry32: a small seeded generator, so a failing case can be replayed from its seed. */
function generator(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = generator(seed);
  }
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One UTF-16 unit or pair from a mix that stresses JSON escaping and UTF-8 encoding. */
  char(): string {
    switch (this.int(10)) {
      case 0:
        return String.fromCharCode(this.int(0x20)); // control characters, \u0000 included
      case 1:
        return this.pick(['"', '\\', '/', '\b', '\f', '\n', '\r', '\t', '\u007f', '\u2028', '\u2029', '\ufeff', '\uffff', '<', '>', '&', "'", '=', '+']);
      case 2:
        return String.fromCharCode(0xd800 + this.int(0x400)); // a lone high surrogate
      case 3:
        return String.fromCharCode(0xdc00 + this.int(0x400)); // a lone low surrogate
      case 4:
        return String.fromCodePoint(0x10000 + this.int(0x100000)); // astral: a surrogate pair
      case 5:
        return String.fromCharCode(0x80 + this.int(0x780)); // two UTF-8 bytes
      case 6:
        return String.fromCharCode(0x800 + this.int(0xd000 - 0x800)); // three UTF-8 bytes (CJK and others)
      case 7:
        return this.pick(['é', 'ß', 'Ω', 'Ж', '中', '😀', '👩‍💻', 'ﬁ', 'İ', 'e\u0301']);
      default:
        return String.fromCharCode(0x20 + this.int(0x5f)); // printable ASCII
    }
  }
  string(maxLength = 24): string {
    let text = '';
    const length = this.int(maxLength + 1);
    for (let i = 0; i < length; i++) text += this.char();
    return text;
  }
  number(): number {
    switch (this.int(9)) {
      case 0:
        return this.int(100);
      case 1:
        return -this.int(1e9);
      case 2:
        return this.pick([0, -0, 1, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53 + 2, 2 ** 64, 1e21, -1e21, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON]);
      case 3:
        return (this.next() - 0.5) * 10 ** this.int(30); // floats of every size
      case 4:
        return this.next() * 10 ** -this.int(30); // tiny floats (exponent notation)
      case 5:
        return 0.1 + 0.2;
      case 6:
        return Math.floor(Date.now() / 1000) + this.int(1000) - 500; // time-like
      default:
        return (this.next() - 0.5) * 2 ** this.int(80);
    }
  }
  key(): string {
    switch (this.int(6)) {
      case 0:
        return String(this.int(20)); // integer-like: JSON.stringify puts these first, as object order does
      case 1:
        return this.pick(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '', 'toJSON ', 'alg', 'typ']);
      default:
        return this.string(12);
    }
  }
  value(depth: number): unknown {
    const kind = this.int(depth > 3 ? 6 : 9);
    switch (kind) {
      case 0:
      case 1:
        return this.string();
      case 2:
      case 3:
        return this.number();
      case 4:
        return this.pick([true, false, null]);
      case 5:
        return undefined;
      case 6:
      case 7:
        return this.object(depth + 1, 6);
      default: {
        const length = this.int(6);
        const array: unknown[] = [];
        for (let i = 0; i < length; i++) array.push(this.value(depth + 1));
        if (this.chance(0.1)) array.length += 2; // holes: JSON.stringify writes null, as for undefined
        return array;
      }
    }
  }
  object(depth: number, maxKeys: number): Record<string, unknown> {
    const object: Record<string, unknown> = this.chance(0.05) ? (Object.create(null) as Record<string, unknown>) : {};
    const count = this.int(maxKeys + 1);
    for (let i = 0; i < count; i++) {
      // defineProperty: an own "__proto__" key is data, as JSON.parse makes it, not the prototype.
      Object.defineProperty(object, this.key(), { value: this.value(depth), enumerable: true, writable: true, configurable: true });
    }
    return object;
  }

  /** Claims as createAuthUrl() builds them, with generated values. */
  requestJwtClaims(): JWTPayload {
    const now = nowSeconds();
    const claims: JWTPayload = {
      response_type: 'code',
      scope: 'openid',
      client_id: CLIENT_ID,
      redirect_uri: this.pick(['https://app.example.com/duo/callback', `https://${this.string(10)}.example/cb?x=${this.string(6)}`]),
      state: this.string(64),
      duo_uname: this.string(40),
      use_duo_code_attribute: true,
      iss: CLIENT_ID,
      aud: 'https://api-1234abcd.duosecurity.com',
      iat: now,
      exp: now + 300,
    };
    if (this.chance(0.7)) claims.nonce = this.string(64);
    if (this.chance(0.3)) claims.dest_app_name = this.string(30);
    if (this.chance(0.3)) claims.display_username = this.string(30);
    if (this.chance(0.3)) claims.max_age = this.int(86400);
    if (this.chance(0.3)) claims.prompt = 'login';
    return claims;
  }
  /** Claims as the client assertion has them. */
  clientAssertionClaims(): JWTPayload {
    const now = nowSeconds();
    const aud = `https://api-1234abcd.duosecurity.com/oauth/v1/${this.pick(['token', 'health_check'])}`;
    return { iss: CLIENT_ID, sub: CLIENT_ID, aud, jti: this.string(36), iat: now, exp: now + 300 };
  }
  /** A claim set of any JSON shape, with time claims a verifier accepts. */
  anyClaims(): JWTPayload {
    const claims = this.object(0, 10) as JWTPayload;
    const now = nowSeconds();
    // Valid when present: jwtVerify checks them (and refuses a non-numeric one).
    for (const name of ['iat', 'nbf', 'exp'] as const) delete claims[name];
    if (this.chance(0.3)) claims.iat = now;
    if (this.chance(0.3)) claims.exp = now + 300;
    if (this.chance(0.1)) claims.nbf = now - 10;
    if (this.chance(0.2)) claims.aud = this.chance(0.5) ? this.string() : [this.string(), this.string()];
    return claims;
  }
  typ(): string | undefined {
    return this.pick([undefined, undefined, 'JWT', 'JWT', '', 'jwt', 'at+jwt', this.string(10)]);
  }
}

const headerFor = (typ: string | undefined): { alg: string; typ?: string } => (typ ? { alg: DUO_JWT_ALG, typ } : { alg: DUO_JWT_ALG });

/** jose's two ways to the same token: SignJWT over the claims object, CompactSign over its JSON bytes. */
async function joseTokens(claims: JWTPayload, typ: string | undefined): Promise<[string, string]> {
  const header = headerFor(typ);
  const viaSignJwt = await new SignJWT(claims).setProtectedHeader(header).sign(await key.key);
  const viaCompact = await new CompactSign(encoder.encode(JSON.stringify(claims))).setProtectedHeader(header).sign(SECRET_BYTES);
  return [viaSignJwt, viaCompact];
}

async function expectSameAsJose(claims: JWTPayload, typ: string | undefined, label: string): Promise<void> {
  const ours = signJwtSync(key, claims, typ);
  const [viaSignJwt, viaCompact] = await joseTokens(claims, typ);
  expect(ours, label).toBe(viaSignJwt);
  expect(ours, label).toBe(viaCompact);
  const { payload, protectedHeader } = await jwtVerify(ours, SECRET_BYTES, { algorithms: [DUO_JWT_ALG] });
  expect(protectedHeader, label).toEqual(headerFor(typ));
  expect(payload, label).toEqual(JSON.parse(JSON.stringify(claims)));
}

describe(`signJwt is jose's CompactSign, byte for byte (seed ${SEED})`, () => {
  it('for 1,500 request JWT claim sets (createAuthUrl shape, generated values)', async () => {
    const gen = new Gen(SEED);
    for (let i = 0; i < 1500; i++) await expectSameAsJose(gen.requestJwtClaims(), undefined, `seed ${SEED} request #${i}`);
  }, 60_000);

  it('for 1,500 client assertion claim sets (typ JWT)', async () => {
    const gen = new Gen(SEED + 1);
    for (let i = 0; i < 1500; i++) await expectSameAsJose(gen.clientAssertionClaims(), 'JWT', `seed ${SEED} assertion #${i}`);
  }, 60_000);

  it('for 3,000 claim sets of any JSON shape: unicode and lone surrogates, large, negative and tiny numbers, -0, nesting, arrays with holes, undefined values, odd keys and typ headers', async () => {
    const gen = new Gen(SEED + 2);
    let undefinedValues = 0;
    let loneSurrogates = 0;
    let nested = 0;
    for (let i = 0; i < 3000; i++) {
      const claims = gen.anyClaims();
      const json = JSON.stringify(claims);
      if (Object.values(claims).includes(undefined)) undefinedValues++;
      if (/\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/.test(json)) loneSurrogates++;
      if (Object.values(claims).some((value) => value !== null && typeof value === 'object')) nested++;
      await expectSameAsJose(claims, gen.typ(), `seed ${SEED} any #${i}: ${json.slice(0, 200)}`);
    }
    // The generator really made the cases the test claims to cover.
    expect(undefinedValues).toBeGreaterThan(150);
    expect(loneSurrogates).toBeGreaterThan(150);
    expect(nested).toBeGreaterThan(750);
  }, 60_000);

  it('for the edge cases jose handles quietly: -0, undefined values and elements, array holes, a null-prototype object, an own "__proto__" key', async () => {
    const holes: unknown[] = [1];
    holes.length = 3;
    const bare = Object.create(null) as Record<string, unknown>;
    bare.a = 1;
    const protoKey = JSON.parse('{"__proto__":{"x":1},"b":2}') as JWTPayload;
    for (const claims of [{ z: -0, a: undefined }, { list: [undefined, 1, undefined] }, { holes }, { bare }, protoKey, {}, { '2': 'b', '1': 'a', z: 'c' }]) {
      await expectSameAsJose(claims as JWTPayload, undefined, JSON.stringify(claims));
    }
    // What those were signed as: JSON.stringify's text.
    expect(Buffer.from(signJwtSync(key, { z: -0, a: undefined }).split('.')[1]!, 'base64url').toString()).toBe('{"z":0}');
    expect(Buffer.from(signJwtSync(key, { holes } as JWTPayload).split('.')[1]!, 'base64url').toString()).toBe('{"holes":[1,null,null]}');
  });

  it('signJwt (async) gives the same token as signJwtSync', async () => {
    const claims = { sub: 'alice', iat: 1_700_000_000 };
    expect(await signJwt(key, claims, 'JWT')).toBe(signJwtSync(key, claims, 'JWT'));
    expect(await signJwt(key, claims)).toBe(signJwtSync(key, claims));
  });

  it('a different secret gives a different signature, which jose refuses', async () => {
    const other = new HsKey(`${CLIENT_SECRET.slice(0, 39)}x`);
    const token = signJwtSync(other, { sub: 'alice' });
    expect(token.split('.').slice(0, 2)).toEqual(signJwtSync(key, { sub: 'alice' }).split('.').slice(0, 2));
    expect(token).not.toBe(signJwtSync(key, { sub: 'alice' }));
    await expect(jwtVerify(token, SECRET_BYTES, { algorithms: [DUO_JWT_ALG] })).rejects.toThrow(/signature verification failed/);
  });
});

/** Expects jose to refuse these claims, and ours too (a TypeError whose message contains `ours`). */
async function expectBothRefuse(claims: unknown, ours: RegExp): Promise<void> {
  let joseRefused = false;
  try {
    await new SignJWT(claims as JWTPayload).setProtectedHeader({ alg: DUO_JWT_ALG }).sign(await key.key);
  } catch {
    joseRefused = true;
  }
  expect(joseRefused, 'jose signed it').toBe(true);
  expect(() => signJwtSync(key, claims as JWTPayload)).toThrow(TypeError);
  expect(() => signJwtSync(key, claims as JWTPayload)).toThrow(ours);
  await expect(signJwt(key, claims as JWTPayload)).rejects.toThrow(ours);
}

describe('signJwt refuses what jose refuses', () => {
  it('claims that are not a plain object: an array, null, a string, a number, a Date, a Map, a class instance', async () => {
    class Claims {
      sub = 'alice';
    }
    for (const claims of [[], null, 'sub', 42, new Date(), new Map([['sub', 'alice']]), new Claims()]) {
      await expectBothRefuse(claims, /must be a plain object/);
    }
  });

  it('values JSON cannot carry: functions, symbols, bigints (naming the claim)', async () => {
    await expectBothRefuse({ sub: 'alice', fn: () => 1 }, /claim fn: is a function/);
    await expectBothRefuse({ nested: { deep: [1, Symbol('s')] } }, /claim nested\.deep\[1\]: is a symbol/);
    await expectBothRefuse({ n: 10n }, /claim n: is a bigint/);
    await expectBothRefuse({ sub: 'alice', toJSON: () => ({ sub: 'mallory' }) }, /claim toJSON: is a function/);
  });

  it('an array with properties besides its elements (jose clones them, and refuses a function among them)', async () => {
    const list: unknown[] & { fn?: () => number } = [1, 2];
    list.fn = () => 1;
    await expectBothRefuse({ list }, /claim list: is an array with properties besides its elements/);
    // Stricter than jose, never different: a string property jose would sign (and JSON.stringify drop) is refused too.
    const tagged: unknown[] & { tag?: string } = [1];
    tagged.tag = 'x';
    expect(() => signJwtSync(key, { tagged } as JWTPayload)).toThrow(/is an array with properties besides its elements/);
  });

  it('cycles', async () => {
    const claims: Record<string, unknown> = { sub: 'alice' };
    claims.self = { back: claims };
    await expectBothRefuse(claims, /claim self\.back: refers back/);
    const list: unknown[] = [];
    list.push(list);
    await expectBothRefuse({ list }, /claim list\[0\]: refers back/);
  });

  it('non-finite time claims', async () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      for (const claim of ['iat', 'nbf', 'exp']) await expectBothRefuse({ [claim]: value }, new RegExp(`claim ${claim}: .* is not a finite number`));
    }
  });

  it('a Proxy, which jose cannot clone', async () => {
    await expectBothRefuse(new Proxy({ sub: 'alice' }, {}), /must be a plain object/);
    await expectBothRefuse({ inner: new Proxy({ a: 1 }, {}) }, /claim inner: is a Proxy/);
    await expectBothRefuse({ inner: new Proxy([1], {}) }, /claim inner: is a Proxy/);
  });

  it('an empty secret: jose has no key to sign with, and HsKey refuses to exist', async () => {
    await expect(new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: DUO_JWT_ALG }).sign(new Uint8Array(0))).rejects.toThrow();
    expect(() => new HsKey('')).toThrow(/non-empty secret/);
    expect(() => new HsKey(undefined as unknown as string)).toThrow(/non-empty secret/);
  });

  it('a non-string typ', () => {
    expect(() => signJwtSync(key, { sub: 'alice' }, 42 as unknown as string)).toThrow(/"typ" header must be a string/);
  });

  it('where jose would quietly change a value, ours refuses rather than guess: NaN outside the time claims, nested class instances and Dates', async () => {
    // jose signs these (NaN as null; a clone without the prototype): ours is stricter, never different.
    class Point {
      x = 1;
      toJSON(): string {
        return 'point';
      }
    }
    const refused: Array<[unknown, RegExp]> = [
      [{ score: Number.NaN }, /claim score: NaN is not a finite number/],
      [{ at: new Point() }, /claim at: is a Object that is not a plain object/],
      [{ when: new Date(0) }, /claim when: is a Date that is not a plain object/],
    ];
    for (const [claims, message] of refused) {
      await expect(new SignJWT(claims as JWTPayload).setProtectedHeader({ alg: DUO_JWT_ALG }).sign(await key.key)).resolves.toMatch(/^ey/);
      expect(() => signJwtSync(key, claims as JWTPayload)).toThrow(message);
    }
  });

  it('the errors never carry the secret or the claim values', () => {
    try {
      signJwtSync(key, { secretish: CLIENT_SECRET, bad: () => CLIENT_SECRET });
      throw new Error('signed');
    } catch (error) {
      expect((error as Error).message).toBe('JWT claim bad: is a function; only JSON data can be signed.');
    }
  });
});

describe('through the public API', () => {
  it("createAuthUrl's request JWT is jose's SignJWT of the same claims, and jose verifies it", async () => {
    const client = new DuoClient(validOptions());
    try {
      const gen = new Gen(SEED + 3);
      const urlSafe = (length: number): string => Array.from({ length }, () => gen.pick([...'ABCXYZabcxyz0189-._~'])).join('');
      for (let i = 0; i < 200; i++) {
        // Usernames of any text but control characters (which createAuthUrl refuses); state and nonce URL-safe, as required.
        const username = gen.string(40).replace(/[\x00-\x1f\x7f]/g, '') || 'alice';
        const url = await client.createAuthUrl(username, urlSafe(16 + gen.int(48)), {
          nonce: gen.chance(0.5) ? expectNoNonce : urlSafe(16 + gen.int(48)),
          ...(gen.chance(0.3) ? { displayUsername: gen.string(20) || 'x' } : {}),
        });
        const request = new URL(url).searchParams.get('request')!;
        const { payload } = await jwtVerify(request, SECRET_BYTES, { algorithms: [DUO_JWT_ALG], audience: client.config.baseUrl, issuer: CLIENT_ID });
        expect(payload.duo_uname).toBe(username);
        // JSON.parse keeps the claims' order, so re-signing what was decoded must give the very same token.
        expect(request).toBe(await new SignJWT(payload).setProtectedHeader({ alg: DUO_JWT_ALG }).sign(await key.key));
      }
    } finally {
      await client.close();
    }
  }, 60_000);
});
