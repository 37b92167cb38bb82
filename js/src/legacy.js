// The legacy bundle: one <script> tag for server-rendered pages.
//
//   <script src="/static/tracking/tracking.legacy.js"
//           data-endpoint="https://events.example.com"
//           data-user-id="42"></script>
//
// It configures itself from the tag's data- attributes, exposes the SDK's functions as
// window.OrgTracking, and window.Logger with edx-platform's Logger.log(event_type, data)
// (a tracking-log event, data kept as given) and Logger.listen(event_type, element, callback).

import * as api from './index.js';

(function legacy() {
  let script = document.currentScript;
  if (!script) {
    const all = document.getElementsByTagName('script');
    script = all[all.length - 1];
  }
  const data = (script && script.dataset) || {};
  const src = (script && script.src) || location.href;
  try {
    api.setWasmUrl(data.wasm || new URL('tracking_bg.wasm', src).href);
  } catch (e) { /* a bad data-wasm: loading fails quietly */ }

  const options = { endpoint: data.endpoint || '' };
  ['batchSize', 'batchBytes', 'flushInterval', 'maxEventBytes', 'maxQueueEvents', 'maxStorageBytes',
    'retryBaseDelay', 'retryMaxDelay', 'maxRetries'].forEach((k) => {
    if (data[k] !== undefined && data[k] !== '' && !Number.isNaN(Number(data[k]))) options[k] = Number(data[k]);
  });
  if (data.storageKey !== undefined) options.storageKey = data.storageKey === 'false' ? false : data.storageKey;
  if (data.nameValidation) options.nameValidation = data.nameValidation;
  if (data.sensitiveKeys) options.sensitiveKeys = data.sensitiveKeys.split(',').map((k) => k.trim()).filter(Boolean);
  api.configure(options);
  if (data.userId) api.identifyAuthenticatedUser(data.userId);

  window.OrgTracking = api;

  const listeners = [];
  const Logger = {
    // Logger.log(event_type, data[, element]): always returns a resolved promise.
    log(eventType, eventData, element) {
      listeners.forEach(([type, el, callback]) => {
        if (type === eventType && (!el || el === element)) {
          try {
            callback(eventType, eventData, element);
          } catch (e) { /* the page's listener */ }
        }
      });
      return api.logLegacy(eventType, eventData);
    },
    // Logger.listen(event_type, element, callback): callback(event_type, data, element) on each log.
    listen(eventType, element, callback) {
      listeners.push([eventType, element, callback]);
    },
  };
  if (data.logger !== 'false') window.Logger = Logger;
}());
