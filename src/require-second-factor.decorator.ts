import { SetMetadata, UseFilters, UseGuards, applyDecorators } from '@nestjs/common';
import { DuoExceptionFilter } from './duo-exception.filter.js';
import { SecondFactorGuard } from './second-factor.guard.js';

export const REQUIRE_SECOND_FACTOR = 'nestjs-duo:require-second-factor';
export const SKIP_SECOND_FACTOR = 'nestjs-duo:skip-second-factor';
/** The shortest step-up window `@RequireSecondFactor({ maxAge })` accepts. */
export const MIN_STEP_UP_SECONDS = 1;

export interface RequireSecondFactorOptions {
  /**
   * Step-up: a second factor older than this many seconds does not count for
   * this route, and Duo is asked (with `max_age`) to authenticate again.
   */
  maxAge?: number;
}

/**
 * The route (or every route of the controller) needs a passed Duo second
 * factor; sessions without one are sent to Duo's prompt.
 */
export function RequireSecondFactor(options: RequireSecondFactorOptions = {}): MethodDecorator & ClassDecorator {
  if (options.maxAge !== undefined && (!Number.isInteger(options.maxAge) || options.maxAge < MIN_STEP_UP_SECONDS)) {
    // 0 would expire between the callback and the page it returns to, and loop.
    throw new TypeError(`@RequireSecondFactor({ maxAge }) must be a whole number of seconds, ${MIN_STEP_UP_SECONDS} or more.`);
  }
  return applyDecorators(SetMetadata(REQUIRE_SECOND_FACTOR, { ...options }), UseGuards(SecondFactorGuard), UseFilters(DuoExceptionFilter));
}

/** With the guard bound globally (APP_GUARD), marks a public route or controller. */
export const SkipSecondFactor = (): MethodDecorator & ClassDecorator => SetMetadata(SKIP_SECOND_FACTOR, true);
