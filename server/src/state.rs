//! What the HTTP handlers share: durable acceptance, the rules, limits, metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use event_model::routing::Counters;

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
    /// Per-client limits, checked before anything else (see `ratelimit`).
    pub rate_limit: crate::ratelimit::RateLimit,
    pub ready: AtomicBool,
    pub demo: bool,
    /// The SDK files the demo page serves.
    pub sdk_dir: std::path::PathBuf,
    /// The shared token of `POST /v1/events` (`TRACKING_SERVER_TOKEN`); `None` closes it.
    pub server_token: Option<String>,
    /// Each sink's state, lag and counts (`/status`).
    pub sinks: Arc<Vec<Arc<crate::sinks::driver::SinkStatus>>>,
    /// `[wal] max_bytes`, for `/status`.
    pub limits_wal_max_bytes: u64,
}

impl AppState {
    /// The per-client limiter of `limits`, or none when `rate_per_second` is 0.
    pub fn client_limiter(limits: &LimitsSection) -> Option<crate::ratelimit::ClientLimiter> {
        (limits.rate_per_second > 0)
            .then(|| crate::ratelimit::ClientLimiter::new(limits.rate_per_second, limits.rate_burst, limits.rate_clients))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
