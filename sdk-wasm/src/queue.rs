//! The queue: batches, sends, retries, splits refused batches, persists and flushes on
//! unload — decisions only, each I/O a call on [`Io`], so it runs and is tested
//! natively.
//!
//! * **send**: one batch in flight at a time, oldest events first;
//! * **retry**: 429, 503 and network errors back off exponentially with jitter without
//!   limit, never sooner than `Retry-After`; other 5xx count against `max_retries`;
//! * **split**: a batch refused as a whole (413, or a 400 that names the batch's JSON)
//!   is sent again in halves, down to the single event, so one event the server
//!   cannot take costs only itself; other 4xx drop the batch;
//! * **persist**: new events go to storage in chunks of at most [`CHUNK_BYTES`], one
//!   chunk per task, within the storage budget; a chunk is removed once its events are
//!   settled;
//! * **unload**: the queue is beaconed within the keepalive budget, the rest written
//!   to storage at once; on `pagehide` what fits in neither is counted (`unsaved`).
//!
//! Every event queued ends delivered (to the server's knowledge, once: ids are kept) or
//! counted in exactly one drop reason.

use alloc::string::String;
use alloc::vec::Vec;

use crate::codec;
use crate::config::{whole, Config};
use crate::event::{id_of_line, push_u64, rfc3339_ms};
use crate::fifo::Fifo;
use crate::io::{Drop, Io, Response, Timer, DROP_NAMES};

/// Largest storage chunk (bytes of event JSON) written in one task.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Marks a stored event as [`Queued::attempted`].
const ATTEMPTED: u8 = b'!';

const NOT_PERSISTED: u32 = 0;
const NO_STORAGE: u32 = u32::MAX;

/// Counters `getStats()` reports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub enqueued: u64,
    pub restored: u64,
    pub sent: u64,
    pub beaconed: u64,
    pub retried: u64,
    pub requests: u64,
    /// Batches sent again in halves after a whole-batch refusal.
    pub split: u64,
    /// Events kept in memory only: the storage budget or quota was full.
    pub storage_full: u64,
    pub storage_errors: u64,
    pub invalid_names: u64,
    /// Events of the request in flight when the page went away that could be neither
    /// beaconed nor stored: the server may or may not have them.
    pub unconfirmed: u64,
    pub dropped: [u64; DROP_NAMES.len()],
}

impl Stats {
    /// The counters by their `getStats()` names (the queue's state is added by the queue).
    pub fn named(&self) -> [(&'static str, u64); 11] {
        [
            ("enqueued", self.enqueued),
            ("restored", self.restored),
            ("sent", self.sent),
            ("beaconed", self.beaconed),
            ("retried", self.retried),
            ("requests", self.requests),
            ("split", self.split),
            ("storageFull", self.storage_full),
            ("storageErrors", self.storage_errors),
            ("invalidNames", self.invalid_names),
            ("unconfirmed", self.unconfirmed),
        ]
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

#[derive(Default)]
struct Queued {
    seq: u64,
    /// The event's JSON; it starts with `{"id":"<uuid>"`.
    json: String,
    /// The storage chunk holding the event, [`NOT_PERSISTED`] or [`NO_STORAGE`].
    chunk: u32,
    /// It went out in a request whose fate is unknown (a network error, a page that
    /// died with it in flight): the server may have it. If it is given up later, it is
    /// counted `unconfirmed`, not dropped.
    attempted: bool,
}

impl Queued {
    fn id(&self) -> &str {
        self.json.get(7..43).unwrap_or("")
    }
}

struct Chunk {
    id: u32,
    key: String,
    /// Events of the chunk not yet settled.
    pending: u32,
    /// Events written in it.
    written: u32,
    /// Storage it takes, bytes (two per UTF-16 code unit of key and value).
    cost: usize,
    /// An event in it has been attempted since it was written.
    stale: bool,
}

/// After a whole-batch refusal: batches of at most `max_events` until the events up
/// to `until_seq` are settled.
#[derive(Clone, Copy)]
struct Split {
    max_events: usize,
    until_seq: u64,
}

/// An event as a storage line: its JSON, after [`ATTEMPTED`] when it was attempted.
fn stored_line(ev: &Queued) -> String {
    let mut line = String::with_capacity(ev.json.len() + 1);
    if ev.attempted {
        line.push(char::from(ATTEMPTED));
    }
    line.push_str(&ev.json);
    line
}

pub struct Queue {
    events: Fifo<Queued>,
    bytes: usize,
    next_seq: u64,
    /// Events at the front of the queue that are in the request in flight.
    inflight: usize,
    /// Identifies the request in flight; responses to older requests are ignored.
    token: u32,
    split: Option<Split>,
    armed: [bool; 3],
    /// The flush timer is armed for "now" (a full batch).
    flush_now: bool,
    /// Consecutive failed attempts (backoff exponent).
    attempts: u32,
    /// Consecutive failures that count against `max_retries`.
    server_failures: u32,
    /// No request before this time (Unix ms): `Retry-After`.
    not_before: f64,
    offline: bool,
    /// Events not yet written to storage (`NOT_PERSISTED`).
    unpersisted: usize,
    chunks: Vec<Chunk>,
    next_chunk: u32,
    storage_used: usize,
    /// `{storageKey}.q.`, when the queue persists.
    prefix: Option<String>,
    /// This page's part of chunk keys, so two tabs never write the same key.
    instance: String,
    /// Flush promises: (the newest event they wait for, waiter id).
    waiters: Vec<(u64, u32)>,
    pub stats: Stats,
    stopped: bool,
    random: [u8; 64],
    random_at: usize,
}

impl Queue {
    /// A queue that persists under `prefix` (`None`: memory only); `instance` tells
    /// this page's chunks from other tabs'.
    pub fn new(prefix: Option<String>, instance: String) -> Queue {
        Queue {
            events: Fifo::new(),
            bytes: 0,
            next_seq: 1,
            inflight: 0,
            token: 0,
            split: None,
            armed: [false; 3],
            flush_now: false,
            attempts: 0,
            server_failures: 0,
            not_before: 0.0,
            offline: false,
            unpersisted: 0,
            chunks: Vec::new(),
            next_chunk: 1,
            storage_used: 0,
            prefix,
            instance,
            waiters: Vec::new(),
            stats: Stats::default(),
            stopped: false,
            random: [0; 64],
            random_at: 64,
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn inflight(&self) -> usize {
        self.inflight
    }

    /// Events held in storage chunks, not yet settled.
    pub fn persisted(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.pending)).sum()
    }

    /// Ids of the queued events, oldest first.
    pub fn ids(&self) -> Vec<String> {
        self.events.live().iter().map(|q| q.id().into()).collect()
    }

    /// The id of the newest queued event.
    pub fn newest_id(&self) -> Option<&str> {
        self.events.live().last().map(Queued::id)
    }

    /// Storage in use, bytes as the browser counts them.
    pub fn storage_used(&self) -> usize {
        self.storage_used
    }

    // ---- events in -----------------------------------------------------------------

    /// Adopts the chunks earlier pages left in storage, oldest first (keys carry the
    /// write time).
    pub fn restore(&mut self, cfg: &Config, io: &mut impl Io) {
        let Some(prefix) = self.prefix.clone() else { return };
        for key in io.keys(&prefix) {
            let Some(value) = io.load(&key) else { continue };
            let Some(text) = codec::unpack(&value) else {
                self.stats.dropped[Drop::StorageCorrupt as usize] += 1;
                io.unstore(&key);
                continue;
            };
            let id = self.next_chunk;
            self.next_chunk += 1;
            let cost = 2 * (codec::utf16_len(&key) + codec::utf16_len(&value));
            self.chunks.push(Chunk { id, key: key.clone(), pending: 0, written: 0, cost, stale: false });
            self.storage_used += cost;
            let mut count = 0u32;
            for line in crate::json::pieces(&text, b'\n') {
                let attempted = line.as_bytes().first() == Some(&ATTEMPTED);
                let line = if attempted { crate::json::tail(line, 1) } else { line };
                if id_of_line(line).is_none() {
                    self.stats.dropped[Drop::StorageCorrupt as usize] += 1;
                    continue;
                }
                if let Some(chunk) = self.chunks.last_mut() {
                    chunk.pending += 1;
                    chunk.written += 1;
                }
                count += 1;
                if self.push_with(cfg, line.into(), id, io) && attempted {
                    if let Some(ev) = self.events.live_mut().last_mut() {
                        ev.attempted = true;
                    }
                }
            }
            self.stats.restored += u64::from(count);
            if count == 0 {
                self.release(id, io);
            }
        }
        if !self.is_empty() {
            self.send_now(cfg, io);
        }
    }

    /// Queues a prepared event.
    pub fn push(&mut self, cfg: &Config, json: String, io: &mut impl Io) {
        if self.stopped {
            return;
        }
        let chunk = if self.prefix.is_some() { NOT_PERSISTED } else { NO_STORAGE };
        if self.push_with(cfg, json, chunk, io) {
            self.stats.enqueued += 1;
        }
        self.schedule(cfg, io);
    }

    /// Makes room within the bounds (dropping the oldest events not in flight) and
    /// queues the event; when no room can be made, drops the event itself.
    fn push_with(&mut self, cfg: &Config, json: String, chunk: u32, io: &mut impl Io) -> bool {
        let max_events = whole(cfg.max_queue_events).max(1);
        let max_bytes = whole(cfg.max_queue_bytes).max(1);
        while self.events.len() >= max_events || self.bytes + json.len() > max_bytes {
            match self.events.remove(self.inflight) {
                Some(old) => self.drop_event(old, Drop::QueueFull, io),
                None => {
                    // Everything queued is in flight (or the event alone is too big).
                    self.stats.dropped[Drop::QueueFull as usize] += 1;
                    io.dropped(&json, Drop::QueueFull);
                    if chunk != NOT_PERSISTED && chunk != NO_STORAGE {
                        self.release_one(chunk, io);
                    }
                    return false;
                }
            }
        }
        if chunk == NOT_PERSISTED {
            self.unpersisted += 1;
        }
        self.bytes += json.len();
        self.events.push_back(Queued { seq: self.next_seq, json, chunk, attempted: false });
        self.next_seq += 1;
        true
    }

    /// Arms the timers new events need: at most one per call.
    fn schedule(&mut self, cfg: &Config, io: &mut impl Io) {
        if self.stopped {
            return;
        }
        if self.unpersisted > 0 && !self.armed[Timer::Persist as usize] {
            self.arm(Timer::Persist, cfg.persist_delay_ms, io);
        }
        let waiting = self.events.len() - self.inflight;
        if waiting == 0 || self.inflight > 0 || self.armed[Timer::Retry as usize] || self.offline {
            return;
        }
        let full = waiting >= self.batch_limit(cfg) || self.bytes >= cfg.batch_bytes();
        if full && !self.flush_now {
            self.flush_now = true;
            self.arm(Timer::Flush, 0.0, io);
        } else if !self.armed[Timer::Flush as usize] {
            self.arm(Timer::Flush, cfg.flush_interval_ms, io);
        }
    }

    pub fn on_timer(&mut self, cfg: &Config, timer: Timer, io: &mut impl Io) {
        self.armed[timer as usize] = false;
        match timer {
            Timer::Flush => {
                self.flush_now = false;
                self.send_now(cfg, io);
            }
            Timer::Persist => {
                if self.persist_chunk(cfg, io) && self.unpersisted > 0 {
                    self.arm(Timer::Persist, 0.0, io);
                }
            }
            Timer::Retry => self.send_now(cfg, io),
        }
    }

    // ---- sending -------------------------------------------------------------------

    fn batch_limit(&self, cfg: &Config) -> usize {
        let limit = cfg.batch_events();
        self.split.map_or(limit, |s| s.max_events.min(limit))
    }

    /// A batch body with the events from `from`: at most `max_events` events and
    /// `max_bytes` bytes (at least one event unless `strict`).
    fn batch(&self, from: usize, max_events: usize, max_bytes: usize, strict: bool, now: f64) -> (usize, String) {
        let mut body = String::with_capacity(max_bytes.min(self.bytes + 64));
        body.push_str("{\"sent_at\":\"");
        body.push_str(&rfc3339_ms(if now > 0.0 { now as u64 } else { 0 }));
        body.push_str("\",\"events\":[");
        let mut n = 0;
        for ev in self.events.live().iter().skip(from) {
            if n >= max_events || ((n > 0 || strict) && body.len() + ev.json.len() + 3 > max_bytes) {
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

    fn send_now(&mut self, cfg: &Config, io: &mut impl Io) {
        if self.stopped || self.inflight > 0 || self.armed[Timer::Retry as usize] || self.events.is_empty() {
            return;
        }
        self.disarm(Timer::Flush, io);
        self.flush_now = false;
        if !io.online() {
            // Wait for `online`; retry anyway after the longest backoff in case it never fires.
            self.offline = true;
            self.arm(Timer::Retry, cfg.retry_max_ms, io);
            self.resolve_waiters(true, io);
            return;
        }
        self.offline = false;
        let now = io.now();
        let (n, body) = self.batch(0, self.batch_limit(cfg), cfg.batch_bytes(), false, now);
        self.token = self.token.wrapping_add(1);
        self.inflight = n;
        self.stats.requests += 1;
        io.send(self.token, &body);
    }

    /// The answer to request `token`.
    pub fn on_response(&mut self, cfg: &Config, token: u32, response: &Response, io: &mut impl Io) {
        if token != self.token || self.inflight == 0 || self.stopped {
            return;
        }
        let status = response.status;
        let whole_batch = status == 413
            || (status == 400
                && matches!(response.error.as_deref(), Some("invalid_json" | "invalid_batch" | "invalid_utf8" | "too_many_events")));
        if (200..300).contains(&status) {
            self.finish_batch(cfg, &response.rejected, io);
        } else if whole_batch && self.inflight > 1 {
            // One of these events (or their number) is what the server cannot take:
            // send them again in halves, and only the one it refuses on its own is lost.
            let last = self.events.live().get(self.inflight - 1).map_or(0, |e| e.seq);
            self.split = Some(Split { max_events: self.inflight.div_ceil(2), until_seq: last });
            self.stats.split += 1;
            self.inflight = 0;
            self.send_now(cfg, io);
        } else if whole_batch || ((400..500).contains(&status) && status != 429 && status != 408) {
            let reason = if whole_batch { Drop::Rejected } else { Drop::Http4xx };
            for _ in 0..self.inflight {
                if let Some(ev) = self.events.pop_front() {
                    self.drop_event(ev, reason, io);
                }
            }
            self.inflight = 0;
            self.finish_batch(cfg, &[], io);
        } else {
            // 429, 503, a timeout: the server is busy, retry without limit; other 5xx
            // count against `max_retries`; 0: a network error, retry without limit.
            let counts = !matches!(status, 0 | 408 | 429 | 503);
            if status == 0 || status == 408 {
                self.mark_attempted();
            }
            self.retry_later(cfg, counts, response.retry_after_ms, io);
        }
    }

    /// The batch in flight is done: delivered but for the ids the server rejected.
    fn finish_batch(&mut self, cfg: &Config, rejected: &[String], io: &mut impl Io) {
        let n = self.inflight;
        self.inflight = 0;
        self.attempts = 0;
        self.server_failures = 0;
        for _ in 0..n {
            let Some(ev) = self.events.pop_front() else { break };
            if rejected.iter().any(|id| id == ev.id()) {
                self.drop_event(ev, Drop::Rejected, io);
            } else {
                self.stats.sent += 1;
                self.settle(ev, io);
            }
        }
        if let Some(split) = self.split {
            if self.events.front().is_none_or(|e| e.seq > split.until_seq) {
                self.split = None;
            }
        }
        self.resolve_waiters(false, io);
        let waiting = self.events.len();
        let overdue = self.split.is_some() || (!self.waiters.is_empty() && waiting > 0);
        if waiting >= self.batch_limit(cfg) || self.bytes >= cfg.batch_bytes() || (overdue && waiting > 0) {
            self.send_now(cfg, io);
        } else {
            self.schedule(cfg, io);
        }
    }

    fn retry_later(&mut self, cfg: &Config, counts: bool, retry_after_ms: Option<f64>, io: &mut impl Io) {
        let n = self.inflight;
        self.inflight = 0;
        self.attempts = self.attempts.saturating_add(1);
        if counts {
            self.server_failures += 1;
            if f64::from(self.server_failures) > cfg.max_retries {
                for _ in 0..n {
                    if let Some(ev) = self.events.pop_front() {
                        self.drop_event(ev, Drop::RetryExhausted, io);
                    }
                }
                self.finish_batch(cfg, &[], io);
                return;
            }
        }
        self.stats.retried += n as u64;
        // Exponential backoff with "equal jitter": between half and all of the step.
        let step = cfg.retry_base_ms * (1u64 << (self.attempts.clamp(1, 40) - 1)) as f64;
        let mut delay = step.min(cfg.retry_max_ms) * (0.5 + 0.5 * self.unit(io));
        if let Some(after) = retry_after_ms.filter(|a| *a >= 0.0) {
            let after = after.min(cfg.max_retry_after_ms);
            self.not_before = io.now() + after;
            delay = delay.max(after);
        }
        self.arm(Timer::Retry, delay, io);
        if !io.online() {
            self.offline = true;
        }
        self.resolve_waiters(true, io);
    }

    pub fn on_online(&mut self, cfg: &Config, io: &mut impl Io) {
        self.offline = false;
        if self.inflight > 0 || io.now() < self.not_before {
            return;
        }
        self.disarm(Timer::Retry, io);
        self.send_now(cfg, io);
    }

    /// Sends what is queued now; `waiter` is settled once it is delivered or the
    /// attempt failed.
    pub fn flush(&mut self, cfg: &Config, waiter: u32, io: &mut impl Io) {
        if self.events.is_empty() || self.stopped {
            io.settled(waiter);
            return;
        }
        self.waiters.push((self.next_seq - 1, waiter));
        if self.inflight > 0 {
            return;
        }
        if self.armed[Timer::Retry as usize] {
            if io.now() < self.not_before || self.offline {
                // The server asked for a pause (or the browser is offline): the attempt failed.
                self.resolve_waiters(true, io);
                return;
            }
            self.disarm(Timer::Retry, io);
        }
        self.send_now(cfg, io);
    }

    /// Settles flush waiters: all of them after a failed attempt, else those whose
    /// events are all settled.
    fn resolve_waiters(&mut self, all: bool, io: &mut impl Io) {
        if self.waiters.is_empty() {
            return;
        }
        let front = self.events.front().map_or(u64::MAX, |q| q.seq);
        let waiters = core::mem::take(&mut self.waiters);
        for (target, waiter) in waiters {
            if all || target < front {
                io.settled(waiter);
            } else {
                self.waiters.push((target, waiter));
            }
        }
    }

    // ---- storage -------------------------------------------------------------------

    /// Writes every unpersisted event to storage now.
    pub fn persist_all(&mut self, cfg: &Config, io: &mut impl Io) {
        self.disarm(Timer::Persist, io);
        while self.unpersisted > 0 && self.persist_chunk(cfg, io) {}
    }

    /// Writes the oldest unpersisted events as one chunk; `false` when it could not.
    fn persist_chunk(&mut self, cfg: &Config, io: &mut impl Io) -> bool {
        if self.unpersisted == 0 {
            return true;
        }
        let Some(mut key) = self.prefix.clone() else { return false };
        let mut picked: Vec<usize> = Vec::new();
        let mut size = 0;
        for (i, ev) in self.events.live().iter().enumerate() {
            if ev.chunk != NOT_PERSISTED {
                continue;
            }
            if !picked.is_empty() && size + ev.json.len() + 1 > CHUNK_BYTES {
                break;
            }
            size += ev.json.len() + 1;
            picked.push(i);
        }
        let live = self.events.live();
        let mut lines = Vec::with_capacity(picked.len());
        for &i in &picked {
            lines.push(stored_line(&live[i]));
        }
        let value = codec::pack(lines.iter().map(String::as_str));
        push_u64(&mut key, io.now().max(0.0) as u64);
        key.push('.');
        key.push_str(&self.instance);
        key.push('.');
        push_u64(&mut key, u64::from(self.next_chunk));
        let cost = 2 * (codec::utf16_len(&key) + codec::utf16_len(&value));
        let fits = self.storage_used + cost <= whole(cfg.max_storage_bytes);
        let written = fits && io.store(&key, &value);
        if fits && !written {
            self.stats.storage_errors += 1;
        }
        let chunk = if written {
            let id = self.next_chunk;
            self.next_chunk += 1;
            self.storage_used += cost;
            self.chunks.push(Chunk { id, key, pending: picked.len() as u32, written: picked.len() as u32, cost, stale: false });
            id
        } else {
            self.stats.storage_full += picked.len() as u64;
            NO_STORAGE
        };
        let live = self.events.live_mut();
        for &i in &picked {
            live[i].chunk = chunk;
        }
        self.unpersisted -= picked.len();
        written
    }

    /// An event left the queue: release its storage chunk.
    fn settle(&mut self, ev: Queued, io: &mut impl Io) {
        self.bytes -= ev.json.len();
        match ev.chunk {
            NOT_PERSISTED => self.unpersisted = self.unpersisted.saturating_sub(1),
            NO_STORAGE => {}
            id => self.release_one(id, io),
        }
    }

    fn release_one(&mut self, id: u32, io: &mut impl Io) {
        let empty = match self.chunks.iter_mut().find(|c| c.id == id) {
            Some(chunk) => {
                chunk.pending = chunk.pending.saturating_sub(1);
                chunk.pending == 0
            }
            None => false,
        };
        if empty {
            self.release(id, io);
        }
    }

    /// Removes a chunk from storage.
    fn release(&mut self, id: u32, io: &mut impl Io) {
        if let Some(at) = self.chunks.iter().position(|c| c.id == id) {
            // Not `Vec::remove`, whose panic message would stay in the module's data.
            crate::fifo::shift_out(self.chunks.get_mut(at..).unwrap_or_default(), 1);
            if let Some(chunk) = self.chunks.pop() {
                io.unstore(&chunk.key);
                self.storage_used -= chunk.cost;
            }
        }
    }

    /// Marks the events in flight as attempted (their request's fate is unknown).
    fn mark_attempted(&mut self) {
        let n = self.inflight;
        for ev in self.events.live_mut().iter_mut().take(n) {
            if !ev.attempted {
                ev.attempted = true;
                if let Some(chunk) = self.chunks.iter_mut().find(|c| c.id == ev.chunk) {
                    chunk.stale = true;
                }
            }
        }
    }

    /// Gives an event up: counted in `reason`, or `unconfirmed` when the server may
    /// have it from an earlier attempt (a server's own rejection is always definite).
    fn drop_event(&mut self, ev: Queued, reason: Drop, io: &mut impl Io) {
        if ev.attempted && reason != Drop::Rejected {
            self.stats.unconfirmed += 1;
            io.unconfirmed(&ev.json);
        } else {
            self.stats.dropped[reason as usize] += 1;
            io.dropped(&ev.json, reason);
        }
        self.settle(ev, io);
    }

    /// Rewrites chunks whose events are partly settled so that the next page restores
    /// only what is still pending (no event it would then count twice).
    fn compact_chunks(&mut self, io: &mut impl Io) {
        let mut partial = Vec::new();
        for c in self.chunks.iter().filter(|c| c.pending < c.written || c.stale) {
            partial.push(c.id);
        }
        for id in partial {
            let mut lines = Vec::new();
            for ev in self.events.live().iter().filter(|e| e.chunk == id) {
                lines.push(stored_line(ev));
            }
            let value = codec::pack(lines.iter().map(String::as_str));
            let count = lines.len() as u32;
            let Some(at) = self.chunks.iter().position(|c| c.id == id) else { continue };
            let key = self.chunks[at].key.clone();
            let cost = 2 * (codec::utf16_len(&key) + codec::utf16_len(&value));
            if io.store(&key, &value) {
                let chunk = &mut self.chunks[at];
                self.storage_used = self.storage_used - chunk.cost + cost;
                chunk.cost = cost;
                chunk.written = count;
                chunk.pending = count;
                chunk.stale = false;
            } else {
                // Cannot rewrite it: forget it, and store its events afresh.
                self.release(id, io);
                for ev in self.events.live_mut().iter_mut().filter(|e| e.chunk == id) {
                    ev.chunk = NOT_PERSISTED;
                    self.unpersisted += 1;
                }
            }
        }
    }

    // ---- unload --------------------------------------------------------------------

    /// The page is hidden (`pagehide: false`, it may come back) or going away
    /// (`pagehide: true`): beacon what fits in the keepalive budget, store the rest.
    pub fn unload(&mut self, cfg: &Config, pagehide: bool, io: &mut impl Io) {
        if self.stopped {
            return;
        }
        // The request in flight dies with the page: beacon its events too (the server
        // drops the duplicate if both arrive).
        if pagehide && self.inflight > 0 {
            self.mark_attempted();
            self.token = self.token.wrapping_add(1);
            self.inflight = 0;
        }
        let from = self.inflight;
        let mut budget = whole(cfg.unload_bytes);
        let now = io.now();
        while from < self.events.len() && budget > 0 {
            let (n, body) = self.batch(from, self.batch_limit(cfg), cfg.batch_bytes().min(budget), true, now);
            if n == 0 || !io.beacon(&body) {
                break;
            }
            budget = budget.saturating_sub(body.len());
            self.stats.sent += n as u64;
            self.stats.beaconed += n as u64;
            self.stats.requests += 1;
            for ev in self.events.take(from, n) {
                self.settle(ev, io);
            }
        }
        if self.prefix.is_some() {
            self.compact_chunks(io);
            // Space may have been freed since these were refused: try them again.
            for ev in self.events.live_mut().iter_mut().filter(|e| e.chunk == NO_STORAGE) {
                ev.chunk = NOT_PERSISTED;
                self.unpersisted += 1;
            }
            self.persist_all(cfg, io);
        }
        if pagehide {
            // Neither beaconed nor stored: they go with the page, counted.
            let mut at = self.inflight;
            while at < self.events.len() {
                let chunk = self.events.live()[at].chunk;
                if chunk == NOT_PERSISTED || chunk == NO_STORAGE {
                    if let Some(ev) = self.events.remove(at) {
                        self.drop_event(ev, Drop::Unsaved, io);
                    }
                } else {
                    at += 1;
                }
            }
        }
        self.resolve_waiters(false, io);
    }

    /// Stops for good without sending or storing anything (what a page that is killed
    /// leaves behind).
    pub fn stop(&mut self, io: &mut impl Io) {
        self.stopped = true;
        self.token = self.token.wrapping_add(1);
        self.inflight = 0;
        for timer in [Timer::Flush, Timer::Persist, Timer::Retry] {
            self.disarm(timer, io);
        }
    }

    // ---- helpers -------------------------------------------------------------------

    fn arm(&mut self, timer: Timer, ms: f64, io: &mut impl Io) {
        self.armed[timer as usize] = true;
        io.arm(timer, ms.clamp(0.0, 2_147_483_647.0));
    }

    fn disarm(&mut self, timer: Timer, io: &mut impl Io) {
        if core::mem::take(&mut self.armed[timer as usize]) {
            io.disarm(timer);
        }
    }

    /// A number in [0, 1) for the jitter.
    fn unit(&mut self, io: &mut impl Io) -> f64 {
        if self.random_at + 4 > self.random.len() {
            io.random_bytes(&mut self.random);
            self.random_at = 0;
        }
        let b = &self.random[self.random_at..self.random_at + 4];
        self.random_at += 4;
        f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])) / 4_294_967_296.0
    }
}
