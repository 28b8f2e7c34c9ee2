import type { DuoErrorCode } from './protocol/index.js';

interface DuoEventBase {
  /** Milliseconds since the epoch. */
  at: number;
  /** The primary user, when known. */
  username?: string;
}

/** A login was sent to Duo's prompt. */
export interface DuoPromptStartedEvent extends DuoEventBase {
  type: 'prompt_started';
  username: string;
  /** Set when a step-up route asked for a recent second factor. */
  maxAge?: number;
}

/** Duo verified the user: the session now counts as second-factor verified. */
export interface DuoPassedEvent extends DuoEventBase {
  type: 'second_factor_passed';
  username: string;
  factor?: string;
  txid?: string;
}

/** A login or callback failed; `code` says why. */
export interface DuoFailedEvent extends DuoEventBase {
  type: 'second_factor_failed';
  code: DuoErrorCode;
  /**
   * Callbacks without a user (unknown or malformed state) are reported at most
   * once per 10 s: how many like it were left out since the last one reported.
   */
  suppressed?: number;
}

/** Fail mode `open` let a user through without Duo because Duo was unreachable or unhealthy. */
export interface DuoBypassedEvent extends DuoEventBase {
  type: 'second_factor_bypassed';
  username: string;
  reason: DuoErrorCode;
}

export type DuoEvent = DuoPromptStartedEvent | DuoPassedEvent | DuoFailedEvent | DuoBypassedEvent;
