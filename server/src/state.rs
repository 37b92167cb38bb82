//! What the HTTP handlers share: durable acceptance, the rules, limits, metrics.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use event_model::routing::Counters;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsSection;
use crate::ingest::{IngestRules, Store};
use crate::metrics::Metrics;

/// Shared state of the ingest handlers.
pub struct AppState {
    /// De-duplication and the write-ahead log.
    pub store: Store,
    pub rules: IngestRules,
    pub limits: LimitsSection,
    pub metrics: Arc<Metrics>,
    pub counters: Arc<Counters>,
    /// Origins allowed for CORS and for cookie-authenticated POSTs.
    pub allowed_origins: Vec<String>,
    pub rate_limiter: Option<DefaultKeyedRateLimiter<String>>,
    pub ready: AtomicBool,
    pub demo: bool,
    /// The shared token of `POST /v1/events` (`TRACKING_SERVER_TOKEN`); `None` closes it.
    pub server_token: Option<String>,
    /// Each sink's state, lag and counts (`/status`).
    pub sinks: Arc<Vec<Arc<crate::sinks::driver::SinkStatus>>>,
    /// `[wal] max_bytes`, for `/status`.
    pub limits_wal_max_bytes: u64,
}

impl AppState {
    /// A per-client-IP limiter, or none when `rate_per_second` is 0.
    pub fn rate_limiter(limits: &LimitsSection) -> Option<DefaultKeyedRateLimiter<String>> {
        let rate = NonZeroU32::new(limits.rate_per_second)?;
        let burst = NonZeroU32::new(limits.rate_burst.max(limits.rate_per_second)).unwrap_or(rate);
        Some(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
    }

    /// Whether a request from `client` is within its rate.
    pub fn within_rate(&self, client: &str) -> bool {
        match &self.rate_limiter {
            None => true,
            Some(limiter) => limiter.check_key(&client.to_owned()).is_ok(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
