// A page that tracks through @edx/frontend-platform's analytics API, as an MFE does,
// with the Tracking service plugged in the way `initialize({ analyticsService })`
// plugs a service in: `configure(Service, { config, httpClient, loggingService })`.
import {
  configure, identifyAuthenticatedUser, identifyAnonymousUser, sendPageEvent, sendTrackEvent, sendTrackingLogEvent,
} from '@edx/frontend-platform/analytics';
import { flush, getStats } from '@org/tracking';
import { TrackingAnalyticsService } from '@org/tracking/frontend-platform';

const errors = [];
const service = configure(TrackingAnalyticsService, {
  config: { LMS_BASE_URL: new URLSearchParams(window.location.search).get('ingest') },
  httpClient: { post() { throw new Error('the service never posts through httpClient'); } },
  loggingService: { logError: (e) => errors.push(String(e)), logInfo() {} },
});

window.run = async () => {
  sendTrackEvent('edx.fp.before.identify', {});
  identifyAuthenticatedUser(42, { email: 'ada@example.com' });
  await sendTrackingLogEvent('edx.ui.lms.sequence.tab_selected', { currentTab: 2, tabCount: 5, targetUrl: '/x?y=1' });
  sendTrackEvent('edx.bi.course.upgrade.clicked', { courseId: 'course-v1:edX+DemoX+Demo_Course' });
  sendPageEvent('courseware', 'Unit 1', { blockId: 'block-v1:x' });
  await identifyAnonymousUser();
  let thrown = '';
  try {
    identifyAuthenticatedUser();
  } catch (e) {
    thrown = e.message;
  }
  await flush();
  return { errors, thrown, stats: getStats(), isService: service instanceof TrackingAnalyticsService };
};
window.ready = true;
