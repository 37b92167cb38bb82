//! The Tracking ingest server, as a library: HTTP handlers, the request-context
//! middleware, the write-ahead log, the sinks, and the server-side emit API.
//!
//! Layout: `http/` (handlers, thin), `ingest` (bodies to events, the acceptance
//! rules), `state` (what handlers share; de-duplicated durable acceptance),
//! `context` (the request-context middleware, from `tracking-emit`), `wal` (the `tracking-wal` crate),
//! `sinks/` (consumers of the log), `emit` (server-side emit), `app` (assembly).
/// The request-context middleware (the `tracking-emit` crate's).
pub use tracking_emit::context;
/// The write-ahead log (the `tracking-wal` crate).
pub use tracking_wal as wal;

pub mod app;
pub mod config;
pub mod convert;
pub mod dedupe;
pub mod emit;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod ratelimit;
pub mod record;
pub mod relay;
pub mod sinks;
pub mod state;
