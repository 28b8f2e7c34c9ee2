import { randomBytes, scrypt, timingSafeEqual, type BinaryLike, type ScryptOptions } from 'node:crypto';
import { Injectable, type OnModuleInit } from '@nestjs/common';

/** The user the primary login puts in the session; `username` is the name Duo knows. */
export interface SessionUser {
  username: string;
  displayName: string;
}

/** Demo data, printed at startup: never use fixed passwords outside a demo. */
export const DEMO_USERS: ReadonlyArray<SessionUser & { password: string }> = [
  { username: 'alice', displayName: 'Alice Liddell', password: 'wonderland' },
  { username: 'bob', displayName: 'Bob Builder', password: 'can-we-fix-it' },
];

const KEY_LENGTH = 64;
// One of OWASP's equivalent minimums for scrypt (N=2^15, r=8, p=3): 32 MiB per hash.
const SCRYPT: ScryptOptions = { N: 2 ** 15, r: 8, p: 3, maxmem: 64 * 1024 * 1024 };

interface StoredUser extends SessionUser {
  salt: Buffer;
  hash: Buffer;
}

function scryptHash(password: BinaryLike, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_LENGTH, SCRYPT, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** The demo users, in memory, with scrypt-hashed passwords (random salt each start). */
@Injectable()
export class UsersService implements OnModuleInit {
  readonly #users = new Map<string, StoredUser>();
  /** Hashed against when the username is unknown, so both answers take as long. */
  #decoy?: { salt: Buffer; hash: Buffer };

  async onModuleInit(): Promise<void> {
    const hashed = async (password: BinaryLike): Promise<{ salt: Buffer; hash: Buffer }> => {
      const salt = randomBytes(16);
      return { salt, hash: await scryptHash(password, salt) };
    };
    const [decoy, ...users] = await Promise.all([hashed(randomBytes(16)), ...DEMO_USERS.map((user) => hashed(user.password))]);
    DEMO_USERS.forEach(({ username, displayName }, index) => this.#users.set(username, { username, displayName, ...users[index]! }));
    this.#decoy = decoy;
  }

  /** The user when the password matches, else undefined; the same work either way. */
  async verify(username: string, password: string): Promise<SessionUser | undefined> {
    const user = this.#users.get(username);
    const stored = user ?? this.#decoy;
    if (!stored) throw new Error('UsersService is not initialised yet.');
    const hash = await scryptHash(password, stored.salt);
    const match = timingSafeEqual(hash, stored.hash);
    return user && match ? { username: user.username, displayName: user.displayName } : undefined;
  }
}
