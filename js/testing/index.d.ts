import type { TrackingOptions, TrackingStats, Properties } from '../dist/index';

export type Call = [name: string, ...args: unknown[]];

export interface MockAnalytics {
  /** Every call, in order, as [functionName, ...args]. */
  readonly calls: Call[];
  /** The options of the last configure() call. */
  readonly config: TrackingOptions | undefined;
  configure(options?: TrackingOptions): void;
  sendTrackingLogEvent(eventName: string, properties?: Properties): Promise<void>;
  sendTrackEvent(eventName: string, properties?: Properties): void;
  sendPageEvent(category?: string | null, name?: string | null, properties?: Properties): void;
  identifyAuthenticatedUser(userId: string | number, traits?: Properties): void;
  identifyAnonymousUser(traits?: Properties): Promise<void>;
  logLegacy(eventType: string, data?: unknown): Promise<void>;
  flush(): Promise<void>;
  reset(): void;
  ready(): Promise<boolean>;
  setWasmUrl(url: string | URL): void;
  getStats(): TrackingStats;
  /** The calls of one function, as their argument lists. */
  events(name: string): unknown[][];
  /** Forgets every recorded call and the configuration. */
  clear(): void;
}

export function createMockAnalytics(): MockAnalytics;
export const mockAnalytics: MockAnalytics;

export function configure(options?: TrackingOptions): void;
export function sendTrackingLogEvent(eventName: string, properties?: Properties): Promise<void>;
export function sendTrackEvent(eventName: string, properties?: Properties): void;
export function sendPageEvent(category?: string | null, name?: string | null, properties?: Properties): void;
export function identifyAuthenticatedUser(userId: string | number, traits?: Properties): void;
export function identifyAnonymousUser(traits?: Properties): Promise<void>;
export function logLegacy(eventType: string, data?: unknown): Promise<void>;
export function flush(): Promise<void>;
export function reset(): void;
export function ready(): Promise<boolean>;
export function setWasmUrl(url: string | URL): void;
export function getStats(): TrackingStats;
