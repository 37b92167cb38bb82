//! The browser side of the SDK: [`Io`] on `web-sys` and `js-sys` (fetch, sendBeacon,
//! localStorage, timers, `pagehide`/`visibilitychange`/`online`, crypto, `JSON`,
//! `CompressionStream`), options and stats as objects, and [`Tracker`], the handle the
//! page's functions use. A page call is captured as the page's own values (`Captured`)
//! and recorded in the tracker's own short tasks, or before anything else it does.
//!
//! Callbacks come back through one closure per tracker (timers, listeners, the steps of
//! a request are it, bound to their arguments), so nothing leaks per request; each
//! binding catches what the page's environment may throw (a wrapped `fetch`, a
//! disabled `localStorage`, a replaced `console`).

use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use js_sys::{Array, Function, JsString, Object, Promise, Reflect, JSON};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, Document, EventTarget, ReadableWritablePair, RequestCredentials, RequestInit, Storage, Window};

use crate::config::Config;
use crate::event::{push_u64, Kind};
use crate::io::{Io, Response, Timer, DROP_NAMES};
use crate::queue::Queue;
use crate::recorder::{Call, Recorder};

/// Most page calls held before they are recorded; one more records them all at once.
pub const MAX_CAPTURED: usize = 10_000;
/// The longest a deferred recording task runs before it yields to the page, ms.
const RECORD_SLICE_MS: f64 = 4.0;

#[wasm_bindgen]
extern "C" {
    /// `CompressionStream`, which web-sys has only among its unstable APIs.
    #[wasm_bindgen(js_name = CompressionStream)]
    type CompressionStream;
    #[wasm_bindgen(constructor, catch, js_class = "CompressionStream")]
    fn new(format: &str) -> Result<CompressionStream, JsValue>;

    /// A promise seen as a thenable: `then(onFulfilled, onRejected)` with functions
    /// (js-sys's `then` takes closures; these are bound ones).
    type Thenable;
    #[wasm_bindgen(method)]
    fn then(this: &Thenable, on_fulfilled: &JsValue, on_rejected: &JsValue);

    /// The global scope's `fetch`, catching what a page's wrapped `fetch` may throw.
    type Fetcher;
    #[wasm_bindgen(method, catch)]
    fn fetch(this: &Fetcher, url: &str, init: &RequestInit) -> Result<Promise, JsValue>;

    /// `console.warn`, catching what a page's replacement of it throws (a test setup
    /// that fails on warnings, say): web-sys's binding does not catch.
    #[wasm_bindgen(js_namespace = console, js_name = warn, catch)]
    fn console_warn(message: &str, detail: &str) -> Result<(), JsValue>;

    /// The document, for `URL` as the page's own string (web-sys's `url()` copies it
    /// into the module at once).
    type Page;
    #[wasm_bindgen(method, getter, catch, js_name = URL)]
    fn url(this: &Page) -> Result<JsValue, JsValue>;

    /// `globalThis`, read once: `web_sys::window()` looks for it four ways
    /// (`js_sys::global()`, 0.5 KB of wasm) for environments older than the SDK supports.
    #[wasm_bindgen(thread_local_v2, js_name = globalThis)]
    static GLOBAL_THIS: JsValue;
}

/// The page's window; `None` in a worker.
fn window() -> Option<Window> {
    GLOBAL_THIS.with(|g| g.clone().dyn_into::<Window>().ok())
}

fn then(promise: &Promise, on_fulfilled: &impl AsRef<JsValue>, on_rejected: &impl AsRef<JsValue>) {
    promise.unchecked_ref::<Thenable>().then(on_fulfilled.as_ref(), on_rejected.as_ref());
}

fn fetch(window: &Window, url: &str, init: &RequestInit) -> Result<Promise, JsValue> {
    window.unchecked_ref::<Fetcher>().fetch(url, init)
}

type Shared = RefCell<State>;

struct State {
    rec: Recorder,
    io: BrowserIo,
}

/// Runs `f` on the tracker behind `weak`, unless it is gone or busy (a callback from
/// inside a call the tracker is making).
fn with(weak: &Weak<Shared>, f: impl FnOnce(&mut Recorder, &mut BrowserIo)) {
    if let Some(rc) = weak.upgrade() {
        if let Ok(mut state) = rc.try_borrow_mut() {
            let State { rec, io } = &mut *state;
            f(rec, io);
        }
    }
}

/// What the one callback of a tracker is called for (its first argument).
#[derive(Clone, Copy)]
#[repr(u32)]
enum Cb {
    Flush = 0,
    Persist = 1,
    Retry = 2,
    /// (token, the compressed body, or the text when compression failed)
    Payload,
    /// (token, the `Response`)
    Fetched,
    /// (token, status, the JSON body or undefined)
    Body,
    /// (token, the error): a network error, a timeout
    Failed,
    Pagehide,
    Online,
    Visibility,
    /// Record the captured calls (a slice of them).
    Record,
}

const CALLS: [Cb; 11] = [
    Cb::Flush,
    Cb::Persist,
    Cb::Retry,
    Cb::Payload,
    Cb::Fetched,
    Cb::Body,
    Cb::Failed,
    Cb::Pagehide,
    Cb::Online,
    Cb::Visibility,
    Cb::Record,
];

/// The tracker's one closure (timers, listeners and the steps of a request are it,
/// bound to their arguments), and the listeners it is registered as.
struct Callbacks {
    /// Kept alive for `function`.
    _closure: Closure<dyn FnMut(u32, JsValue, JsValue, JsValue)>,
    /// The closure as the browser calls it: through the page entry's guard, if any.
    function: Function,
    listeners: Vec<(EventTarget, &'static str, Function)>,
}

impl Callbacks {
    /// The callback with its leading arguments bound: `kind`, then `args`.
    fn bound(&self, kind: Cb, args: &[&JsValue]) -> JsValue {
        let f = &self.function;
        let kind = JsValue::from(kind as u32);
        match args {
            [] => f.bind1(&JsValue::NULL, &kind).into(),
            [a] => f.bind2(&JsValue::NULL, &kind, a).into(),
            [a, b, ..] => f.bind3(&JsValue::NULL, &kind, a, b).into(),
        }
    }
}

fn on_call(rec: &mut Recorder, io: &mut BrowserIo, kind: u32, a: JsValue, b: JsValue, c: JsValue) {
    let token = a.as_f64().unwrap_or(0.0) as u32;
    let call = CALLS.get(kind as usize);
    match call {
        Some(Cb::Record) => {
            io.record_timer = None;
            return io.record_captured(rec, Some(RECORD_SLICE_MS));
        }
        // The unload flush takes every call made before it.
        Some(Cb::Pagehide | Cb::Visibility) => io.record_captured(rec, None),
        _ => {}
    }
    match call {
        Some(&Cb::Flush) => io.fired(rec, Timer::Flush),
        Some(&Cb::Persist) => io.fired(rec, Timer::Persist),
        Some(&Cb::Retry) => io.fired(rec, Timer::Retry),
        Some(Cb::Payload) => io.fetch(token, &b),
        Some(Cb::Fetched) => io.fetched(rec, token, b),
        Some(Cb::Body) => rec.on_response(token, &response_of(b.as_f64().unwrap_or(0.0) as u16, None, &c), io),
        Some(Cb::Failed) => rec.on_response(token, &Response::default(), io),
        Some(Cb::Pagehide) => rec.unload(true, io),
        Some(Cb::Online) => rec.on_online(io),
        // `document.hidden` is `visibilityState === 'hidden'`, without the enum's conversion.
        Some(Cb::Visibility) if document_of(io).is_some_and(|d| d.hidden()) => rec.unload(false, io),
        Some(Cb::Visibility | Cb::Record) | None => {}
    }
}

pub struct BrowserIo {
    window: Option<Window>,
    storage: Option<Storage>,
    url: String,
    timeout_ms: f64,
    gzip: bool,
    timers: [Option<i32>; 3],
    callbacks: Option<Callbacks>,
    waiters: Vec<(u32, Function)>,
    next_waiter: u32,
    document: Option<Document>,
    random: [u8; 256],
    random_at: usize,
    /// Page calls not yet recorded, oldest first (see [`Captured`]).
    captured: Vec<Captured>,
    record_timer: Option<i32>,
}

/// A page call as it was made, its values kept as the page's own (nothing copied into
/// the module) until the tracker records it: in a task of its own soon after, or
/// before anything else the tracker does. The calling path pays for the snapshot only.
struct Captured {
    kind: Kind,
    name: JsValue,
    category: JsValue,
    /// The `JSON.stringify` text, `undefined` for none; `Err` when it threw.
    data: Result<JsValue, ()>,
    snake: bool,
    time: f64,
    page: JsValue,
}

impl Captured {
    fn into_call(self) -> Call {
        let (data, unserializable) = match self.data {
            Ok(d) => (d.as_string(), false),
            Err(()) => (None, true),
        };
        Call {
            kind: self.kind,
            name: text(&self.name),
            category: text(&self.category),
            data,
            unserializable,
            snake: self.snake,
            time: self.time,
            page: self.page.as_string().unwrap_or_default(),
        }
    }
}

/// A name or id argument: a string as it is, an integer in decimal (user ids are
/// numbers in frontend-platform), anything else is no name.
pub fn text(v: &JsValue) -> Option<String> {
    if let Some(s) = v.as_string() {
        return Some(s);
    }
    let n = v.as_f64()?;
    if !(0.0..9.0e15).contains(&n) || n != (n as u64) as f64 {
        return None;
    }
    let mut s = String::new();
    push_u64(&mut s, n as u64);
    Some(s)
}

impl BrowserIo {
    fn new(cfg: &Config) -> BrowserIo {
        let window = window();
        let storage = match &window {
            Some(w) if cfg.storage_key.is_some() => w.local_storage().ok().flatten(),
            _ => None,
        };
        let gzip = cfg.gzip && window.as_ref().is_some_and(|w| Reflect::has(w, &JsValue::from_str("CompressionStream")).unwrap_or(false));
        BrowserIo {
            window,
            storage,
            url: batch_url(&cfg.endpoint),
            timeout_ms: cfg.request_timeout_ms,
            gzip,
            timers: [None; 3],
            callbacks: None,
            waiters: Vec::new(),
            next_waiter: 1,
            document: None,
            random: [0; 256],
            random_at: 256,
            captured: Vec::new(),
            record_timer: None,
        }
    }

    /// Creates the tracker's callback, wrapped by `guard` (a function of a function) when
    /// one is given, and registers its listeners.
    fn listen(&mut self, weak: &Weak<Shared>, guard: Option<&Function>) {
        let weak = weak.clone();
        let closure = Closure::<dyn FnMut(u32, JsValue, JsValue, JsValue)>::new(move |kind: u32, a: JsValue, b: JsValue, c: JsValue| {
            with(&weak, |rec, io| on_call(rec, io, kind, a, b, c))
        });
        let raw: &Function = closure.as_ref().unchecked_ref();
        let function = guard
            .and_then(|g| g.call1(&JsValue::NULL, raw).ok())
            .filter(JsValue::is_function)
            .map_or_else(|| raw.clone(), JsCast::unchecked_into);
        let mut callbacks = Callbacks { _closure: closure, function, listeners: Vec::new() };
        let window = self.window.clone();
        let document = window.as_ref().and_then(Window::document);
        self.document = document.clone();
        let targets: [(Option<EventTarget>, &'static str, Cb); 3] = [
            (window.clone().map(Into::into), "pagehide", Cb::Pagehide),
            (window.map(Into::into), "online", Cb::Online),
            (document.map(Into::into), "visibilitychange", Cb::Visibility),
        ];
        for (target, kind, call) in targets {
            let Some(target) = target else { continue };
            let f: Function = callbacks.bound(call, &[]).unchecked_into();
            if target.add_event_listener_with_callback(kind, &f).is_ok() {
                callbacks.listeners.push((target, kind, f));
            }
        }
        self.callbacks = Some(callbacks);
    }

    fn fired(&mut self, rec: &mut Recorder, timer: Timer) {
        self.timers[timer as usize] = None;
        rec.on_timer(timer, self);
    }

    /// Records the captured calls in order: all of them, or as many as `budget_ms`
    /// allows, the rest in a later task.
    fn record_captured(&mut self, rec: &mut Recorder, budget_ms: Option<f64>) {
        if self.captured.is_empty() {
            return;
        }
        let start = js_sys::Date::now();
        let mut calls = core::mem::take(&mut self.captured).into_iter();
        for (done, call) in calls.by_ref().enumerate() {
            rec.record(call.into_call(), self);
            if budget_ms.is_some_and(|b| done % 32 == 31 && js_sys::Date::now() - start >= b) {
                break;
            }
        }
        // Nothing is captured while the tracker records (it is busy), so these are
        // still the oldest.
        for call in calls {
            self.captured.push(call);
        }
        if !self.captured.is_empty() {
            self.arm_recording();
        }
    }

    fn arm_recording(&mut self) {
        if self.record_timer.is_some() {
            return;
        }
        let (Some(window), Some(callbacks)) = (&self.window, &self.callbacks) else { return };
        let f: Function = callbacks.bound(Cb::Record, &[]).unchecked_into();
        self.record_timer = window.set_timeout_with_callback_and_timeout_and_arguments_0(&f, 0).ok();
    }

    fn stop(&mut self) {
        for t in [Timer::Flush, Timer::Persist, Timer::Retry] {
            self.disarm(t);
        }
        if let (Some(window), Some(id)) = (&self.window, self.record_timer.take()) {
            window.clear_timeout_with_handle(id);
        }
        if let Some(callbacks) = self.callbacks.take() {
            for (target, kind, f) in &callbacks.listeners {
                let _ = target.remove_event_listener_with_callback(kind, f);
            }
        }
    }

    /// Sends a body (compressed or text) with `fetch`.
    fn fetch(&mut self, token: u32, body: &JsValue) {
        let (Some(window), Some(callbacks)) = (&self.window, &self.callbacks) else { return };
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_credentials(RequestCredentials::Include);
        init.set_body(body);
        if !body.is_string() {
            let headers = Object::new();
            let _ = Reflect::set(&headers, &"Content-Type".into(), &"text/plain;charset=UTF-8".into());
            let _ = Reflect::set(&headers, &"Content-Encoding".into(), &"gzip".into());
            init.set_headers(&headers);
        }
        if self.timeout_ms > 0.0 {
            init.set_signal(Some(&web_sys::AbortSignal::timeout_with_f64(self.timeout_ms)));
        }
        let token = JsValue::from(token);
        let ok = callbacks.bound(Cb::Fetched, &[&token]);
        let err = callbacks.bound(Cb::Failed, &[&token]);
        let promise = fetch(window, &self.url, &init).unwrap_or_else(|e| Promise::reject(&e));
        then(&promise, &ok, &err);
    }

    fn fetched(&mut self, rec: &mut Recorder, token: u32, response: JsValue) {
        let Ok(response) = response.dyn_into::<web_sys::Response>() else {
            return rec.on_response(token, &Response::default(), self);
        };
        let status = response.status();
        // The results of a 2xx and the reason of a refusal are in the JSON body.
        if (200..300).contains(&status) || status == 400 || status == 413 {
            if let (Some(callbacks), Ok(json)) = (&self.callbacks, response.json()) {
                let f = callbacks.bound(Cb::Body, &[&token.into(), &status.into()]);
                then(&json, &f, &f);
                return;
            }
        }
        let retry_after = response.headers().get("Retry-After").ok().flatten().and_then(|v| retry_after_ms(&v));
        rec.on_response(token, &response_of(status, retry_after, &JsValue::UNDEFINED), self);
    }
}

fn batch_url(endpoint: &str) -> String {
    let mut url = String::from(endpoint);
    url.push_str("/v1/batch");
    url
}

fn document_of(io: &BrowserIo) -> Option<Document> {
    io.document.clone()
}

/// Calls a binding that may throw (web-sys marks them `catch`), as an `Option`.
fn catch<T>(f: impl FnOnce() -> Result<T, JsValue>) -> Option<T> {
    f().ok()
}

/// `Retry-After` in ms from now: delay-seconds or an HTTP date.
fn retry_after_ms(value: &str) -> Option<f64> {
    // HTTP's optional whitespace is ASCII (`trim` would bring Unicode's tables).
    let v = value.trim_ascii();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return crate::config::whole_number(v).map(|s| s * 1000.0);
    }
    let at = js_sys::Date::parse(v);
    (!at.is_nan()).then(|| (at - js_sys::Date::now()).max(0.0))
}

/// The parts of a reply the queue reads: the rejected ids of a 2xx, the `error` of a refusal.
fn response_of(status: u16, retry_after_ms: Option<f64>, json: &JsValue) -> Response {
    let get = |v: &JsValue, k: &str| {
        if v.is_object() {
            Reflect::get(v, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
        } else {
            JsValue::UNDEFINED
        }
    };
    let mut response = Response { status, retry_after_ms, error: get(json, "error").as_string(), rejected: Vec::new() };
    if let Ok(results) = get(json, "results").dyn_into::<Array>() {
        for r in results.iter() {
            if get(&r, "status").as_string().as_deref() == Some("rejected") {
                if let Some(id) = get(&r, "id").as_string() {
                    response.rejected.push(id);
                }
            }
        }
    }
    response
}

impl Io for BrowserIo {
    fn now(&mut self) -> f64 {
        js_sys::Date::now()
    }

    fn random_bytes(&mut self, out: &mut [u8]) {
        for b in out {
            if self.random_at >= self.random.len() {
                // 256 bytes at a time: one call into the browser per 25 events.
                let crypto = self.window.as_ref().and_then(|w| w.crypto().ok());
                if crypto.and_then(|c| c.get_random_values_with_u8_array(&mut self.random).ok()).is_none() {
                    for r in self.random.iter_mut() {
                        *r = (js_sys::Math::random() * 256.0) as u8;
                    }
                }
                self.random_at = 0;
            }
            *b = self.random[self.random_at];
            self.random_at += 1;
        }
    }

    fn online(&mut self) -> bool {
        self.window.as_ref().is_none_or(|w| w.navigator().on_line())
    }

    fn send(&mut self, token: u32, body: &str) {
        let Some(callbacks) = &self.callbacks else { return };
        if self.gzip && body.len() > 1024 {
            // new Response(new Blob([body]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer()
            let compressed = catch(|| {
                let blob = Blob::new_with_str_sequence(&Array::of1(&JsValue::from_str(body)))?;
                let pair: ReadableWritablePair = CompressionStream::new("gzip")?.unchecked_into();
                let stream = blob.stream().pipe_through(&pair);
                web_sys::Response::new_with_opt_readable_stream(Some(&stream))?.array_buffer()
            });
            if let Some(compressed) = compressed {
                let token = JsValue::from(token);
                let ok = callbacks.bound(Cb::Payload, &[&token]);
                // If compression fails the text goes as it is.
                let fallback = callbacks.bound(Cb::Payload, &[&token, &JsValue::from_str(body)]);
                then(&compressed, &ok, &fallback);
                return;
            }
        }
        self.fetch(token, &JsValue::from_str(body));
    }

    fn beacon(&mut self, body: &str) -> bool {
        let Some(window) = &self.window else { return false };
        match window.navigator().send_beacon_with_opt_str(&self.url, Some(body)) {
            Ok(taken) => taken,
            Err(_) => {
                // No sendBeacon: a keepalive fetch, which also outlives the page.
                let init = RequestInit::new();
                init.set_method("POST");
                init.set_credentials(RequestCredentials::Include);
                let _ = Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
                init.set_body(&JsValue::from_str(body));
                fetch(window, &self.url, &init).is_ok()
            }
        }
    }

    fn load(&mut self, key: &str) -> Option<String> {
        self.storage.as_ref()?.get_item(key).ok().flatten()
    }

    fn store(&mut self, key: &str, value: &str) -> bool {
        self.storage.as_ref().is_some_and(|s| s.set_item(key, value).is_ok())
    }

    fn unstore(&mut self, key: &str) {
        if let Some(s) = &self.storage {
            let _ = s.remove_item(key);
        }
    }

    fn keys(&mut self, prefix: &str) -> Vec<String> {
        let Some(s) = &self.storage else { return Vec::new() };
        let keys = Array::new();
        for i in 0..s.length().unwrap_or(0) {
            if let Some(key) = s.key(i).ok().flatten().filter(|k| k.starts_with(prefix)) {
                keys.push(&JsValue::from(key));
            }
        }
        // JavaScript's sort: a sort in Rust would add 3 KB to the module.
        strings(&keys.sort())
    }

    fn arm(&mut self, timer: Timer, ms: f64) {
        self.disarm(timer);
        let (Some(window), Some(callbacks)) = (&self.window, &self.callbacks) else { return };
        let f: Function = callbacks.bound(CALLS[timer as usize], &[]).unchecked_into();
        self.timers[timer as usize] = window.set_timeout_with_callback_and_timeout_and_arguments_0(&f, ms as i32).ok();
    }

    fn disarm(&mut self, timer: Timer) {
        if let (Some(window), Some(id)) = (&self.window, self.timers[timer as usize].take()) {
            window.clear_timeout_with_handle(id);
        }
    }

    fn settled(&mut self, waiter: u32) {
        if let Some(at) = self.waiters.iter().position(|(id, _)| *id == waiter) {
            let (_, resolve) = self.waiters.swap_remove(at);
            call_done(&resolve);
        }
    }

    fn warn(&mut self, message: &str, detail: &str) {
        let _ = console_warn(message, detail);
    }

    fn lower_case(&self, word: &[u16]) -> Vec<u16> {
        lower_case(word)
    }
}

/// `String.prototype.toLowerCase` on UTF-16 code units, which cross as they are (no
/// UTF-8 decoding and encoding in the module).
pub fn lower_case(word: &[u16]) -> Vec<u16> {
    let lower = JsString::from_char_code(word).to_lower_case();
    let mut units = Vec::with_capacity(word.len());
    for i in 0..lower.length() {
        units.push(lower.char_code_at(i) as u16);
    }
    units
}

/// `JSON.stringify(value)` as text: `Ok(None)` for `undefined` (and what stringifies
/// to nothing), `Err` when it throws (a cycle, a BigInt, a throwing getter).
#[allow(clippy::result_unit_err)]
pub fn stringify(value: &JsValue) -> Result<Option<String>, ()> {
    snapshot(value).map(|text| text.as_string())
}

/// [`stringify`] left as the page's string (`undefined` for none), not copied into
/// the module.
fn snapshot(value: &JsValue) -> Result<JsValue, ()> {
    if value.is_undefined() {
        return Ok(JsValue::UNDEFINED);
    }
    JSON::stringify(value).map(Into::into).map_err(drop)
}

/// The non-empty strings of an array, in order (anything else in it is skipped). A
/// loop and `push`: an iterator's `collect` brought a growth path of its own per caller.
fn strings(array: &Array) -> Vec<String> {
    let mut out = Vec::new();
    for item in array.iter() {
        if let Some(s) = item.as_string().filter(|s| !s.is_empty()) {
            out.push(s);
        }
    }
    out
}

/// Calls a `flush` caller's `done` callback (`call1`, the binding the guard uses too:
/// one import for both).
pub fn call_done(done: &Function) {
    let _ = done.call1(&JsValue::UNDEFINED, &JsValue::UNDEFINED);
}

/// `document.URL` (`location.href`, read twenty times faster), or `""`.
pub fn page_url() -> String {
    // Through `Page`, the binding `capture` reads it with: one import, not two.
    let url = window().and_then(|w| w.document()).and_then(|d| d.unchecked_ref::<Page>().url().ok());
    url.and_then(|u| u.as_string()).unwrap_or_default()
}

fn referrer() -> String {
    window().and_then(|w| w.document()).map(|d| d.referrer()).unwrap_or_default()
}

/// Reads `configure(options)` over `cfg`; absent or mistyped options keep their value.
/// `storageKey` only counts at start (`with_storage_key`).
pub fn read_options(cfg: &mut Config, options: &JsValue, with_storage_key: bool) {
    if !options.is_object() {
        return;
    }
    let get = |k: &str| Reflect::get(options, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    if let Some(endpoint) = get("endpoint").as_string() {
        cfg.set_endpoint(&endpoint);
    }
    if let Some(mode) = get("nameValidation").as_string() {
        cfg.set_name_mode(&mode);
    }
    if with_storage_key {
        let key = get("storageKey");
        if key.is_null() || key.as_bool() == Some(false) {
            cfg.storage_key = None;
        } else if let Some(key) = key.as_string().filter(|k| !k.is_empty()) {
            cfg.storage_key = Some(key);
        }
    }
    if let Ok(keys) = get("sensitiveKeys").dyn_into::<Array>() {
        cfg.sensitive_keys = strings(&keys);
    }
    if let Some(gzip) = get("gzip").as_bool() {
        cfg.gzip = gzip;
    }
    for (name, field) in cfg.numbers_mut() {
        if let Some(n) = get(name).as_f64() {
            if (0.0..1e12).contains(&n) {
                *field = (n as u64) as f64;
            }
        }
    }
}

/// The counters of `getStats()` as an object, with `lost` (see [`Tracker::stats_with`]).
fn stats_object(queue: &Queue, lost: u64) -> JsValue {
    let stats = &queue.stats;
    let o = Object::new();
    let set = |o: &Object, k: &str, v: u64| drop(Reflect::set(o, &JsValue::from_str(k), &JsValue::from_f64(v as f64)));
    let _ = Reflect::set(&o, &"configured".into(), &JsValue::TRUE);
    for (k, v) in stats.named() {
        set(&o, k, v);
    }
    set(&o, "queued", queue.len() as u64);
    set(&o, "inflight", queue.inflight() as u64);
    set(&o, "persisted", queue.persisted());
    set(&o, "lost", lost);
    let dropped = Object::new();
    for (k, v) in DROP_NAMES.iter().zip(stats.dropped.iter()) {
        set(&dropped, k, *v);
    }
    set(&dropped, "total", stats.dropped_total());
    let _ = Reflect::set(&o, &"dropped".into(), &dropped);
    o.into()
}

/// A tracker instance. The page's functions use one global instance; tests make their own.
#[derive(Clone)]
pub struct Tracker(Rc<Shared>);

impl Tracker {
    /// Starts a tracker: restores events persisted by earlier pages, listens for
    /// `visibilitychange`, `pagehide` and `online`, and sends what it restored.
    pub fn new(cfg: Config) -> Tracker {
        Tracker::guarded(cfg, None)
    }

    /// [`Tracker::new`] whose callbacks (timers, listeners, the steps of a request) the
    /// browser calls through `guard(callback)`: the page entry's wrapper, which stops
    /// the module when one throws instead of letting the error reach the page.
    pub fn guarded(cfg: Config, guard: Option<&Function>) -> Tracker {
        let rc = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let mut io = BrowserIo::new(&cfg);
            io.listen(weak, guard);
            let rec = Recorder::start(cfg, referrer(), &mut io);
            RefCell::new(State { rec, io })
        });
        Tracker(rc)
    }

    /// The configuration of `configure(options)` over the defaults.
    pub fn config_of(options: &JsValue) -> Config {
        let mut cfg = Config::default();
        read_options(&mut cfg, options, true);
        cfg
    }

    /// Runs `f` on the tracker once the calls captured before it are recorded.
    fn with<R>(&self, f: impl FnOnce(&mut Recorder, &mut BrowserIo) -> R) -> Option<R> {
        let mut state = self.0.try_borrow_mut().ok()?;
        let State { rec, io } = &mut *state;
        io.record_captured(rec, None);
        Some(f(rec, io))
    }

    /// Takes a page call on the calling path: the snapshot of its properties
    /// (`JSON.stringify`, which must see them as they are now), the time and the page;
    /// the rules and the queue run later (see `Captured`). `false` when the tracker
    /// was busy (a re-entrant call from inside the SDK) and the call was dropped.
    pub fn capture(&self, kind: Kind, name: JsValue, category: JsValue, properties: &JsValue, snake: bool) -> bool {
        // Before borrowing: a `toJSON` may call the SDK.
        let data = snapshot(properties);
        let Ok(mut state) = self.0.try_borrow_mut() else { return false };
        let State { rec, io } = &mut *state;
        let page = io.document.as_ref().and_then(|d| d.unchecked_ref::<Page>().url().ok()).unwrap_or(JsValue::UNDEFINED);
        io.captured.push(Captured { kind, name, category, data, snake, time: js_sys::Date::now(), page });
        if io.captured.len() > MAX_CAPTURED {
            io.record_captured(rec, None);
        } else {
            io.arm_recording();
        }
        true
    }

    /// Records one call; `false` when the tracker was busy (a re-entrant call from
    /// inside the SDK) and the call was dropped.
    pub fn record(&self, call: Call) -> bool {
        self.with(|rec, io| rec.record(call, io)).is_some()
    }

    /// `identifyAuthenticatedUser` (`Some(user id)`) or `identifyAnonymousUser` (`None`).
    pub fn identify(&self, user_id: Option<String>, traits: Option<String>, time: f64, page: String) -> bool {
        self.with(|rec, io| rec.identify(user_id, traits, time, page, io)).is_some()
    }

    /// Replaces the settings (the storage key is kept: it is read once, at start).
    pub fn reconfigure(&self, options: &JsValue) {
        self.with(|rec, io| {
            read_options(&mut rec.cfg, options, false);
            io.url = batch_url(&rec.cfg.endpoint);
            io.timeout_ms = rec.cfg.request_timeout_ms;
            io.gzip = io.gzip && rec.cfg.gzip;
        });
    }

    /// Calls `done` once the events queued now are settled, or the attempt to send
    /// them failed (they stay queued for a retry); at once when the tracker is busy.
    pub fn flush(&self, done: Function) {
        let queued = self.with(|rec, io| {
            let waiter = io.next_waiter;
            io.next_waiter = io.next_waiter.wrapping_add(1);
            io.waiters.push((waiter, done.clone()));
            rec.flush(waiter, io);
        });
        if queued.is_none() {
            call_done(&done);
        }
    }

    /// The counters of `getStats()`, as an object.
    pub fn stats(&self) -> JsValue {
        self.stats_with(0)
    }

    /// The counters with `lost`, the page-level count of calls lost before the tracker
    /// existed (or made while it was busy).
    pub fn stats_with(&self, lost: u64) -> JsValue {
        self.with(|rec, _| stats_object(&rec.queue, lost)).unwrap_or(JsValue::UNDEFINED)
    }

    /// Forgets the user id and mints a new anonymous id (Segment's `reset()`).
    pub fn reset(&self) {
        self.with(|rec, io| rec.reset(io));
    }

    /// The unload flush, as `pagehide` (`true`) or `visibilitychange`→hidden (`false`) runs it.
    pub fn unload(&self, pagehide: bool) {
        self.with(|rec, io| rec.unload(pagehide, io));
    }

    /// Writes every unpersisted event to storage now.
    pub fn persist_now(&self) {
        self.with(|rec, io| rec.persist_now(io));
    }

    /// Stops timers and listeners without sending or persisting anything: what a page
    /// that is killed leaves behind (tests use it to simulate a reload).
    pub fn shutdown(&self) {
        self.with(|rec, io| {
            rec.queue.stop(io);
            io.stop();
        });
    }

    /// The anonymous id (persisted across pages).
    pub fn anonymous_id(&self) -> String {
        self.0.try_borrow().map(|s| s.rec.anonymous_id().into()).unwrap_or_default()
    }

    /// Ids of the queued events, oldest first.
    pub fn queued_ids(&self) -> Vec<String> {
        self.with(|rec, _| rec.queue.ids()).unwrap_or_default()
    }
}
