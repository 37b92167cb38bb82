//! The SDK's settings: what `configure(options)` sets, with their defaults.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

/// What to do with an event name that is not `namespace.object.action` (nor, for
/// tracking-log events, a legacy name such as `seq_goto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMode {
    Off,
    Warn,
    Reject,
}

/// Tracker settings. Numbers are `f64` because they arrive as JavaScript numbers.
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
    /// Most events held in memory (`maxQueueEvents`).
    pub max_queue_events: f64,
    /// Most bytes of event JSON held in memory (`maxQueueBytes`).
    pub max_queue_bytes: f64,
    /// localStorage key prefix (`storageKey`); `None` (option `false`) disables persistence.
    pub storage_key: Option<String>,
    /// Most localStorage the queue may use, bytes as the browser counts them (two per
    /// character of key and value) (`maxStorageBytes`).
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
    /// Compress batches sent with `fetch` (`gzip`), where the browser has `CompressionStream`.
    pub gzip: bool,
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
            max_queue_bytes: 20_000_000.0,
            storage_key: Some("orgtracking".to_owned()),
            // Half of Chromium's and Firefox's 5 Mi characters per origin (10 MiB as
            // they count), leaving the rest to the site; at about two bytes of event
            // JSON per character (see `codec`), some 12,000 typical events.
            max_storage_bytes: 5_000_000.0,
            persist_delay_ms: 250.0,
            retry_base_ms: 1000.0,
            retry_max_ms: 60_000.0,
            max_retry_after_ms: 3_600_000.0,
            max_retries: 10.0,
            request_timeout_ms: 30_000.0,
            unload_bytes: 64_000.0,
            gzip: true,
            name_mode: NameMode::Warn,
            sensitive_keys: Vec::new(),
        }
    }
}

impl Config {
    /// The numeric options: their `configure` names and fields.
    pub fn numbers_mut(&mut self) -> [(&'static str, &mut f64); 14] {
        [
            ("batchSize", &mut self.batch_events),
            ("batchBytes", &mut self.batch_bytes),
            ("flushInterval", &mut self.flush_interval_ms),
            ("maxEventBytes", &mut self.max_event_bytes),
            ("maxQueueEvents", &mut self.max_queue_events),
            ("maxQueueBytes", &mut self.max_queue_bytes),
            ("maxStorageBytes", &mut self.max_storage_bytes),
            ("persistDelay", &mut self.persist_delay_ms),
            ("retryBaseDelay", &mut self.retry_base_ms),
            ("retryMaxDelay", &mut self.retry_max_ms),
            ("maxRetryAfter", &mut self.max_retry_after_ms),
            ("maxRetries", &mut self.max_retries),
            ("requestTimeout", &mut self.request_timeout_ms),
            ("unloadBytes", &mut self.unload_bytes),
        ]
    }

    /// Sets the endpoint, without trailing slashes.
    pub fn set_endpoint(&mut self, endpoint: &str) {
        // By bytes: a `char` pattern searches from the end by decoding UTF-8 backwards.
        let kept = endpoint.bytes().rposition(|b| b != b'/').map_or(0, |i| i + 1);
        self.endpoint = endpoint.get(..kept).unwrap_or_default().to_owned();
    }

    /// Sets the name validation from its option value; others are ignored.
    pub fn set_name_mode(&mut self, mode: &str) {
        match mode {
            "off" => self.name_mode = NameMode::Off,
            "warn" => self.name_mode = NameMode::Warn,
            "reject" => self.name_mode = NameMode::Reject,
            _ => {}
        }
    }

    pub(crate) fn batch_events(&self) -> usize {
        whole(self.batch_events).max(1)
    }

    pub(crate) fn batch_bytes(&self) -> usize {
        whole(self.batch_bytes).max(1024)
    }
}

/// A non-negative whole number of a JavaScript number (NaN and negatives are 0).
pub(crate) fn whole(n: f64) -> usize {
    // `as` saturates: NaN and negatives are 0, the too large `usize::MAX`.
    n as usize
}

/// A whole decimal number written in ASCII digits (`""` and other text: `None`).
pub fn whole_number(text: &str) -> Option<f64> {
    if text.is_empty() || text.len() > 15 {
        return None;
    }
    text.bytes().try_fold(0f64, |n, b| b.is_ascii_digit().then(|| n * 10.0 + f64::from(b - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_without_trailing_slashes() {
        let mut cfg = Config::default();
        for (given, kept) in [
            ("https://events.example.com/", "https://events.example.com"),
            ("https://events.example.com///", "https://events.example.com"),
            ("https://events.example.com/base", "https://events.example.com/base"),
            ("https://ünï.example/é/", "https://ünï.example/é"),
            ("/", ""),
            ("", ""),
        ] {
            cfg.set_endpoint(given);
            assert_eq!(cfg.endpoint, kept, "{given:?}");
        }
    }
}
