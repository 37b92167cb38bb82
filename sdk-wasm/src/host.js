// The browser side of the SDK: timers, fetch, sendBeacon, localStorage, listeners.
//
// The Rust tracker decides everything (what to send, when, what to retry, what to
// persist or evict); these functions only perform I/O and report back through one
// callback per tracker, always asynchronously (never from inside a call the Rust side
// is making). Each one catches what the page's environment may throw (a wrapped
// `fetch`, a disabled `localStorage`, a replaced `console`).
//
// Callback kinds: 1 flush timer, 2 persist timer, 3 retry timer, 4 hidden, 5 pagehide,
// 6 online, 7 response (token, HTTP status or 0 for a network error, and `Retry-After`
// in milliseconds or the comma-joined ids the server rejected).

const noop = () => {};

export function hostNew(cb) {
  const h = { t: new Set(), l: [] };
  // A trap inside the tracker must not surface as an uncaught error on the page (error
  // trackers report those): it stops the tracker's callbacks instead.
  h.cb = (...args) => {
    try {
      cb(...args);
    } catch (e) {
      h.cb = noop;
      h.error = e;
    }
  };
  const on = (target, type, f) => {
    try {
      target.addEventListener(type, f);
      h.l.push([target, type, f]);
    } catch (e) { /* no such target (worker) */ }
  };
  if (typeof window !== 'undefined') {
    on(window, 'pagehide', () => h.cb(5, 0, 0));
    on(window, 'online', () => h.cb(6, 0, 0));
  }
  if (typeof document !== 'undefined') {
    on(document, 'visibilitychange', () => document.visibilityState === 'hidden' && h.cb(4, 0, 0));
  }
  return h;
}

export function hostStop(h) {
  h.l.forEach(([t, type, f]) => t.removeEventListener(type, f));
  h.t.forEach(clearTimeout);
  h.t.clear();
  h.cb = noop;
}

export function hostTimer(h, kind, ms) {
  const id = setTimeout(() => {
    h.t.delete(id);
    h.cb(kind, 0, 0);
  }, ms);
  h.t.add(id);
  return id;
}

export function hostClear(h, id) {
  clearTimeout(id);
  h.t.delete(id);
}

export function hostSend(h, url, body, token, timeout) {
  const done = (status, text) => h.cb(7, token, status, text);
  const init = { method: 'POST', body, credentials: 'include' };
  try {
    if (timeout) init.signal = AbortSignal.timeout(timeout);
  } catch (e) { /* old browser: no timeout */ }
  try {
    fetch(url, init).then(
      (r) => {
        if (!r.ok) return done(r.status, retryAfter(r.headers.get('Retry-After')));
        return r.json().then(
          (j) => done(r.status, (j && Array.isArray(j.results) ? j.results : [])
            .filter((x) => x && x.status === 'rejected').map((x) => x.id).join(',')),
          () => done(r.status, ''),
        );
      },
      () => done(0),
    );
  } catch (e) {
    Promise.resolve().then(() => done(0));
  }
}

// Retry-After in whole ms (delay-seconds or an HTTP date), '' when absent or unreadable.
function retryAfter(v) {
  if (!v) return '';
  const ms = /^\s*\d+\s*$/.test(v) ? Number(v) * 1000 : Date.parse(v) - Date.now();
  return Number.isNaN(ms) ? '' : String(Math.max(0, Math.round(ms)));
}

export function hostBeacon(url, body) {
  try {
    if (navigator.sendBeacon) return navigator.sendBeacon(url, body);
    fetch(url, { method: 'POST', body, credentials: 'include', keepalive: true }).catch(noop);
    return true;
  } catch (e) {
    return false;
  }
}

const store = () => {
  try {
    return window.localStorage || null;
  } catch (e) {
    return null;
  }
};

export function storeOk() {
  return !!store();
}

export function storeGet(k) {
  try {
    return store().getItem(k);
  } catch (e) {
    return null;
  }
}

export function storeSet(k, v) {
  try {
    store().setItem(k, v);
    return true;
  } catch (e) {
    return false;
  }
}

export function storeDel(k) {
  try {
    store().removeItem(k);
  } catch (e) { /* gone */ }
}

// The keys under `prefix`, sorted, joined by newlines.
export function storeKeys(prefix) {
  try {
    const s = store();
    const out = [];
    for (let i = 0; i < s.length; i++) {
      const k = s.key(i);
      if (k && k.startsWith(prefix)) out.push(k);
    }
    return out.sort().join('\n');
  } catch (e) {
    return '';
  }
}

export function now() {
  return Date.now();
}

// The page's URL (0; document.URL is location.href, read twenty times faster) or
// document.referrer (1).
export function page(which) {
  try {
    return String(which ? document.referrer : document.URL);
  } catch (e) {
    return '';
  }
}

export function online() {
  try {
    return navigator.onLine !== false;
  } catch (e) {
    return true;
  }
}

export function random(buf) {
  try {
    crypto.getRandomValues(buf);
  } catch (e) {
    for (let i = 0; i < buf.length; i++) buf[i] = Math.random() * 256;
  }
}

// JSON.stringify: the text, `undefined` when there is nothing to write, `null` when it throws.
export function stringify(v) {
  try {
    return JSON.stringify(v);
  } catch (e) {
    return null;
  }
}

export function lower(s) {
  return s.toLowerCase();
}

// An option: `o[k]`, or undefined when `o` is not an object or the getter throws.
export function opt(o, k) {
  try {
    return o !== null && typeof o === 'object' ? o[k] : undefined;
  } catch (e) {
    return undefined;
  }
}

// The options of configure() for Rust's `Config::apply`: endpoint, nameValidation,
// storageKey, sensitiveKeys, then the numbers, separated by U+0001; U+0002 marks an
// absent field, U+0003 a storageKey of false/null.
const NUMBERS = ('batchSize,batchBytes,maxEventBytes,maxQueueEvents,maxStorageBytes,unloadBytes,'
  + 'flushInterval,persistDelay,requestTimeout,maxRetries,retryBaseDelay,retryMaxDelay,maxRetryAfter').split(',');
export function readOptions(o) {
  const str = (v) => (typeof v === 'string' ? v : '\u0002');
  const key = opt(o, 'storageKey');
  const keys = opt(o, 'sensitiveKeys');
  return [
    str(opt(o, 'endpoint')),
    str(opt(o, 'nameValidation')),
    key === false || key === null ? '\u0003' : str(key),
    Array.isArray(keys) ? keys.filter((k) => typeof k === 'string').join('\n') : '\u0002',
    ...NUMBERS.map((k) => {
      const v = opt(o, k);
      return typeof v === 'number' && v >= 0 && v < 1e12 ? String(Math.floor(v)) : '';
    }),
  ].join('\u0001');
}

// getStats(): the counters of tracker.rs `stats_values`, named.
const STATS = ('enqueued,restored,sent,beaconed,retried,requests,queued,inflight,persisted,'
  + 'storageEvicted,storageErrors,invalidNames,lost').split(',');
const DROPS = 'size_limit,invalid_name,invalid_data,rejected,http_4xx,retry_exhausted,queue_full,storage_corrupt,busy'.split(',');
export function statsObject(text, configured) {
  const v = text.split(',').map(Number);
  const o = { configured };
  STATS.forEach((k, i) => { o[k] = v[i]; });
  let total = 0;
  o.dropped = {};
  DROPS.forEach((k, i) => { total += (o.dropped[k] = v[STATS.length + i]); });
  o.dropped.total = total;
  return o;
}

export function warn(a, b) {
  try {
    console.warn(a, b);
  } catch (e) { /* replaced console */ }
}

// A promise that carries its resolve function as `p.r`.
export function deferred() {
  let resolve;
  const p = new Promise((r) => { resolve = r; });
  p.r = resolve;
  return p;
}

export function call(f) {
  try {
    f();
  } catch (e) { /* the page's callback */ }
}

export function resolved() {
  return Promise.resolve();
}

export function error(message) {
  return new Error(message);
}
