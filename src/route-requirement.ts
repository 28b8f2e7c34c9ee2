import type { RequireSecondFactorOptions } from './duo.constants.js';
import { factorRuleOf } from './factor-rules.js';

const merged = new WeakMap<object, WeakMap<object, RequireSecondFactorOptions>>();

/**
 * What a handler demands when both it and its controller carry `@RequireSecondFactor()`: the
 * controller's options with the handler's on top, key by key. So a step-up `maxAge` on one handler
 * of an admin controller keeps the controller's `application` and factor rule (replacing them
 * whole would quietly send that route to the default application, with no rule). The result is
 * made once per handler and frozen; its factor rule is resolved (a combination that cannot be,
 * such as the controller's `factors` with the handler's `requireInteraction: false`, throws a
 * DuoConfigError naming the handler).
 */
export function combinedRequirement(
  handlerOptions: RequireSecondFactorOptions,
  controllerOptions: RequireSecondFactorOptions | undefined,
  where: string,
): RequireSecondFactorOptions {
  if (controllerOptions === undefined) return handlerOptions;
  let byController = merged.get(handlerOptions);
  if (!byController) merged.set(handlerOptions, (byController = new WeakMap()));
  const known = byController.get(controllerOptions);
  if (known) return known;
  const combined: RequireSecondFactorOptions = { ...controllerOptions };
  for (const [key, value] of Object.entries(handlerOptions)) if (value !== undefined) (combined as Record<string, unknown>)[key] = value;
  Object.freeze(combined);
  factorRuleOf(combined, `@RequireSecondFactor() on ${where} (with its controller's)`);
  byController.set(controllerOptions, combined);
  return combined;
}
