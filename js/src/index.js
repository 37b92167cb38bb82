// @org/tracking: frontend-platform's analytics interface on the Tracking WebAssembly SDK.
//
// This entry loads the wasm module on first use and stands in for it until it is
// ready and configured: calls are captured (time, page and a JSON snapshot of the properties taken at
// the call) and replayed in order once it is. If the module cannot load (blocked,
// 404, a CSP without 'wasm-unsafe-eval') or traps later, calls are counted and dropped
// quietly. Nothing here throws into the page, except identifyAuthenticatedUser without
// a user id, as frontend-platform does.

import init, * as wasm from '../pkg/tracking.js';

const LOADING = 0;
const READY = 1;
const FAILED = 2;
const MAX_PENDING = 10000;

let state = -1;
let configured = false;
let wasmUrl;
let pending = [];
let failedCalls = 0; // calls dropped because the module could not load (or trapped)
let overflow = 0; // calls dropped because too many were waiting for the module
let loadError;
const waiting = []; // resolve functions of flush() calls made before the module was ready
const flushing = new Set(); // resolve functions of flush() calls the module has not answered yet

const snapshot = (v) => {
  if (v === undefined) return undefined;
  try {
    return JSON.stringify(v);
  } catch (e) {
    return null;
  }
};

const href = () => {
  try {
    return String(document.URL);
  } catch (e) {
    return '';
  }
};

function fail(error) {
  state = FAILED;
  loadError = error;
  failedCalls += pending.filter((c) => c[0] !== 'configure' && c[0] !== 6).length;
  pending = [];
  waiting.splice(0).forEach((r) => r());
  flushing.forEach((r) => r());
  flushing.clear();
}

// The browser calls the module's timers, listeners and request steps through this: an
// exception there (a trap, or a page's replaced Date.now throwing through the module)
// stops the module, as on the calling path, instead of reaching the page uncaught.
const guard = (callback) => function guarded(kind, a, b, c) {
  if (state !== READY) return;
  try {
    callback(kind, a, b, c);
  } catch (e) {
    fail(e);
  }
};

// Once the module is ready and configured: the configuration first, then the calls in order.
function replay() {
  const calls = pending;
  pending = [];
  calls.forEach((c) => c[0] === 'configure' && wasm.configure(c[1], guard));
  calls.forEach((c) => {
    if (c[0] === 6) wasm.reset();
    else if (c[0] !== 'configure') wasm.__replay(c[0], c[1], c[2], c[3], c[4], c[5]);
  });
}

const live = () => state === READY && configured;

/**
 * Where to load the WebAssembly module from (default: `tracking_bg.wasm` next to this
 * file). Call before anything else, e.g. when serving the module from a CDN.
 */
export function setWasmUrl(url) {
  wasmUrl = url;
}

function boot() {
  if (state !== -1) return;
  state = LOADING;
  let loading;
  try {
    const url = wasmUrl || new URL('tracking_bg.wasm', import.meta.url);
    loading = init({ module_or_path: url });
  } catch (e) {
    loading = Promise.reject(e);
  }
  loading.then(
    () => {
      try {
        state = READY;
        if (configured) replay();
        waiting.splice(0).forEach((r) => wasm.flush(r));
      } catch (e) {
        fail(e);
      }
    },
    fail,
  );
}

/** Resolves once the module is ready (true) or could not load (false). */
export function ready() {
  boot();
  if (state === READY) return Promise.resolve(true);
  if (state === FAILED) return Promise.resolve(false);
  return new Promise((resolve) => {
    waiting.push(() => resolve(state === READY));
  });
}

// Runs `f` on the module, or captures the call (`code`, args) for the replay.
function call(f, capture, fallback, counted = true) {
  boot();
  if (live()) {
    try {
      return f();
    } catch (e) {
      // A trap (or a bug): the module's state is unknown, stop using it.
      fail(e);
      if (counted) failedCalls += 1;
      return fallback;
    }
  }
  if (state === FAILED) {
    if (counted) failedCalls += 1;
    return fallback;
  }
  if (pending.length >= MAX_PENDING) {
    pending.shift();
    overflow += 1;
  }
  pending.push(capture());
  return fallback;
}

const resolved = () => Promise.resolve();

/** Sets the endpoint and queue limits; see the README for the options. */
export function configure(options = {}) {
  if (options && options.wasmUrl) wasmUrl = options.wasmUrl;
  const first = !configured;
  configured = true;
  call(() => wasm.configure(options, guard), () => ['configure', options], undefined, false);
  if (first && state === READY) {
    try {
      replay();
    } catch (e) {
      fail(e);
    }
  }
}

/** A research tracking-log event; keys are snake_cased at every depth. Always resolves. */
export function sendTrackingLogEvent(eventName, properties = {}) {
  call(
    () => wasm.sendTrackingLogEvent(eventName, properties),
    () => [0, eventName, undefined, snapshot(properties), Date.now(), href()],
  );
  return resolved();
}

/** A Segment track event. */
export function sendTrackEvent(eventName, properties) {
  call(
    () => wasm.sendTrackEvent(eventName, properties),
    () => [1, eventName, undefined, snapshot(properties), Date.now(), href()],
  );
}

/** A Segment page event. */
export function sendPageEvent(category, name, properties) {
  call(
    () => wasm.sendPageEvent(category, name, properties),
    () => [2, name, category, snapshot(properties), Date.now(), href()],
  );
}

/** Declares the signed-in user; throws without a user id. */
export function identifyAuthenticatedUser(userId, traits) {
  if (!userId) throw new Error('UserId is required for identifyAuthenticatedUser.');
  call(
    () => wasm.identifyAuthenticatedUser(userId, traits),
    () => [3, userId, undefined, snapshot(traits), Date.now(), href()],
  );
}

/** Declares an anonymous visitor (forgets a signed-in user seen before). */
export function identifyAnonymousUser(traits) {
  call(
    () => wasm.identifyAnonymousUser(traits),
    () => [4, undefined, undefined, snapshot(traits), Date.now(), href()],
  );
  return resolved();
}

/** The legacy Logger.log(event_type, data): a tracking-log event, data kept as given. */
export function logLegacy(eventType, data) {
  call(
    () => wasm.logLegacy(eventType, data),
    () => [5, eventType, undefined, snapshot(data), Date.now(), href()],
  );
  return resolved();
}

/** Sends what is queued now; resolves when delivered or when the attempt failed. */
export function flush() {
  boot();
  if (live()) {
    try {
      // Resolves also if the module stops before it answers (`fail` calls `flushing`).
      let done;
      const answer = new Promise((resolve) => {
        done = () => {
          flushing.delete(done);
          resolve();
        };
      });
      flushing.add(done);
      wasm.flush(done);
      return answer;
    } catch (e) {
      fail(e);
    }
  }
  if (state === LOADING && configured) return new Promise((r) => waiting.push(r));
  return resolved();
}

/** Forgets the user id and starts a new anonymous id (sign-out). */
export function reset() {
  call(() => wasm.reset(), () => [6, undefined, undefined, undefined, 0, ''], undefined, false);
}

/** Counters: enqueued, sent, retried, dropped by reason, and the queue's state. */
export function getStats() {
  let stats;
  if (live()) {
    try {
      stats = wasm.getStats();
    } catch (e) {
      fail(e);
    }
  }
  stats = stats || { configured, dropped: {} };
  stats.ready = state === READY;
  stats.loading = state === LOADING;
  stats.failed = state === FAILED;
  if (state === FAILED) stats.error = String(loadError && (loadError.message || loadError));
  stats.pending = pending.length;
  stats.dropped.load_failed = failedCalls;
  stats.dropped.pending_overflow = overflow;
  stats.lost = (stats.lost || 0) + failedCalls + overflow;
  return stats;
}
