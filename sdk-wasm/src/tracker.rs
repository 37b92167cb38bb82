//! The tracker: validation and scrubbing on the calling path, then a queue that
//! batches, persists, sends, retries and flushes on unload — all off the calling path.
//!
//! The calling path (`record`) does: name check, one rewrite pass over the
//! `JSON.stringify` text, id and timestamp, one `String` pushed on a queue, and at
//! most one `setTimeout` when a timer has to be armed. Everything else runs in timer
//! and promise callbacks:
//!
//! * **send**: one batch in flight at a time, oldest events first, `fetch` with
//!   `credentials: 'include'` and a text/plain body (no CORS pre-flight);
//! * **persist**: new events are appended to `localStorage` as chunks of at most
//!   [`CHUNK_BYTES`], one chunk per task; a chunk is removed once all its events are
//!   settled, and the oldest chunks are evicted (counted) beyond `max_storage_bytes`;
//! * **retry**: 429, 5xx and network errors back off exponentially with jitter, never
//!   sooner than `Retry-After`; other 4xx drop the batch (counted); `online` resumes;
//! * **unload**: on `visibilitychange`→hidden and `pagehide` the queue goes out with
//!   `navigator.sendBeacon` inside the 64 KiB keepalive budget, and what does not fit
//!   is written to storage at once, to be sent by the next page.

use alloc::borrow::ToOwned;
use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsValue;

use crate::event::{id_of_line, push_u64, rfc3339_ms, uuid_v4, uuid_v7, Kind};
use crate::prepare::{prepare, Draft, Limits, Refused};
use crate::fifo::Fifo;
use crate::json::pieces;
use crate::web;

/// Largest localStorage chunk written in one task.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// What to do with an event name that is not `namespace.object.action` (nor, for
/// tracking-log events, a legacy name such as `seq_goto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMode {
    Off,
    Warn,
    Reject,
}

/// Tracker settings; `configure(options)` sets them from camelCase options.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the ingest server; batches go to `{endpoint}/v1/batch`. `""`: same origin.
    pub endpoint: String,
    /// Most events per batch (`batchSize`).
    pub batch_events: f64,
    /// Most bytes per batch body (`batchBytes`); kept under 64 KiB so any batch can be beaconed.
    pub batch_bytes: f64,
    /// Longest wait before a partial batch is sent, ms (`flushInterval`).
    pub flush_interval_ms: f64,
    /// Largest event, bytes of JSON (`maxEventBytes`); larger events are dropped, never truncated.
    pub max_event_bytes: f64,
    /// Most events held in memory (`maxQueueEvents`); the oldest are dropped beyond it.
    pub max_queue_events: f64,
    /// localStorage key prefix (`storageKey`); `None` (option `false`) disables persistence.
    pub storage_key: Option<String>,
    /// Most bytes of queued events kept in localStorage (`maxStorageBytes`).
    pub max_storage_bytes: f64,
    /// Delay before new events are written to storage, ms (`persistDelay`).
    pub persist_delay_ms: f64,
    /// First retry delay, ms (`retryBaseDelay`); doubles per failure, with jitter.
    pub retry_base_ms: f64,
    /// Longest backoff delay, ms (`retryMaxDelay`); `Retry-After` may ask for more.
    pub retry_max_ms: f64,
    /// Longest `Retry-After` honoured, ms (`maxRetryAfter`).
    pub max_retry_after_ms: f64,
    /// Failed attempts (500, 502, 504, …) before a batch is dropped (`maxRetries`).
    /// 429, 503 and network errors retry without limit.
    pub max_retries: f64,
    /// Abort a batch request after this many ms (`requestTimeout`); retried as a network error.
    pub request_timeout_ms: f64,
    /// Bytes the unload flush may hand to `sendBeacon` (`unloadBytes`); Chrome allows
    /// 64 KiB of keepalive requests in flight per page.
    pub unload_bytes: f64,
    /// Name validation (`nameValidation`: `"off"`, `"warn"`, `"reject"`).
    pub name_mode: NameMode,
    /// Password-like keys beyond the built-in list (`sensitiveKeys`).
    pub sensitive_keys: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: String::new(),
            batch_events: 100.0,
            batch_bytes: 60_000.0,
            flush_interval_ms: 1000.0,
            max_event_bytes: 50_000.0,
            max_queue_events: 100_000.0,
            storage_key: Some("orgtracking".to_owned()),
            max_storage_bytes: 1_000_000.0,
            persist_delay_ms: 250.0,
            retry_base_ms: 1000.0,
            retry_max_ms: 60_000.0,
            max_retry_after_ms: 3_600_000.0,
            max_retries: 10.0,
            request_timeout_ms: 30_000.0,
            unload_bytes: 64_000.0,
            name_mode: NameMode::Warn,
            sensitive_keys: Vec::new(),
        }
    }
}

impl Config {
    /// Reads the options a page passes to `configure`; absent or mistyped options keep
    /// their current value. `storageKey` is only read by [`Config::from_js`].
    pub fn apply_js(&mut self, options: &JsValue) {
        self.apply(&web::read_options(options), false);
    }

    /// Applies host.js's `readOptions` text: fields separated by U+0001 (endpoint,
    /// nameValidation, storageKey, sensitiveKeys, then the numbers); U+0002 marks an
    /// absent field, U+0003 a `storageKey` of `false`/`null`.
    fn apply(&mut self, text: &str, with_storage_key: bool) {
        let mut fields = pieces(text, 1);
        let mut next = || fields.next().filter(|f| *f != "\u{2}");
        if let Some(endpoint) = next() {
            let mut e = endpoint;
            while let Some(t) = e.strip_suffix('/') {
                e = t;
            }
            self.endpoint = e.to_owned();
        }
        match next() {
            Some("off") => self.name_mode = NameMode::Off,
            Some("warn") => self.name_mode = NameMode::Warn,
            Some("reject") => self.name_mode = NameMode::Reject,
            _ => {}
        }
        match next() {
            Some(key) if with_storage_key => {
                self.storage_key = (!key.is_empty() && key != "\u{3}").then(|| key.to_owned());
            }
            _ => {}
        }
        if let Some(list) = next() {
            self.sensitive_keys = pieces(list, b'\n')
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
        }
        // The numbers, in host.js's order; whole numbers, empty where absent.
        let numbers = [
            &mut self.batch_events,
            &mut self.batch_bytes,
            &mut self.max_event_bytes,
            &mut self.max_queue_events,
            &mut self.max_storage_bytes,
            &mut self.unload_bytes,
            &mut self.flush_interval_ms,
            &mut self.persist_delay_ms,
            &mut self.request_timeout_ms,
            &mut self.max_retries,
            &mut self.retry_base_ms,
            &mut self.retry_max_ms,
            &mut self.max_retry_after_ms,
        ];
        for field in numbers {
            if let Some(n) = next().and_then(parse_whole) {
                *field = n;
            }
        }
    }

    fn batch_events(&self) -> usize {
        (self.batch_events as usize).max(1)
    }

    fn batch_bytes(&self) -> usize {
        (self.batch_bytes as usize).max(1024)
    }

    fn max_queue_events(&self) -> usize {
        (self.max_queue_events as usize).max(1)
    }

    /// Settings from `configure(options)` over the defaults, storage key included.
    pub fn from_js(options: &JsValue) -> Config {
        let mut cfg = Config::default();
        cfg.apply(&web::read_options(options), true);
        cfg
    }
}

/// A whole decimal number (`""` and other text: `None`).
pub fn parse_whole(text: &str) -> Option<f64> {
    if text.is_empty() || text.len() > 15 {
        return None;
    }
    text.bytes().try_fold(0f64, |n, b| {
        b.is_ascii_digit().then(|| n * 10.0 + f64::from(b - b'0'))
    })
}

/// Counters `getStats()` reports.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub enqueued: u64,
    pub restored: u64,
    pub sent: u64,
    pub beaconed: u64,
    pub retried: u64,
    pub requests: u64,
    pub storage_evicted: u64,
    pub storage_errors: u64,
    pub invalid_names: u64,
    pub dropped: [u64; DROP_REASONS],
}

/// Why events are dropped. `getStats().dropped` names them in this order (the names
/// live in host.js: `size_limit`, `invalid_name`, `invalid_data`, `rejected`, `http_4xx`,
/// `retry_exhausted`, `queue_full`, `storage_corrupt`, `busy`).
pub const DROP_REASONS: usize = 9;

/// Values in the `getStats()` array: 13 counters, then the drop reasons.
pub const STATS: usize = 13 + DROP_REASONS;

#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Drop {
    SizeLimit = 0,
    InvalidName,
    InvalidData,
    Rejected,
    Http4xx,
    RetryExhausted,
    QueueFull,
    StorageCorrupt,
    Busy,
}

/// One call, captured on the calling path.
pub struct Call {
    pub kind: Kind,
    pub name: Option<String>,
    pub category: Option<String>,
    /// `JSON.stringify(properties)`; `None` for `undefined`.
    pub data: Option<String>,
    /// `JSON.stringify` threw (a cycle, a BigInt, a throwing getter): the event is dropped.
    pub unserializable: bool,
    /// Snake-case the keys (`sendTrackingLogEvent`, not the legacy `Logger.log`).
    pub snake: bool,
    /// Unix ms of the call.
    pub time: f64,
    /// `location.href` at the call.
    pub page: String,
}

const NOT_PERSISTED: u32 = 0;
const NO_STORAGE: u32 = u32::MAX;

// Host callback kinds (see host.js).
const FLUSH_TIMER: u32 = 1;
const PERSIST_TIMER: u32 = 2;
const RETRY_TIMER: u32 = 3;
const HIDDEN: u32 = 4;
const PAGEHIDE: u32 = 5;
const ONLINE: u32 = 6;
const RESPONSE: u32 = 7;

#[derive(Default)]
struct Queued {
    seq: u64,
    /// The event's JSON; it starts with `{"id":"<uuid>"`.
    json: String,
    /// The storage chunk holding the event, [`NOT_PERSISTED`] or [`NO_STORAGE`].
    chunk: u32,
}

impl Queued {
    fn id(&self) -> &str {
        self.json.get(7..43).unwrap_or("")
    }
}

struct Chunk {
    id: u32,
    key: String,
    pending: u32,
    bytes: usize,
}

pub(crate) struct Inner {
    cfg: Config,
    /// The host object of `host.js` (timers, listeners, the callback); `NULL` once stopped.
    host: JsValue,
    storage: bool,
    queue: Fifo<Queued>,
    queued_bytes: usize,
    next_seq: u64,
    /// Events at the front of the queue that are in the request in flight.
    inflight: usize,
    /// Identifies the request in flight; responses to older requests are ignored.
    token: u32,
    flush_timer: Option<f64>,
    flush_now: bool,
    persist_timer: Option<f64>,
    retry_timer: Option<f64>,
    /// Consecutive failed attempts (backoff exponent).
    attempts: u32,
    /// Consecutive failures that count against `max_retries`.
    server_failures: u32,
    /// No request before this time (Unix ms): `Retry-After`.
    not_before: f64,
    offline: bool,
    /// Events at the back of the queue not yet written to storage.
    unpersisted: usize,
    chunks: Vec<Chunk>,
    next_chunk: u32,
    storage_bytes: usize,
    instance: String,
    waiters: Vec<(u64, JsValue)>,
    stats: Stats,
    user_id: Option<String>,
    anonymous_id: String,
    referrer: String,
    identified: bool,
    warnings: u32,
    rng: web::Random,
    stopped: bool,
}

/// A tracker instance. The page's functions use one global instance; tests make their own.
#[derive(Clone)]
pub struct Tracker(Rc<RefCell<Inner>>);

impl Tracker {
    /// Starts a tracker: restores events persisted by earlier pages, listens for
    /// `visibilitychange`, `pagehide` and `online`, and sends what it restored.
    pub fn new(cfg: Config) -> Tracker {
        let storage = cfg.storage_key.is_some() && web::store_ok();
        let mut rng = web::Random::new();
        let mut instance = String::new();
        push_u64(
            &mut instance,
            u64::from(u32::from_le_bytes(rng.bytes::<4>())),
        );
        let inner = Inner {
            cfg,
            host: JsValue::NULL,
            storage,
            queue: Fifo::new(),
            queued_bytes: 0,
            next_seq: 1,
            inflight: 0,
            token: 0,
            flush_timer: None,
            flush_now: false,
            persist_timer: None,
            retry_timer: None,
            attempts: 0,
            server_failures: 0,
            not_before: 0.0,
            offline: false,
            unpersisted: 0,
            chunks: Vec::new(),
            next_chunk: 1,
            storage_bytes: 0,
            instance,
            waiters: Vec::new(),
            stats: Stats::default(),
            user_id: None,
            anonymous_id: String::new(),
            referrer: web::page(1),
            identified: false,
            warnings: 0,
            rng,
            stopped: false,
        };
        let rc = Rc::new(RefCell::new(inner));
        let weak: Weak<RefCell<Inner>> = Rc::downgrade(&rc);
        let callback = Closure::<dyn FnMut(u32, u32, u32, Option<String>)>::new(
            move |kind, token, status, text| {
                if let Some(rc) = weak.upgrade() {
                    if let Ok(mut t) = rc.try_borrow_mut() {
                        t.on_host(kind, token, status, text);
                    }
                }
            },
        );
        let host = web::host_new(&callback.into_js_value());
        {
            if let Ok(mut t) = rc.try_borrow_mut() {
                t.host = host;
                t.load_identity();
                t.restore();
                if !t.queue.is_empty() {
                    t.send_now();
                }
            }
        }
        Tracker(rc)
    }

    /// Records one call; never throws. Returns `false` when the tracker was busy
    /// (a re-entrant call from inside the SDK) and the call was dropped.
    pub fn record(&self, call: Call) -> bool {
        match self.0.try_borrow_mut() {
            Ok(mut t) => {
                t.record(call);
                true
            }
            Err(_) => false,
        }
    }

    /// `identifyAuthenticatedUser` (`Some(user id)`) or `identifyAnonymousUser` (`None`).
    pub fn identify(
        &self,
        user_id: Option<String>,
        traits: Option<String>,
        time: f64,
        page: String,
    ) -> bool {
        let Ok(mut t) = self.0.try_borrow_mut() else {
            return false;
        };
        let call = |data| Call {
            kind: Kind::Identify,
            name: None,
            category: None,
            data,
            unserializable: false,
            snake: false,
            time,
            page,
        };
        match user_id {
            Some(id) => {
                t.identified = true;
                t.user_id = Some(id);
                t.record(call(traits));
            }
            None => {
                // As frontend-platform does (through Segment): an anonymous identify after
                // a signed-in one forgets the user; the anonymous id starts over.
                if t.user_id.is_some() {
                    t.reset_identity();
                }
                t.identified = true;
                if traits
                    .as_deref()
                    .is_some_and(|j| j.starts_with('{') && j != "{}")
                {
                    t.record(call(traits));
                }
            }
        }
        true
    }

    /// Replaces the settings (the storage key is kept: it is read once, at start).
    pub fn reconfigure(&self, options: &JsValue) {
        if let Ok(mut t) = self.0.try_borrow_mut() {
            t.cfg.apply_js(options);
            t.schedule();
        }
    }

    /// A promise that resolves once the events queued now are settled, or the attempt
    /// to send them failed (they stay queued for a retry). It never rejects.
    pub fn flush(&self) -> JsValue {
        let promise = web::deferred();
        let resolve = web::opt(&promise, "r");
        match self.0.try_borrow_mut() {
            Ok(mut t) => t.flush(resolve),
            Err(_) => web::call(&resolve),
        }
        promise
    }

    /// The counters of `getStats()`, as an object.
    pub fn stats(&self) -> JsValue {
        self.stats_with(0)
    }

    /// The counters with the page-level `lost` count.
    pub fn stats_with(&self, lost: u64) -> JsValue {
        match self.0.try_borrow() {
            Ok(t) => web::stats_object(&t.stats_text(lost), true),
            Err(_) => JsValue::UNDEFINED,
        }
    }

    /// Forgets the user id and mints a new anonymous id (Segment's `reset()`).
    pub fn reset(&self) {
        if let Ok(mut t) = self.0.try_borrow_mut() {
            t.reset_identity();
        }
    }

    /// The unload flush, as `pagehide` (`true`) or `visibilitychange`→hidden (`false`) runs it.
    pub fn unload(&self, pagehide: bool) {
        if let Ok(mut t) = self.0.try_borrow_mut() {
            t.unload(pagehide);
        }
    }

    /// Writes every unpersisted event to storage now.
    pub fn persist_now(&self) {
        if let Ok(mut t) = self.0.try_borrow_mut() {
            t.persist_all();
        }
    }

    /// Stops timers and listeners without sending or persisting anything: what a page
    /// that is killed leaves behind (tests use it to simulate a reload).
    pub fn shutdown(&self) {
        if let Ok(mut t) = self.0.try_borrow_mut() {
            t.stopped = true;
            t.token = t.token.wrapping_add(1);
            t.inflight = 0;
            web::host_stop(&t.host);
            t.host = JsValue::NULL;
        }
    }

    /// The anonymous id (persisted across pages).
    pub fn anonymous_id(&self) -> String {
        self.0
            .try_borrow()
            .map(|t| t.anonymous_id.clone())
            .unwrap_or_default()
    }

    /// Ids of the queued events, oldest first.
    pub fn queued_ids(&self) -> Vec<String> {
        self.0
            .try_borrow()
            .map(|t| t.queue.live().iter().map(|q| q.id().to_owned()).collect())
            .unwrap_or_default()
    }
}

impl Inner {
    fn on_host(&mut self, kind: u32, token: u32, status: u32, text: Option<String>) {
        match kind {
            FLUSH_TIMER => {
                self.flush_timer = None;
                self.flush_now = false;
                self.send_now();
            }
            PERSIST_TIMER => {
                self.persist_timer = None;
                self.persist_some();
            }
            RETRY_TIMER => {
                self.retry_timer = None;
                self.send_now();
            }
            HIDDEN => self.unload(false),
            PAGEHIDE => self.unload(true),
            ONLINE => self.on_online(),
            RESPONSE => self.on_response(token, status, text.unwrap_or_default()),
            _ => {}
        }
    }

    fn url(&self) -> String {
        let mut url = String::with_capacity(self.cfg.endpoint.len() + 9);
        url.push_str(&self.cfg.endpoint);
        url.push_str("/v1/batch");
        url
    }

    fn timer(&self, kind: u32, ms: f64) -> Option<f64> {
        (!self.stopped).then(|| web::host_timer(&self.host, kind, ms.clamp(0.0, 2_147_483_647.0)))
    }

    fn clear(&self, timer: Option<f64>) {
        if let Some(id) = timer {
            web::host_clear(&self.host, id);
        }
    }

    fn warn(&mut self, msg: &str, detail: &str) {
        if self.warnings < 20 {
            self.warnings += 1;
            web::warn(msg, detail);
        }
    }

    fn drop_events(&mut self, reason: Drop, n: u64) {
        self.stats.dropped[reason as usize] += n;
    }

    // ---- identity -------------------------------------------------------------------

    fn storage_key(&self, suffix: &str) -> Option<String> {
        let mut key = self.cfg.storage_key.clone()?;
        key.push_str(suffix);
        Some(key)
    }

    fn load_identity(&mut self) {
        let stored = match self.storage_key(".anonymous_id") {
            Some(key) if self.storage => web::store_get(&key),
            _ => None,
        };
        match stored {
            Some(id) if !id.is_empty() && id.len() <= 64 => self.anonymous_id = id,
            _ => self.new_anonymous_id(),
        }
    }

    fn new_anonymous_id(&mut self) {
        self.anonymous_id = uuid_v4(&self.rng.bytes::<16>());
        if let Some(key) = self.storage_key(".anonymous_id") {
            if self.storage {
                web::store_set(&key, &self.anonymous_id);
            }
        }
    }

    fn reset_identity(&mut self) {
        self.user_id = None;
        self.identified = false;
        self.new_anonymous_id();
    }

    // ---- the calling path ---------------------------------------------------------

    fn record(&mut self, call: Call) {
        if self.stopped {
            return;
        }
        if call.unserializable {
            self.drop_events(Drop::InvalidData, 1);
            return;
        }
        if !self.identified && matches!(call.kind, Kind::Track | Kind::Page) {
            // frontend-platform logs this on every call; once is enough.
            self.identified = true;
            self.warn(
                "[@org/tracking]",
                "Identify must be called before other tracking events.",
            );
        }
        let ms = if call.time.is_finite() && call.time > 0.0 {
            call.time as u64
        } else {
            0
        };
        let id = uuid_v7(ms, &self.rng.bytes::<10>());
        let lower = web::lower_case;
        let draft = Draft {
            kind: call.kind,
            name: call.name.as_deref(),
            category: call.category.as_deref(),
            data: call.data.as_deref(),
            snake: call.snake,
            time_ms: ms,
            page: &call.page,
            referrer: &self.referrer,
            user_id: self.user_id.as_deref(),
            anonymous_id: &self.anonymous_id,
            id: &id,
        };
        let limits = Limits {
            name_mode: self.cfg.name_mode,
            sensitive_keys: &self.cfg.sensitive_keys,
            max_event_bytes: self.cfg.max_event_bytes as usize,
        };
        let prepared = match prepare(&draft, &limits, &lower) {
            Ok(prepared) => prepared,
            Err(refused) => {
                let reason = match refused {
                    Refused::InvalidName => {
                        self.stats.invalid_names += 1;
                        Drop::InvalidName
                    }
                    Refused::InvalidData => Drop::InvalidData,
                    Refused::SizeLimit => Drop::SizeLimit,
                };
                self.drop_events(reason, 1);
                return;
            }
        };
        if prepared.name_warning {
            self.stats.invalid_names += 1;
            self.warn(
                "[@org/tracking] event name is not namespace.object.action:",
                call.name.as_deref().unwrap_or(""),
            );
        }
        let json = prepared.json;
        self.stats.enqueued += 1;
        self.push(json, NOT_PERSISTED);
        self.schedule();
    }

    fn push(&mut self, json: String, chunk: u32) {
        if self.queue.len() >= self.cfg.max_queue_events() {
            // Drop the oldest event that is not in the request in flight.
            let at = if self.inflight < self.queue.len() {
                self.inflight
            } else {
                0
            };
            if let Some(old) = self.queue.remove(at) {
                if at < self.inflight {
                    // Every queued event is in flight: abandon that request (its events
                    // are sent again; the server drops duplicates).
                    self.token = self.token.wrapping_add(1);
                    self.inflight = 0;
                }
                self.drop_events(Drop::QueueFull, 1);
                self.settle(old);
            }
        }
        let chunk = if chunk == NOT_PERSISTED && !self.storage {
            NO_STORAGE
        } else {
            chunk
        };
        if chunk == NOT_PERSISTED {
            self.unpersisted += 1;
        }
        self.queued_bytes += json.len();
        self.queue.push_back(Queued {
            seq: self.next_seq,
            json,
            chunk,
        });
        self.next_seq += 1;
    }

    /// Arms the timers a new event needs: at most one `setTimeout` per call.
    fn schedule(&mut self) {
        if self.stopped {
            return;
        }
        if self.unpersisted > 0 && self.persist_timer.is_none() {
            self.persist_timer = self.timer(PERSIST_TIMER, self.cfg.persist_delay_ms);
        }
        let waiting = self.queue.len() - self.inflight;
        if waiting == 0 || self.inflight > 0 || self.retry_timer.is_some() || self.offline {
            return;
        }
        let full =
            waiting >= self.cfg.batch_events() || self.queued_bytes >= self.cfg.batch_bytes();
        if full && !self.flush_now {
            let t = self.flush_timer.take();
            self.clear(t);
            self.flush_now = true;
            self.flush_timer = self.timer(FLUSH_TIMER, 0.0);
        } else if self.flush_timer.is_none() {
            self.flush_timer = self.timer(FLUSH_TIMER, self.cfg.flush_interval_ms);
        }
    }

    // ---- sending -------------------------------------------------------------------

    /// A batch body with the events from `from`: at most `max_events` events and
    /// `max_bytes` bytes (at least one event unless `strict`).
    fn batch(
        &self,
        from: usize,
        max_events: usize,
        max_bytes: usize,
        strict: bool,
    ) -> (usize, String) {
        let mut body = String::with_capacity(max_bytes.min(self.queued_bytes + 64));
        body.push_str("{\"sent_at\":\"");
        body.push_str(&rfc3339_ms(web::now() as u64));
        body.push_str("\",\"events\":[");
        let mut n = 0;
        for ev in self.queue.live().iter().skip(from) {
            if n >= max_events || ((n > 0 || strict) && body.len() + ev.json.len() + 3 > max_bytes)
            {
                break;
            }
            if n > 0 {
                body.push(',');
            }
            body.push_str(&ev.json);
            n += 1;
        }
        body.push_str("]}");
        (n, body)
    }

    fn send_now(&mut self) {
        if self.stopped || self.inflight > 0 || self.retry_timer.is_some() || self.queue.is_empty()
        {
            return;
        }
        let t = self.flush_timer.take();
        self.clear(t);
        self.flush_now = false;
        if !web::online() {
            // Wait for `online`; retry anyway after the longest backoff in case it never fires.
            self.offline = true;
            self.retry_timer = self.timer(RETRY_TIMER, self.cfg.retry_max_ms);
            self.resolve_waiters(true);
            return;
        }
        self.offline = false;
        let (n, body) = self.batch(0, self.cfg.batch_events(), self.cfg.batch_bytes(), false);
        self.token = self.token.wrapping_add(1);
        self.inflight = n;
        self.stats.requests += 1;
        web::host_send(
            &self.host,
            &self.url(),
            &body,
            self.token,
            self.cfg.request_timeout_ms as u32,
        );
    }

    /// A response (or a network error: status 0) to request `token`. `text` holds the
    /// `Retry-After` header of an error, or the comma-joined ids the server rejected.
    fn on_response(&mut self, token: u32, status: u32, text: String) {
        if token != self.token || self.inflight == 0 {
            return;
        }
        if (200..300).contains(&status) {
            let rejected: Vec<&str> = pieces(&text, b',').filter(|s| !s.is_empty()).collect();
            self.finish_batch(&rejected, true);
        } else if (400..500).contains(&status) && status != 429 {
            let n = self.inflight;
            self.drop_events(Drop::Http4xx, n as u64);
            self.finish_batch(&[], false);
        } else {
            // 429, 503: the server is busy, retry without limit; other 5xx count
            // against `max_retries`; 0: a network error, retry without limit.
            let counts = status != 0 && status != 429 && status != 503;
            self.retry_later(counts, &text);
        }
    }

    /// The batch in flight is done: accepted, duplicate, rejected or dropped.
    fn finish_batch(&mut self, rejected: &[&str], delivered: bool) {
        let n = self.inflight;
        self.inflight = 0;
        self.attempts = 0;
        self.server_failures = 0;
        for _ in 0..n {
            let Some(ev) = self.queue.pop_front() else {
                break;
            };
            if rejected.iter().any(|id| *id == ev.id()) {
                self.drop_events(Drop::Rejected, 1);
            } else if delivered {
                self.stats.sent += 1;
            }
            self.settle(ev);
        }
        self.resolve_waiters(false);
        self.after_batch();
    }

    fn after_batch(&mut self) {
        let waiting = self.queue.len();
        if waiting >= self.cfg.batch_events()
            || self.queued_bytes >= self.cfg.batch_bytes()
            || (!self.waiters.is_empty() && waiting > 0)
        {
            self.send_now();
        } else {
            self.schedule();
        }
    }

    fn retry_later(&mut self, counts: bool, retry_after: &str) {
        let n = self.inflight;
        self.inflight = 0;
        self.attempts = self.attempts.saturating_add(1);
        if counts {
            self.server_failures += 1;
            if f64::from(self.server_failures) > self.cfg.max_retries {
                self.server_failures = 0;
                self.attempts = 0;
                for _ in 0..n {
                    if let Some(ev) = self.queue.pop_front() {
                        self.settle(ev);
                    }
                }
                self.drop_events(Drop::RetryExhausted, n as u64);
                self.resolve_waiters(false);
                self.after_batch();
                return;
            }
        }
        self.stats.retried += n as u64;
        // Exponential backoff with "equal jitter": between half and all of the step.
        let step = self.cfg.retry_base_ms * (1u64 << (self.attempts.clamp(1, 40) - 1)) as f64;
        let mut delay = step.min(self.cfg.retry_max_ms) * (0.5 + 0.5 * self.rng.unit());
        // host.js reads `Retry-After` (seconds or HTTP date) and passes milliseconds.
        if let Some(after) = parse_whole(retry_after) {
            let after = after.min(self.cfg.max_retry_after_ms);
            self.not_before = web::now() + after;
            delay = delay.max(after);
        }
        let t = self.retry_timer.take();
        self.clear(t);
        self.retry_timer = self.timer(RETRY_TIMER, delay);
        if !web::online() {
            self.offline = true;
        }
        self.resolve_waiters(true);
    }

    fn on_online(&mut self) {
        self.offline = false;
        if self.inflight > 0 || web::now() < self.not_before {
            return;
        }
        let t = self.retry_timer.take();
        self.clear(t);
        self.send_now();
    }

    fn flush(&mut self, resolve: JsValue) {
        if self.queue.is_empty() || self.stopped {
            web::call(&resolve);
            return;
        }
        let target = self.next_seq - 1;
        self.waiters.push((target, resolve));
        if self.inflight > 0 {
            return;
        }
        if self.retry_timer.is_some() {
            if web::now() < self.not_before || self.offline {
                // The server asked for a pause (or the browser is offline): the attempt failed.
                self.resolve_waiters(true);
                return;
            }
            let t = self.retry_timer.take();
            self.clear(t);
        }
        self.send_now();
    }

    /// Resolves flush promises: all of them after a failed attempt, else those whose
    /// events are all settled.
    fn resolve_waiters(&mut self, all: bool) {
        if self.waiters.is_empty() {
            return;
        }
        let front = self.queue.front().map_or(u64::MAX, |q| q.seq);
        let waiters = core::mem::take(&mut self.waiters);
        for (target, resolve) in waiters {
            if all || target < front {
                web::call(&resolve);
            } else {
                self.waiters.push((target, resolve));
            }
        }
    }

    // ---- storage -------------------------------------------------------------------

    /// Adopts the chunks earlier pages left in storage, oldest first (keys carry the
    /// write time).
    fn restore(&mut self) {
        let Some(prefix) = self.storage_key(".q.") else {
            return;
        };
        if !self.storage {
            return;
        }
        let keys = web::store_keys(&prefix);
        for key in pieces(&keys, b'\n').filter(|k| !k.is_empty()) {
            let Some(text) = web::store_get(key) else {
                continue;
            };
            let id = self.next_chunk;
            self.next_chunk += 1;
            let mut count = 0u32;
            for line in pieces(&text, b'\n') {
                if id_of_line(line).is_none() {
                    self.drop_events(Drop::StorageCorrupt, 1);
                    continue;
                }
                self.push(line.to_owned(), id);
                count += 1;
            }
            if count == 0 {
                web::store_del(key);
                continue;
            }
            self.stats.restored += u64::from(count);
            self.storage_bytes += text.len();
            self.chunks.push(Chunk {
                id,
                key: key.to_owned(),
                pending: count,
                bytes: text.len(),
            });
        }
    }

    /// Writes the oldest unpersisted events (at most one chunk) and re-arms itself for the rest.
    fn persist_some(&mut self) {
        if self.persist_chunk() && self.unpersisted > 0 && self.persist_timer.is_none() {
            self.persist_timer = self.timer(PERSIST_TIMER, 0.0);
        }
    }

    fn persist_all(&mut self) {
        let t = self.persist_timer.take();
        self.clear(t);
        while self.unpersisted > 0 && self.persist_chunk() {}
    }

    /// Writes one chunk; `false` when storage refused it.
    fn persist_chunk(&mut self) -> bool {
        if self.unpersisted == 0 {
            return true;
        }
        let Some(mut key) = self.storage_key(".q.") else {
            return false;
        };
        let start = self.queue.len() - self.unpersisted;
        let mut text = String::new();
        let mut count = 0usize;
        for ev in self.queue.live().iter().skip(start) {
            if count > 0 && text.len() + ev.json.len() + 1 > CHUNK_BYTES {
                break;
            }
            if count > 0 {
                text.push('\n');
            }
            text.push_str(&ev.json);
            count += 1;
        }
        push_u64(&mut key, web::now() as u64);
        key.push('.');
        key.push_str(&self.instance);
        key.push('.');
        push_u64(&mut key, u64::from(self.next_chunk));
        let fits = text.len() <= (self.cfg.max_storage_bytes as usize);
        while fits
            && self.storage_bytes + text.len() > (self.cfg.max_storage_bytes as usize)
            && !self.chunks.is_empty()
        {
            self.evict_oldest();
        }
        let mut written = fits;
        while written && !web::store_set(&key, &text) {
            // Quota exceeded (other data on the origin): make room, oldest first.
            if self.chunks.is_empty() {
                written = false;
            } else {
                self.evict_oldest();
            }
        }
        let chunk = if written { self.next_chunk } else { NO_STORAGE };
        if written {
            self.next_chunk += 1;
            self.storage_bytes += text.len();
            self.chunks.push(Chunk {
                id: chunk,
                key,
                pending: count as u32,
                bytes: text.len(),
            });
        } else {
            self.stats.storage_errors += 1;
            self.stats.storage_evicted += count as u64;
        }
        for ev in self.queue.live_mut().iter_mut().skip(start).take(count) {
            ev.chunk = chunk;
        }
        self.unpersisted -= count;
        written
    }

    fn evict_oldest(&mut self) {
        let Some(first) = self.chunks.first() else {
            return;
        };
        let id = first.id;
        web::store_del(&first.key);
        self.storage_bytes -= first.bytes;
        self.stats.storage_evicted += u64::from(first.pending);
        self.chunks.retain(|c| c.id != id);
    }

    /// An event left the queue: release its storage chunk.
    fn settle(&mut self, ev: Queued) {
        self.queued_bytes -= ev.json.len();
        match ev.chunk {
            NOT_PERSISTED => self.unpersisted = self.unpersisted.saturating_sub(1),
            NO_STORAGE => {}
            id => {
                let mut emptied = false;
                if let Some(c) = self.chunks.iter_mut().find(|c| c.id == id) {
                    c.pending -= 1;
                    if c.pending == 0 {
                        web::store_del(&c.key);
                        self.storage_bytes -= c.bytes;
                        emptied = true;
                    }
                }
                if emptied {
                    self.chunks.retain(|c| c.id != id);
                }
            }
        }
    }

    // ---- unload --------------------------------------------------------------------

    /// Beacons what fits in the keepalive budget and persists the rest at once.
    fn unload(&mut self, pagehide: bool) {
        if self.stopped {
            return;
        }
        if pagehide && self.inflight > 0 {
            // The request in flight dies with the page: beacon its events too (the
            // server drops the duplicate if both arrive).
            self.token = self.token.wrapping_add(1);
            self.inflight = 0;
        }
        let from = self.inflight;
        let mut budget = self.cfg.unload_bytes as usize;
        let url = self.url();
        while from < self.queue.len() && budget > 0 {
            let (n, body) = self.batch(
                from,
                self.cfg.batch_events(),
                self.cfg.batch_bytes().min(budget),
                true,
            );
            if n == 0 || !web::host_beacon(&url, &body) {
                break;
            }
            budget = budget.saturating_sub(body.len());
            self.stats.sent += n as u64;
            self.stats.beaconed += n as u64;
            self.stats.requests += 1;
            // Take the beaconed events out from the middle (after the request in flight).
            for ev in self.queue.take(from, n) {
                self.settle(ev);
            }
        }
        self.persist_all();
        self.resolve_waiters(false);
    }

    // ---- stats ---------------------------------------------------------------------

    /// The counters, comma-separated, in host.js's `statsObject` order; `lost` is
    /// lib.rs's page-level count.
    fn stats_text(&self, lost: u64) -> String {
        let s = &self.stats;
        let persisted: u64 = self.chunks.iter().map(|c| u64::from(c.pending)).sum();
        let head = [
            s.enqueued,
            s.restored,
            s.sent,
            s.beaconed,
            s.retried,
            s.requests,
            self.queue.len() as u64,
            self.inflight as u64,
            persisted,
            s.storage_evicted,
            s.storage_errors,
            s.invalid_names,
            lost,
        ];
        let mut out = String::with_capacity(STATS * 4);
        for n in head.iter().chain(s.dropped.iter()) {
            if !out.is_empty() {
                out.push(',');
            }
            push_u64(&mut out, *n);
        }
        out
    }
}
