//! What the SDK's core asks of its environment: the clock, randomness, requests,
//! beacons, storage and timers. The browser provides it (`browser`); native tests
//! provide a simulated one. Everything the core decides is a call on this trait, and
//! everything that comes back (a response, a timer) is a call on the core.

use alloc::string::String;
use alloc::vec::Vec;

/// The core's timers; arming one replaces the one armed before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Send a partial batch.
    Flush = 0,
    /// Write new events to storage.
    Persist = 1,
    /// Try again after a failure.
    Retry = 2,
}

/// The answer to a batch request, as the core needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// The HTTP status; 0 for a network error or a timeout.
    pub status: u16,
    /// `Retry-After`, in ms from now.
    pub retry_after_ms: Option<f64>,
    /// The `error` of a refused batch's JSON reply (`invalid_json`, …).
    pub error: Option<String>,
    /// The ids the server rejected in a 2xx reply's `results`.
    pub rejected: Vec<String>,
}

/// Why queued or recorded events are dropped; `getStats().dropped` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    Unsaved,
}

/// The names of [`Drop`] reasons, in order.
pub const DROP_NAMES: [&str; 10] = [
    "size_limit",
    "invalid_name",
    "invalid_data",
    "rejected",
    "http_4xx",
    "retry_exhausted",
    "queue_full",
    "storage_corrupt",
    "busy",
    "unsaved",
];

pub trait Io {
    /// Unix time, ms.
    fn now(&mut self) -> f64;
    fn random_bytes(&mut self, out: &mut [u8]);
    /// `navigator.onLine`.
    fn online(&mut self) -> bool;
    /// Sends a batch body; the response comes back to `Core::on_response(token, …)`,
    /// always later (never from inside this call).
    fn send(&mut self, token: u32, body: &str);
    /// Hands a body to the unload transport (`sendBeacon`); whether it was taken.
    fn beacon(&mut self, body: &str) -> bool;
    fn load(&mut self, key: &str) -> Option<String>;
    /// Writes a value; `false` when storage refused it (quota, disabled).
    fn store(&mut self, key: &str, value: &str) -> bool;
    fn unstore(&mut self, key: &str);
    /// The stored keys that start with `prefix`, sorted.
    fn keys(&mut self, prefix: &str) -> Vec<String>;
    /// Fires `Core::on_timer(timer)` after `ms`.
    fn arm(&mut self, timer: Timer, ms: f64);
    fn disarm(&mut self, timer: Timer);
    /// A `flush()` promise is due to resolve.
    fn settled(&mut self, waiter: u32);
    fn warn(&mut self, message: &str, detail: &str);
    /// `String.prototype.toLowerCase` on UTF-16 code units (the snake_case words).
    fn lower_case(&self, word: &[u16]) -> Vec<u16>;
    /// An event the core dropped after queueing it (tests account for each one).
    fn dropped(&mut self, _event: &str, _reason: Drop) {}
    /// An event whose request was in flight when the page went away and that could be
    /// neither beaconed nor stored: the server may have it or not.
    fn unconfirmed(&mut self, _event: &str) {}
}
