//! Server-side tracking events for Rust services, without the ingest server.
//!
//! A service calls `tracker.emit(name, data)` in its handlers; the event carries the
//! contexts entered around it (the request context from the actix-web middleware,
//! `edx.course`, …). Where it goes is the tracker's backend:
//!
//! - [`tracking_log::in_process`]: tracking-log lines, as the Python LMS writes
//!   them, appended to a file by this process;
//! - [`remote::RemoteBackend`]: batched over HTTP to an ingest server's
//!   `POST /v1/events`, retried, de-duplicated there by event id;
//! - any [`event_model::routing::Backend`] (the ingest server's own in-process
//!   backend writes into its write-ahead log).
//!
//! Features: `actix` (default) adds [`context`], the request-context middleware.

#[cfg(feature = "actix")]
pub mod context;
pub mod remote;
pub mod tracking_log;

use std::sync::Arc;

use event_model::context::TaskStore;
use event_model::routing::Backend;
use event_model::Tracker;

pub use remote::{RemoteBackend, RemoteOptions};

/// A tracker whose contexts live in the current tokio task (the middleware enters the
/// request context there, so each request has its own).
pub fn request_tracker(backend: Arc<dyn Backend>) -> Arc<Tracker> {
    Arc::new(Tracker::with_store(backend, Arc::new(TaskStore::new())))
}
