// @org/tracking/frontend-platform: an analytics service for @edx/frontend-platform.
//
// frontend-platform's sendTrackEvent & co. delegate to the service given to
// initialize({ analyticsService }) (or configure(AnalyticsService, options)). This one
// sends through the Tracking SDK instead of Segment's snippet and the LMS's /event:
//
//   import { TrackingAnalyticsService } from '@org/tracking/frontend-platform';
//   initialize({ messages, analyticsService: TrackingAnalyticsService });
//
// Batches go to `${config.TRACKING_ENDPOINT}/v1/batch` when it is set, else to
// `${config.LMS_BASE_URL}/v1/batch` (the ingest server behind the LMS's origin, where it
// also answers /event). `config.TRACKING_OPTIONS` holds further SDK options.
import * as sdk from './index.js';

export class TrackingAnalyticsService {
  constructor({ config = {}, httpClient, loggingService } = {}) {
    this.config = config;
    this.httpClient = httpClient;
    this.loggingService = loggingService;
    this.hasIdentifyBeenCalled = false;
    const options = config.TRACKING_OPTIONS && typeof config.TRACKING_OPTIONS === 'object' ? config.TRACKING_OPTIONS : {};
    sdk.configure({ ...options, endpoint: config.TRACKING_ENDPOINT || config.LMS_BASE_URL || '' });
  }

  // As frontend-platform's own service: a call before identify is reported once per call.
  checkIdentifyCalled() {
    if (!this.hasIdentifyBeenCalled && this.loggingService) {
      this.loggingService.logError('Identify must be called before other tracking events.');
    }
  }

  /** A research tracking-log event (keys snake_cased); the promise always resolves. */
  sendTrackingLogEvent(eventName, properties) {
    return sdk.sendTrackingLogEvent(eventName, properties);
  }

  /** Throws without a user id, as frontend-platform's service does. */
  identifyAuthenticatedUser(userId, traits) {
    if (!userId) throw new Error('UserId is required for identifyAuthenticatedUser.');
    sdk.identifyAuthenticatedUser(userId, traits);
    this.hasIdentifyBeenCalled = true;
  }

  /** Forgets a signed-in user seen before; resolves at once. */
  identifyAnonymousUser(traits) {
    this.hasIdentifyBeenCalled = true;
    return sdk.identifyAnonymousUser(traits);
  }

  sendTrackEvent(eventName, properties) {
    this.checkIdentifyCalled();
    sdk.sendTrackEvent(eventName, properties);
  }

  sendPageEvent(category, name, properties) {
    this.checkIdentifyCalled();
    sdk.sendPageEvent(category, name, properties);
  }
}

export default TrackingAnalyticsService;
