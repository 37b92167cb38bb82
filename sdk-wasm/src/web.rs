//! The browser, as the SDK sees it: the functions of `host.js` (I/O, clock, random
//! numbers, the browser's own JSON and string case).

use alloc::string::String;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

#[wasm_bindgen(module = "/src/host.js")]
extern "C" {
    /// Starts a tracker's host object: listens for `pagehide`, `visibilitychange` and
    /// `online`, and reports them (and timers and responses) to `cb(kind, token, status, text)`.
    #[wasm_bindgen(js_name = hostNew)]
    pub fn host_new(cb: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = hostStop)]
    pub fn host_stop(h: &JsValue);
    #[wasm_bindgen(js_name = hostTimer)]
    pub fn host_timer(h: &JsValue, kind: u32, ms: f64) -> f64;
    #[wasm_bindgen(js_name = hostClear)]
    pub fn host_clear(h: &JsValue, id: f64);
    /// `fetch(url, {method: 'POST', body, credentials: 'include'})`, reported as kind 7.
    #[wasm_bindgen(js_name = hostSend)]
    pub fn host_send(h: &JsValue, url: &str, body: &str, token: u32, timeout_ms: u32);
    /// `navigator.sendBeacon(url, body)` (or `fetch` with `keepalive`); whether the browser took it.
    #[wasm_bindgen(js_name = hostBeacon)]
    pub fn host_beacon(url: &str, body: &str) -> bool;

    #[wasm_bindgen(js_name = storeOk)]
    pub fn store_ok() -> bool;
    #[wasm_bindgen(js_name = storeGet)]
    pub fn store_get(key: &str) -> Option<String>;
    #[wasm_bindgen(js_name = storeSet)]
    pub fn store_set(key: &str, value: &str) -> bool;
    #[wasm_bindgen(js_name = storeDel)]
    pub fn store_del(key: &str);
    #[wasm_bindgen(js_name = storeKeys)]
    pub fn store_keys(prefix: &str) -> String;

    /// `Date.now()`.
    pub fn now() -> f64;
    /// `document.URL` (`location.href`) (0) or `document.referrer` (1).
    pub fn page(which: u32) -> String;
    /// `navigator.onLine`.
    pub fn online() -> bool;
    /// `crypto.getRandomValues(buf)`.
    pub fn random(buf: &mut [u8]);
    /// `JSON.stringify(v)`: a string, `undefined` for nothing, `null` when it threw.
    pub fn stringify(v: &JsValue) -> JsValue;
    /// `s.toLowerCase()`.
    pub fn lower(s: &str) -> String;
    /// `o[k]` for an object `o`, else `undefined`; never throws.
    pub fn opt(o: &JsValue, k: &str) -> JsValue;
    /// The options of `configure`, as text (see `Config::apply`).
    #[wasm_bindgen(js_name = readOptions)]
    pub fn read_options(o: &JsValue) -> String;
    /// The `getStats()` object from the comma-separated counters.
    #[wasm_bindgen(js_name = statsObject)]
    pub fn stats_object(values: &str, configured: bool) -> JsValue;
    /// `console.warn(a, b)`.
    pub fn warn(a: &str, b: &str);
    /// A promise carrying its resolve function as `.r`.
    pub fn deferred() -> JsValue;
    /// Calls a function, ignoring what it throws.
    pub fn call(f: &JsValue);
    /// `Promise.resolve()`.
    pub fn resolved() -> JsValue;
    /// `new Error(message)`.
    pub fn error(message: &str) -> JsValue;
}

/// `JSON.stringify(value)` as text: `Ok(None)` for `undefined`, `Err` when it threw.
#[allow(clippy::result_unit_err)]
pub fn stringify_value(value: &JsValue) -> Result<Option<String>, ()> {
    if value.is_undefined() {
        return Ok(None);
    }
    let out = stringify(value);
    if out.is_null() {
        return Err(());
    }
    Ok(out.as_string())
}

/// Lower-cases a snake-case word with non-ASCII code units as JavaScript does. Words
/// never hold lone surrogates (lodash's word patterns do not match them).
pub fn lower_case(word: &[u16]) -> alloc::vec::Vec<u16> {
    lower(&String::from_utf16_lossy(word))
        .encode_utf16()
        .collect()
}

/// Random bytes from `crypto.getRandomValues`, fetched 256 at a time.
pub struct Random {
    buf: [u8; 256],
    pos: usize,
}

impl Default for Random {
    fn default() -> Self {
        Random::new()
    }
}

impl Random {
    pub fn new() -> Random {
        Random {
            buf: [0; 256],
            pos: 256,
        }
    }

    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            if self.pos >= self.buf.len() {
                random(&mut self.buf);
                self.pos = 0;
            }
            *b = self.buf[self.pos];
            self.pos += 1;
        }
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        self.fill(&mut out);
        out
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        f64::from(u32::from_le_bytes(self.bytes::<4>())) / 4_294_967_296.0
    }
}
