/** Options of `configure`; every one is optional. */
export interface TrackingOptions {
  /** Base URL of the ingest server; batches go to `${endpoint}/v1/batch`. Default `''` (same origin). */
  endpoint?: string;
  /** Most events per batch. Default 100. */
  batchSize?: number;
  /** Most bytes per batch body. Default 60000 (under the 64 KiB beacon limit). */
  batchBytes?: number;
  /** Longest wait before a partial batch is sent, ms. Default 1000. */
  flushInterval?: number;
  /** Largest event, bytes of JSON; larger events are dropped (reason `size_limit`). Default 50000. */
  maxEventBytes?: number;
  /** Most events held in memory; the oldest not in flight are dropped beyond it (`queue_full`). Default 100000. */
  maxQueueEvents?: number;
  /** Most bytes of event JSON held in memory, likewise. Default 20000000. */
  maxQueueBytes?: number;
  /** localStorage key prefix; `false` disables persistence. Default `'orgtracking'`. Read once. */
  storageKey?: string | false;
  /** Most localStorage the queue uses, bytes as browsers count them (two per character); events beyond it stay in memory only (`storageFull`). Default 5000000 (about 12,000 events). */
  maxStorageBytes?: number;
  /** Delay before new events are written to localStorage, ms. Default 250. */
  persistDelay?: number;
  /** First retry delay, ms; doubles per failure, with jitter. Default 1000. */
  retryBaseDelay?: number;
  /** Longest backoff delay, ms (Retry-After may ask for more). Default 60000. */
  retryMaxDelay?: number;
  /** Longest Retry-After honoured, ms. Default 3600000. */
  maxRetryAfter?: number;
  /** Failed attempts with 500/502/504… before a batch is dropped (429, 503 and network errors retry without limit). Default 10. */
  maxRetries?: number;
  /** A batch request is aborted (and retried) after this many ms. Default 30000. */
  requestTimeout?: number;
  /** Bytes the unload flush may hand to sendBeacon. Default 64000. */
  unloadBytes?: number;
  /** Compress batches sent with fetch (CompressionStream, Content-Encoding: gzip). Default true. */
  gzip?: boolean;
  /** What to do with names that are not namespace.object.action. Default `'warn'`. */
  nameValidation?: 'off' | 'warn' | 'reject';
  /** Password-like keys to mask beyond the built-in list. */
  sensitiveKeys?: string[];
  /** Where to load the WebAssembly module from. */
  wasmUrl?: string | URL;
}

/** Counters of the SDK. */
export interface TrackingStats {
  configured: boolean;
  ready: boolean;
  loading: boolean;
  failed: boolean;
  error?: string;
  enqueued?: number;
  restored?: number;
  sent?: number;
  beaconed?: number;
  retried?: number;
  requests?: number;
  queued?: number;
  inflight?: number;
  persisted?: number;
  /** Batches sent again in halves after the server refused one whole. */
  split?: number;
  /** Events kept in memory only: the storage budget or quota was full. */
  storageFull?: number;
  storageErrors?: number;
  invalidNames?: number;
  /** Events of a request in flight when the page went away that could be neither beaconed nor stored. */
  unconfirmed?: number;
  pending: number;
  lost: number;
  dropped: Record<string, number>;
}

export type Properties = Record<string, unknown>;

export function configure(options?: TrackingOptions): void;
export function sendTrackingLogEvent(eventName: string, properties?: Properties): Promise<void>;
export function sendTrackEvent(eventName: string, properties?: Properties): void;
export function sendPageEvent(category?: string | null, name?: string | null, properties?: Properties): void;
export function identifyAuthenticatedUser(userId: string | number, traits?: Properties): void;
export function identifyAnonymousUser(traits?: Properties): Promise<void>;
export function logLegacy(eventType: string, data?: unknown): Promise<void>;
export function flush(): Promise<void>;
export function reset(): void;
export function getStats(): TrackingStats;
export function ready(): Promise<boolean>;
export function setWasmUrl(url: string | URL): void;
