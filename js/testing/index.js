// @org/tracking/testing: a mock of the analytics functions for MFE unit tests.
//
// The same functions, signatures and return values as '@org/tracking', recording each
// call instead of sending it:
//
//   jest.mock('@org/tracking', () => require('@org/tracking/testing'));
//   import { mockAnalytics } from '@org/tracking/testing';
//   ...
//   expect(mockAnalytics.calls).toContainEqual(['sendTrackEvent', 'edx.ui.lms.link_clicked', { id: 1 }]);
//   expect(mockAnalytics.events('sendTrackingLogEvent')).toHaveLength(1);
//   mockAnalytics.clear();
//
// Without jest, `createMockAnalytics()` returns an independent mock.

export function createMockAnalytics() {
  const calls = [];
  let config;
  const record = (name, args) => {
    calls.push([name, ...args]);
  };
  const mock = {
    /** Every call, in order, as [functionName, ...args]. */
    calls,
    /** The options of the last configure() call. */
    get config() {
      return config;
    },
    configure(options = {}) {
      config = options;
      record('configure', [options]);
    },
    sendTrackingLogEvent(eventName, properties = {}) {
      record('sendTrackingLogEvent', [eventName, properties]);
      return Promise.resolve();
    },
    sendTrackEvent(eventName, properties) {
      record('sendTrackEvent', [eventName, properties]);
    },
    sendPageEvent(category, name, properties) {
      record('sendPageEvent', [category, name, properties]);
    },
    identifyAuthenticatedUser(userId, traits) {
      if (!userId) throw new Error('UserId is required for identifyAuthenticatedUser.');
      record('identifyAuthenticatedUser', [userId, traits]);
    },
    identifyAnonymousUser(traits) {
      record('identifyAnonymousUser', [traits]);
      return Promise.resolve();
    },
    logLegacy(eventType, data) {
      record('logLegacy', [eventType, data]);
      return Promise.resolve();
    },
    flush() {
      record('flush', []);
      return Promise.resolve();
    },
    reset() {
      record('reset', []);
    },
    ready() {
      return Promise.resolve(true);
    },
    setWasmUrl() {},
    getStats() {
      const sends = calls.filter(([n]) => n.startsWith('send') || n === 'logLegacy' || n === 'identifyAuthenticatedUser');
      return {
        configured: config !== undefined, ready: true, loading: false, failed: false,
        enqueued: sends.length, sent: sends.length, retried: 0, queued: 0, pending: 0, lost: 0, dropped: {},
      };
    },
    /** The calls of one function, as their argument lists. */
    events(name) {
      return calls.filter(([n]) => n === name).map(([, ...args]) => args);
    },
    /** Forgets every recorded call and the configuration. */
    clear() {
      calls.length = 0;
      config = undefined;
    },
  };
  return mock;
}

/** The mock behind this module's functions. */
export const mockAnalytics = createMockAnalytics();

export const configure = (...a) => mockAnalytics.configure(...a);
export const sendTrackingLogEvent = (...a) => mockAnalytics.sendTrackingLogEvent(...a);
export const sendTrackEvent = (...a) => mockAnalytics.sendTrackEvent(...a);
export const sendPageEvent = (...a) => mockAnalytics.sendPageEvent(...a);
export const identifyAuthenticatedUser = (...a) => mockAnalytics.identifyAuthenticatedUser(...a);
export const identifyAnonymousUser = (...a) => mockAnalytics.identifyAnonymousUser(...a);
export const logLegacy = (...a) => mockAnalytics.logLegacy(...a);
export const flush = () => mockAnalytics.flush();
export const reset = () => mockAnalytics.reset();
export const ready = () => mockAnalytics.ready();
export const setWasmUrl = () => {};
export const getStats = () => mockAnalytics.getStats();
