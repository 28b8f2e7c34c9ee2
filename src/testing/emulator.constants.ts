/** The emulator's fixed names and limits, shared by its server, endpoints and browser helper. */
import type { DuoEmulatorEndpoint } from './emulator.types.js';

export const HOST = '127.0.0.1';
export const API_HOST = 'api-emulator.duosecurity.com';
export const DEFAULT_CLIENT_ID = 'DIEMULATOR0000000001';

export const PATH_HEALTH = '/oauth/v1/health_check';
export const PATH_AUTHORIZE = '/oauth/v1/authorize';
export const PATH_TOKEN = '/oauth/v1/token';
/** Where the prompt page (mode `prompt`) posts the user's decision. */
export const PATH_DECISION = '/emulator/decision';

export const ALL_ENDPOINTS: readonly DuoEmulatorEndpoint[] = ['health', 'authorize', 'token'];

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const ID_TOKEN_LIFETIME_SECONDS = 3600;

// Bounds that keep a misbehaving client from growing the emulator's memory without end.
export const MAX_BODY_BYTES = 16 * 1024;
export const MAX_FORM_FIELDS = 32;
export const MAX_SEEN_JTIS = 500_000;
export const MAX_CODES = 100_000;
export const MAX_TRANSACTIONS = 10_000;
export const TRANSACTION_TTL_MS = 10 * 60_000;

// Duo's own wording of its OAuth errors.
export const INVALID_ASSERTION = 'The provided client_assertion was invalid.';
export const INVALID_GRANT =
  'The provided authorization grant or refresh token is invalid, expired, revoked, does not match the redirection URI.';
export const INVALID_REQUEST = 'The request is missing a required parameter, includes an invalid parameter value, or is otherwise malformed.';
export const UNSUPPORTED_GRANT = 'The authorization grant type is not supported by the authorization server.';
