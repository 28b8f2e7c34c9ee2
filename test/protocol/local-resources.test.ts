/**
 * A connection that fails because this server ran out of something of its own
 * (file descriptors, buffers, memory, local ports) is not "Duo is unreachable":
 * anyone can exhaust an app's descriptors with idle connections while Duo is
 * fine, and fail mode "open" must not let users through for that.
 */
import { describe, expect, it } from 'vitest';
import { isLocalResourceFailure } from '../../src/protocol/http.js';

const withCode = (code: string, cause?: unknown): Error => Object.assign(new Error(`failure ${code}`), { code, ...(cause ? { cause } : {}) });

describe('local resource failures', () => {
  it.each(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL', 'EAI_MEMORY'])('%s, also deep in a cause chain, is ours', (code) => {
    expect(isLocalResourceFailure(withCode(code))).toBe(true);
    expect(isLocalResourceFailure(new TypeError('fetch failed', { cause: withCode('UND_ERR_SOCKET', withCode(code)) }))).toBe(true);
  });

  it.each(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH'])('%s is the network or Duo, not us', (code) => {
    expect(isLocalResourceFailure(new TypeError('fetch failed', { cause: withCode(code) }))).toBe(false);
  });
});
