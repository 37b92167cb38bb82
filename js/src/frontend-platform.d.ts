import type { Properties, TrackingOptions } from './index.js';

/** What frontend-platform passes to an analytics service. */
export interface AnalyticsServiceOptions {
  config: {
    /** Base URL of the ingest server; batches go to `${TRACKING_ENDPOINT}/v1/batch`. */
    TRACKING_ENDPOINT?: string;
    /** Used when TRACKING_ENDPOINT is not set. */
    LMS_BASE_URL?: string;
    /** Further SDK options (see `configure`). */
    TRACKING_OPTIONS?: TrackingOptions;
    [key: string]: unknown;
  };
  httpClient?: unknown;
  loggingService?: { logError(message: unknown): void; logInfo(message: unknown): void };
}

/** frontend-platform's analytics service interface on the Tracking SDK. */
export class TrackingAnalyticsService {
  constructor(options: AnalyticsServiceOptions);
  sendTrackingLogEvent(eventName: string, properties?: Properties): Promise<void>;
  identifyAuthenticatedUser(userId: string | number, traits?: Properties): void;
  identifyAnonymousUser(traits?: Properties): Promise<void>;
  sendTrackEvent(eventName: string, properties?: Properties): void;
  sendPageEvent(category?: string | null, name?: string | null, properties?: Properties): void;
}

export default TrackingAnalyticsService;
