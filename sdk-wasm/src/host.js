// The browser side of the SDK: timers, fetch, sendBeacon, localStorage, listeners.
//
// The Rust tracker decides everything (what to send, when, what to retry, what to
// persist or evict); these functions only perform I/O and report back through one
// callback per tracker, always asynchronously (never from inside a call the Rust side
// is making). Each one catches what the page's environment may throw (a wrapped
// `fetch`, a disabled `localStorage`, a replaced `console`).
//
// Callback kinds: 1 flush timer, 2 persist timer, 3 retry timer, 4 hidden, 5 pagehide,
// 6 online, 7 response (token, HTTP status or 0 for a network error, and the
// `Retry-After` header or the comma-joined ids the server rejected).

const noop = () => {};

export function hostNew(cb) {
  const h = { cb, t: new Set(), l: [] };
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
        if (!r.ok) return done(r.status, r.headers.get('Retry-After'));
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

export function href() {
  try {
    return String(location.href);
  } catch (e) {
    return '';
  }
}

export function referrer() {
  try {
    return String(document.referrer);
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

export function parse(s) {
  return JSON.parse(s);
}

// A name or id argument: strings as they are, anything else through String(), or undefined.
export function text(v) {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return undefined;
  try {
    return String(v);
  } catch (e) {
    return undefined;
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

// An array option of strings, joined by newlines (undefined when not an array).
export function optList(o, k) {
  const v = opt(o, k);
  return Array.isArray(v) ? v.filter((x) => typeof x === 'string').join('\n') : undefined;
}

// Retry-After in ms: delay-seconds or an HTTP date; -1 when absent or unreadable.
export function retryAfter(v) {
  if (!v) return -1;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? -1 : Math.max(0, at - Date.now());
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
