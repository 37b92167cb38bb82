//! What the HTTP handlers share: the log, de-duplication, rules, limits, metrics.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use event_model::routing::Counters;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsSection;
use crate::dedupe::Dedupe;
use crate::ingest::IngestRules;
use crate::metrics::Metrics;
use crate::wal::Wal;

/// Shared state of the ingest handlers.
pub struct AppState {
    pub wal: Wal,
    pub dedupe: Dedupe,
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
    /// With the demo page on: the last events accepted, shown by the page.
    pub recent: Option<std::sync::Mutex<std::collections::VecDeque<Vec<u8>>>>,
}

/// How many accepted events the demo page shows.
pub const RECENT_EVENTS: usize = 50;

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

/// What became of an event handed to [`AppState::accept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Accepted,
    Duplicate,
}

/// Why nothing could be stored: the log is full or failing (the client retries).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

impl AppState {
    /// De-duplicates `events` by id and appends the new ones to the write-ahead log;
    /// returns once they are durable. On failure nothing is stored and no id is
    /// remembered, so the client's retry is accepted.
    pub async fn accept(&self, events: Vec<crate::ingest::Accepted>) -> Result<Vec<Stored>, Unavailable> {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut records = Vec::with_capacity(events.len());
        let mut reserved = Vec::with_capacity(events.len());
        for event in events {
            if let Some(id) = event.id {
                if self.dedupe.reserve(id) == crate::dedupe::Seen::Duplicate {
                    outcomes.push(Stored::Duplicate);
                    continue;
                }
                reserved.push(id);
            }
            if let Some(recent) = &self.recent {
                let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
                if recent.len() == RECENT_EVENTS {
                    recent.pop_front();
                }
                recent.push_back(event.record.clone());
            }
            records.push(event.record);
            outcomes.push(Stored::Accepted);
        }
        if !records.is_empty() {
            if let Err(error) = self.wal.append(records).await {
                self.dedupe.release(&reserved);
                return Err(Unavailable(error.to_string()));
            }
            self.dedupe.confirm(&reserved);
        }
        let accepted = outcomes.iter().filter(|o| **o == Stored::Accepted).count() as u64;
        self.metrics.accepted.inc_by(accepted);
        self.metrics.duplicate.inc_by(outcomes.len() as u64 - accepted);
        Ok(outcomes)
    }
}
