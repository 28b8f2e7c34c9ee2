import { SetMetadata, UseFilters, UseGuards, applyDecorators } from '@nestjs/common';
import { DuoExceptionFilter } from './duo-exception.filter.js';
import { MIN_STEP_UP_SECONDS, REQUIRE_SECOND_FACTOR, SKIP_SECOND_FACTOR, type RequireSecondFactorOptions } from './duo.constants.js';
import { SecondFactorGuard } from './second-factor.guard.js';

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
