//! A page's tracker without the browser: calls become events (identity, the shared
//! rules, ids and timestamps) and go on the [`Queue`]. The browser adapter and the
//! native tests drive the same [`Recorder`] through [`Io`].

use alloc::string::String;

use crate::config::Config;
use crate::event::{push_u64, uuid_v4, uuid_v7, Kind};
use crate::io::{Drop, Io, Response, Timer};
use crate::prepare::{prepare, Draft, Limits, Refused};
use crate::queue::Queue;

/// One call, captured on the calling path.
#[derive(Debug, Clone)]
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

pub struct Recorder {
    pub cfg: Config,
    pub queue: Queue,
    user_id: Option<String>,
    anonymous_id: String,
    referrer: String,
    identified: bool,
    warnings: u32,
}

impl Recorder {
    /// Starts a tracker: reads the anonymous id, restores what earlier pages stored and
    /// sends it. `referrer` is `document.referrer`.
    pub fn start(cfg: Config, referrer: String, io: &mut impl Io) -> Recorder {
        let mut random = [0u8; 4];
        io.random_bytes(&mut random);
        let mut instance = String::new();
        push_u64(&mut instance, u64::from(u32::from_le_bytes(random)));
        let prefix = cfg.storage_key.as_ref().map(|key| joined(key, ".q."));
        let mut recorder = Recorder {
            queue: Queue::new(prefix, instance),
            cfg,
            user_id: None,
            anonymous_id: String::new(),
            referrer,
            identified: false,
            warnings: 0,
        };
        recorder.load_identity(io);
        recorder.queue.restore(&recorder.cfg, io);
        recorder
    }

    pub fn anonymous_id(&self) -> &str {
        &self.anonymous_id
    }

    /// Records one call.
    pub fn record(&mut self, call: Call, io: &mut impl Io) {
        if call.unserializable {
            self.queue.stats.dropped[Drop::InvalidData as usize] += 1;
            return;
        }
        if !self.identified && matches!(call.kind, Kind::Track | Kind::Page) {
            // frontend-platform logs this on every call; once is enough.
            self.identified = true;
            self.warn("[@org/tracking]", "Identify must be called before other tracking events.", io);
        }
        let ms = if call.time.is_finite() && call.time > 0.0 { call.time as u64 } else { 0 };
        let mut random = [0u8; 10];
        io.random_bytes(&mut random);
        let id = uuid_v7(ms, &random);
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
            max_event_bytes: crate::config::whole(self.cfg.max_event_bytes),
        };
        let prepared = match prepare(&draft, &limits, &|word| io.lower_case(word)) {
            Ok(prepared) => prepared,
            Err(refused) => {
                let reason = match refused {
                    Refused::InvalidName => {
                        self.queue.stats.invalid_names += 1;
                        Drop::InvalidName
                    }
                    Refused::InvalidData => Drop::InvalidData,
                    Refused::SizeLimit => Drop::SizeLimit,
                };
                self.queue.stats.dropped[reason as usize] += 1;
                return;
            }
        };
        if prepared.name_warning {
            self.queue.stats.invalid_names += 1;
            self.warn("[@org/tracking] event name is not namespace.object.action:", call.name.as_deref().unwrap_or(""), io);
        }
        self.queue.push(&self.cfg, prepared.json, io);
    }

    /// `identifyAuthenticatedUser` (`Some(user id)`) or `identifyAnonymousUser` (`None`).
    pub fn identify(&mut self, user_id: Option<String>, traits: Option<String>, time: f64, page: String, io: &mut impl Io) {
        let call = |data| Call { kind: Kind::Identify, name: None, category: None, data, unserializable: false, snake: false, time, page };
        match user_id {
            Some(id) => {
                self.identified = true;
                self.user_id = Some(id);
                self.record(call(traits), io);
            }
            None => {
                // As frontend-platform does (through Segment): an anonymous identify after
                // a signed-in one forgets the user; the anonymous id starts over.
                if self.user_id.is_some() {
                    self.reset(io);
                }
                self.identified = true;
                if traits.as_deref().is_some_and(|j| j.starts_with('{') && j != "{}") {
                    self.record(call(traits), io);
                }
            }
        }
    }

    /// Forgets the user id and mints a new anonymous id (Segment's `reset()`).
    pub fn reset(&mut self, io: &mut impl Io) {
        self.user_id = None;
        self.identified = false;
        self.new_anonymous_id(io);
    }

    pub fn on_timer(&mut self, timer: Timer, io: &mut impl Io) {
        self.queue.on_timer(&self.cfg, timer, io);
    }

    pub fn on_response(&mut self, token: u32, response: &Response, io: &mut impl Io) {
        self.queue.on_response(&self.cfg, token, response, io);
    }

    pub fn on_online(&mut self, io: &mut impl Io) {
        self.queue.on_online(&self.cfg, io);
    }

    pub fn unload(&mut self, pagehide: bool, io: &mut impl Io) {
        self.queue.unload(&self.cfg, pagehide, io);
    }

    pub fn flush(&mut self, waiter: u32, io: &mut impl Io) {
        self.queue.flush(&self.cfg, waiter, io);
    }

    pub fn persist_now(&mut self, io: &mut impl Io) {
        self.queue.persist_all(&self.cfg, io);
    }

    fn warn(&mut self, message: &str, detail: &str, io: &mut impl Io) {
        if self.warnings < 20 {
            self.warnings += 1;
            io.warn(message, detail);
        }
    }

    fn identity_key(&self) -> Option<String> {
        self.cfg.storage_key.as_ref().map(|key| joined(key, ".anonymous_id"))
    }

    fn load_identity(&mut self, io: &mut impl Io) {
        let stored = self.identity_key().and_then(|key| io.load(&key));
        match stored {
            Some(id) if !id.is_empty() && id.len() <= 64 => self.anonymous_id = id,
            _ => self.new_anonymous_id(io),
        }
    }

    fn new_anonymous_id(&mut self, io: &mut impl Io) {
        let mut random = [0u8; 16];
        io.random_bytes(&mut random);
        self.anonymous_id = uuid_v4(&random);
        if let Some(key) = self.identity_key() {
            io.store(&key, &self.anonymous_id);
        }
    }
}

/// `a` then `b` (without `format!`, which would bring core's formatting into the wasm).
fn joined(a: &str, b: &str) -> String {
    let mut s = String::with_capacity(a.len() + b.len());
    s.push_str(a);
    s.push_str(b);
    s
}
