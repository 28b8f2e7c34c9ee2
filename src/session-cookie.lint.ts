/**
 * What is wrong with a session cookie's settings for Duo's redirect back, as
 * warnings to log: SameSite=Strict loses the session on the way back from Duo,
 * None without Secure is refused by browsers, no SameSite leaves it to the
 * browser's default, and a cookie that is not Secure weakens an https site.
 * A pure function of the cookie options (express-session's or @fastify/session's).
 */
export function lintSessionCookie(cookie: unknown, redirectUri: string): string[] {
  if (cookie === null || typeof cookie !== 'object') return [];
  const { sameSite: raw, secure } = cookie as { sameSite?: unknown; secure?: unknown };
  const sameSite = typeof raw === 'string' ? raw.toLowerCase() : raw;
  const warnings: string[] = [];
  if (sameSite === 'strict' || sameSite === true) {
    warnings.push('The session cookie is SameSite=Strict: browsers will not send it on Duo\'s redirect back, so every Duo callback will fail. Set cookie.sameSite to "lax".');
  } else if (sameSite === 'none' && secure !== true) {
    warnings.push('The session cookie is SameSite=None without Secure: browsers reject it. Use sameSite "lax" (recommended) and secure: true.');
  } else if (sameSite === undefined || sameSite === null || sameSite === false) {
    warnings.push('The session cookie sets no SameSite attribute; set cookie.sameSite to "lax" explicitly (Strict breaks Duo\'s redirect back, None weakens CSRF protection).');
  }
  if (redirectUri.startsWith('https:') && secure !== true && secure !== 'auto') {
    warnings.push('The redirect URI is https but the session cookie is not Secure: set cookie.secure to true in production.');
  }
  return warnings;
}
