import { SetMetadata, UseFilters, UseGuards, applyDecorators } from '@nestjs/common';
import { DuoExceptionFilter } from './duo-exception.filter.js';
import { MIN_STEP_UP_SECONDS, REQUIRE_SECOND_FACTOR, SKIP_SECOND_FACTOR, type RequireSecondFactorOptions } from './duo.constants.js';
import { factorRuleOf } from './factor-rules.js';
import { APPLICATION_NAME } from './duo.options.js';
import { SecondFactorGuard } from './second-factor.guard.js';

/**
 * The route (or every route of the controller) needs a passed Duo second
 * factor; sessions without one are sent to Duo's prompt. `factors` and
 * `requireInteraction` add a factor rule (see the README, "Factor rules"); a
 * wrong rule throws a DuoConfigError naming the handler when its class is
 * defined, so the app does not start.
 */
export function RequireSecondFactor(options: RequireSecondFactorOptions = {}): MethodDecorator & ClassDecorator {
  if (options.maxAge !== undefined && (!Number.isInteger(options.maxAge) || options.maxAge < MIN_STEP_UP_SECONDS)) {
    // 0 would expire between the callback and the page it returns to, and loop.
    throw new TypeError(`@RequireSecondFactor({ maxAge }) must be a whole number of seconds, ${MIN_STEP_UP_SECONDS} or more.`);
  }
  if (options.application !== undefined && (typeof options.application !== 'string' || !APPLICATION_NAME.test(options.application))) {
    throw new TypeError('@RequireSecondFactor({ application }) must be the name of one of DuoModule\'s applications (1 to 64 letters, digits, "_" or "-").');
  }
  const metadata: RequireSecondFactorOptions = { ...options };
  if (options.factors !== undefined && Array.isArray(options.factors)) metadata.factors = Object.freeze([...options.factors]);
  Object.freeze(metadata);
  const apply = applyDecorators(SetMetadata(REQUIRE_SECOND_FACTOR, metadata), UseGuards(SecondFactorGuard), UseFilters(DuoExceptionFilter));
  return ((target: object, key?: string | symbol, descriptor?: PropertyDescriptor) => {
    // Resolved here, where the handler's name is known: a mistake names it, and the guard finds the rule resolved.
    factorRuleOf(metadata, `@RequireSecondFactor() on ${handlerName(target, key)}`);
    return (apply as (target: object, key?: string | symbol, descriptor?: PropertyDescriptor) => unknown)(target, key, descriptor);
  }) as MethodDecorator & ClassDecorator;
}

/** `AdminController.remove` for a method, `AdminController` for a class. */
function handlerName(target: object, key: string | symbol | undefined): string {
  if (key === undefined) return (target as { name?: string }).name || 'a controller';
  const owner = (target as { constructor?: { name?: string } }).constructor?.name || 'a controller';
  return `${owner}.${String(key)}`;
}

/** With the guard bound globally (APP_GUARD), marks a public route or controller. */
export const SkipSecondFactor = (): MethodDecorator & ClassDecorator => SetMetadata(SKIP_SECOND_FACTOR, true);

