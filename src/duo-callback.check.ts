import { Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { MODULE_PATH, PATH_METADATA } from '@nestjs/common/constants.js';
import { ApplicationConfig, DiscoveryService, MetadataScanner, ModulesContainer, Reflector } from '@nestjs/core';
import { DUO_CALLBACK_ROUTE, REQUIRE_SECOND_FACTOR, type RequireSecondFactorOptions } from './duo.constants.js';
import { combinedRequirement } from './route-requirement.js';
import { DuoApplications } from './duo.applications.js';
import { DuoConfigError } from './protocol/index.js';

/**
 * At bootstrap, checks that a `@DuoCallback()` route serves the redirect URI's
 * path. Without one, users come back from Duo to a 404 whose body echoes their
 * code and state, and nothing said why. A route whose full path is the end of
 * the redirect URI's path counts (a reverse proxy may add a prefix in front).
 */
@Injectable()
export class DuoCallbackRouteCheck implements OnApplicationBootstrap {
  readonly #logger = new Logger('DuoModule');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly config: ApplicationConfig,
    private readonly modules: ModulesContainer,
    private readonly applications: DuoApplications,
  ) {}

  onApplicationBootstrap(): void {
    this.checkRouteApplications();
    if (!this.applications.default.settings.checkCallbackRoute) return;
    const routes = this.callbackRoutes();
    // Each application's redirect URI is checked: one @DuoCallback() route may serve them all, or each its own.
    for (const context of this.applications.contexts) {
      const expected = normalise(context.callbackPath);
      if (routes.some((route) => expected === route || expected.endsWith(route))) continue;
      const found = routes.length === 0 ? 'there is no @DuoCallback() route at all' : `@DuoCallback() routes are at ${routes.join(', ')}`;
      const whose = this.applications.named
        ? `Duo application "${context.name}" sends users back to its redirect URI's path ${expected} (applications.${context.name}.redirectUri)`
        : `Duo sends users back to the redirect URI's path ${expected}`;
      this.#logger.error(
        `${whose}, but ${found}: they would land on a 404 after Duo. ` +
          `Put @DuoCallback() on a GET handler at ${expected}, or set redirectUri to the route's URL (and register it in the Duo Admin Panel). ` +
          'An app that handles the callback itself with DuoService sets checkCallbackRoute: false.',
      );
    }
  }

  /** Every `@RequireSecondFactor({ application })` (on a controller, or a provider such as a GraphQL resolver) must name a registered application: else the app does not start. */
  checkRouteApplications(): void {
    for (const wrapper of [...this.discovery.getControllers(), ...this.discovery.getProviders()]) {
      const instance: unknown = wrapper.instance;
      const metatype = wrapper.metatype as (new (...args: never[]) => object) | undefined;
      // Values and factories' results (options objects, clients) have no handlers to check.
      if (instance === null || typeof instance !== 'object' || typeof metatype !== 'function') continue;
      const prototype = Object.getPrototypeOf(instance) as Record<string, unknown> | null;
      if (prototype === null || prototype === Object.prototype) continue;
      const targets: Array<[object, string]> = [[metatype, metatype.name]];
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[name];
        if (typeof handler === 'function') targets.push([handler, `${metatype.name}.${name}`]);
      }
      const onController = this.reflector.get<RequireSecondFactorOptions | undefined>(REQUIRE_SECOND_FACTOR, metatype as never);
      for (const [target, where] of targets) {
        const own = this.reflector.get<RequireSecondFactorOptions | undefined>(REQUIRE_SECOND_FACTOR, target as never);
        // A handler's options lie over its controller's: the combination is what the guard applies, so it is what is checked
        // (a combination that cannot be, or an application named by either, stops the app here rather than at a request).
        const application = (own !== undefined && target !== metatype ? combinedRequirement(own, onController, where) : own)?.application;
        if (application === undefined || this.applications.get(application) !== undefined) continue;
        const known = this.applications.named
          ? `the registered ones are ${this.applications.names.join(', ')}`
          : 'the module has no "applications" (top-level credentials are the one application "default", which routes need not name)';
        throw new DuoConfigError(`@RequireSecondFactor({ application: ${JSON.stringify(application)} }) on ${where} names no Duo application: ${known}. Add it to DuoModule's "applications" or fix the name.`);
      }
    }
  }

  /** The full path of every @DuoCallback() handler: global prefix, RouterModule path, controller path, method path. */
  callbackRoutes(): string[] {
    const prefix = this.config.getGlobalPrefix();
    const routes: string[] = [];
    for (const wrapper of this.discovery.getControllers()) {
      const instance = wrapper.instance as object | undefined;
      const metatype = wrapper.metatype as (new (...args: never[]) => object) | undefined;
      if (!instance || !metatype) continue;
      const modulePath = wrapper.host ? (Reflect.getMetadata(MODULE_PATH + this.modules.applicationId, wrapper.host.metatype) as string | undefined) : undefined;
      const controllerPaths = asList(Reflect.getMetadata(PATH_METADATA, metatype));
      const prototype = Object.getPrototypeOf(instance) as Record<string, unknown>;
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[name];
        if (typeof handler !== 'function' || !this.reflector.get<boolean | undefined>(DUO_CALLBACK_ROUTE, handler)) continue;
        for (const controllerPath of controllerPaths) {
          for (const methodPath of asList(Reflect.getMetadata(PATH_METADATA, handler))) {
            routes.push(normalise([prefix, modulePath ?? '', controllerPath, methodPath].join('/')));
          }
        }
      }
    }
    return routes;
  }
}

function asList(value: unknown): string[] {
  if (Array.isArray(value)) return value.length === 0 ? [''] : value.map(String);
  return typeof value === 'string' ? [value] : [''];
}

/** One leading slash, no doubled or trailing ones. */
function normalise(path: string): string {
  const joined = `/${path.split('/').filter((part) => part.length > 0).join('/')}`;
  return joined;
}
