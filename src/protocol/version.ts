import type { DuoCaPinning } from './config.js';
import { DUO_CA_BUNDLE_VERSION } from './duo-roots.js';

/** The package version, sent in the User-Agent. A test keeps it equal to package.json's. */
export const NESTJS_DUO_VERSION = '0.1.0';

/**
 * The User-Agent of every call to Duo, in the form Duo's SDKs use since they
 * made pinning optional (`duo_universal_node/3.x node/... ca_bundle/1.0
 * (ca_pinning=enabled)`), so that Duo sees whether pinning is on:
 * `nestjs-duo/0.1.0 node/22.12.0 ca_bundle/1.0 (ca_pinning=enabled)`.
 */
export function duoUserAgent(pinning: DuoCaPinning): string {
  return `nestjs-duo/${NESTJS_DUO_VERSION} node/${process.versions.node} ca_bundle/${DUO_CA_BUNDLE_VERSION} (ca_pinning=${pinning === 'duo' ? 'enabled' : 'disabled'})`;
}
