// nestjs-duo/terminus: Duo's health for @nestjs/terminus (an optional peer
// dependency: only this entry point loads it).
export { DuoHealthIndicator } from './duo-health.indicator.js';
export type { DuoHealthDetails } from './duo-health.indicator.js';
