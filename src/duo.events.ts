import type { LoggerService } from '@nestjs/common';
import { Observable, Subject, type Observer, type Subscription } from 'rxjs';
import type { DuoErrorCode } from './duo.errors.js';

interface DuoEventBase {
  /** Milliseconds since the epoch. */
  at: number;
  /** The primary user, when known. */
  username?: string;
  /**
   * The Duo application's name, when the module names its applications
   * (`applications`); absent for top-level credentials. An anonymous refused
   * callback (unknown state) names the default application.
   */
  application?: string;
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

/**
 * A prompt start was refused by `promptLimits` (push-flood protection): too many
 * prompts for this user or from this client network, or too many failed
 * callbacks for this user. Answered 429 with `Retry-After`.
 */
export interface DuoPromptLimitedEvent extends DuoEventBase {
  type: 'prompt_limited';
  username: string;
  /** Which limit: `user`, `ip` (the client's network) or `failed_callbacks`. */
  scope: 'user' | 'ip' | 'failed_callbacks';
  retryAfterSeconds: number;
}

/**
 * Duo passed the user, but the login does not meet the factor rule of the
 * route that started it (`@RequireSecondFactor({ factors })` or
 * `requireInteraction`): answered 403 `factor_rule_not_met`; the session keeps
 * the second factor it had. Duo's values are printable and at most 64 characters.
 */
export interface DuoRuleRefusedEvent extends DuoEventBase {
  type: 'second_factor_rule_refused';
  username: string;
  /** Which part of the rule was not met: `factors` (another factor was used) or `interaction` (Duo did not ask the user, or did not confirm it). */
  rule: 'factors' | 'interaction';
  /** The route's accepted factors, when its rule names them. */
  factors?: string[];
  /** Duo's `auth_context.factor`, `.reason` and `.result`, when they were strings. */
  factor?: string;
  reason?: string;
  result?: string;
  txid?: string;
}

export type DuoEvent = DuoPromptStartedEvent | DuoPassedEvent | DuoFailedEvent | DuoBypassedEvent | DuoPromptLimitedEvent | DuoRuleRefusedEvent;

/**
 * Where the module's events go: the `events$` stream and the `onEvent` hook.
 * Internal: only the module emits, so nobody can forge an audit event.
 */
export class DuoEventBus {
  readonly #subject = new Subject<DuoEvent>();
  /** Subscribers whose handler throws are logged, not rethrown (RxJS would rethrow from a timer, ending the process). */
  readonly events$: Observable<DuoEvent> = new GuardedEvents(this.#subject, (error) => this.#subscriberFailed(error));

  constructor(
    private readonly onEvent: ((event: DuoEvent) => unknown) | undefined,
    private readonly logger: LoggerService,
  ) {}

  emit(event: DuoEvent): void {
    this.#subject.next(event);
    if (!this.onEvent) return;
    const dropped = (): void => {
      this.logger.error(
        `The onEvent hook failed for a "${event.type}" event; the event was dropped for it. Catch errors inside the hook (an audit sink that is down must not stop logins).`,
      );
    };
    try {
      const result: unknown = this.onEvent(event);
      // An async hook's rejection would be an unhandled rejection, which ends the process.
      if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
        Promise.resolve(result as PromiseLike<unknown>).catch(dropped);
      }
    } catch {
      dropped();
    }
  }

  complete(): void {
    this.#subject.complete();
  }

  #subscriberFailed(_error: unknown): void {
    this.logger.error('An events$ subscriber threw; the event was dropped for it. Catch errors inside the subscriber.');
  }
}

/**
 * events$ as subscribers see it: a direct `subscribe(next)` or `subscribe({ next })`
 * gets its handler wrapped, so that a throwing audit sink is logged instead of
 * being rethrown by RxJS outside any request. (Operators added with `pipe()` run
 * their subscribers' handlers themselves: those must catch their own errors.)
 */
class GuardedEvents extends Observable<DuoEvent> {
  constructor(
    source: Observable<DuoEvent>,
    private readonly onError: (error: unknown) => void,
  ) {
    super((subscriber) => source.subscribe(subscriber));
  }

  override subscribe(observerOrNext?: Partial<Observer<DuoEvent>> | ((value: DuoEvent) => void) | null): Subscription {
    const guard =
      (handler: ((value: DuoEvent) => void) | undefined) =>
      (value: DuoEvent): void => {
        try {
          handler?.(value);
        } catch (error) {
          this.onError(error);
        }
      };
    if (typeof observerOrNext === 'function') return super.subscribe(guard(observerOrNext));
    if (observerOrNext && typeof observerOrNext === 'object' && typeof observerOrNext.next === 'function') {
      return super.subscribe({ ...observerOrNext, next: guard(observerOrNext.next.bind(observerOrNext)) });
    }
    return super.subscribe(observerOrNext ?? undefined);
  }
}
