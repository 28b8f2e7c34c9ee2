/**
 * Pass `expectNoNonce` where a nonce goes to say, explicitly, that a login has
 * none (the name and the meaning are oauth4webapi's):
 *
 * - `createAuthUrl(username, state, { nonce: expectNoNonce })` sends no nonce;
 * - `exchangeAuthorizationCode(code, username, expectNoNonce)` then accepts only
 *   an id_token that carries no nonce.
 *
 * Without a nonce the id_token is bound to the user only, not to this login: a
 * code of another login of the same user (leaked from a log, a proxy, a browser
 * history) passes as this one. Prefer `startAuthorization()`, which makes the
 * state and nonce, and check the nonce at the exchange.
 *
 * A unique symbol, compared by identity: nothing else (no string, no look-alike
 * symbol, no other copy of this package) turns the nonce check off.
 */
export const expectNoNonce: unique symbol = Symbol('nestjs-duo.expectNoNonce');

/** The type of `expectNoNonce`. */
export type ExpectNoNonce = typeof expectNoNonce;

/** What the calls that bind a login to its id_token take: the login's nonce, or the explicit `expectNoNonce`. */
export type DuoNonce = string | ExpectNoNonce;
