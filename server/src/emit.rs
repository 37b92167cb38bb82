//! Server-side emit into this server: the in-process backend (the ingest rules,
//! de-duplication, the write-ahead log). The tracker, the request-context middleware
//! and the remote backend are the `tracking-emit` crate's, re-exported here.

use std::sync::Arc;

use event_model::routing::{Backend, BackendError};
use event_model::Event;
pub use tracking_emit::{request_tracker, RemoteBackend, RemoteOptions};

use crate::state::AppState;

/// Sends events into this process's ingest pipeline: the ingest rules, de-duplication,
/// then the write-ahead log. Inside a tokio runtime the append runs in the
/// background (failures are counted and logged); outside one it blocks.
pub struct LocalBackend {
    state: Arc<AppState>,
}

impl LocalBackend {
    pub fn new(state: Arc<AppState>) -> Self {
        LocalBackend { state }
    }
}

impl Backend for LocalBackend {
    fn send(&self, event: &Event) -> Result<(), BackendError> {
        self.state.metrics.received.inc();
        let event = match self.state.rules.apply(event.clone()) {
            Ok(event) => event,
            Err(why) => {
                self.state.metrics.rejected.with_label_values(&[why.reason]).inc();
                return Err(BackendError(why.to_string()));
            }
        };
        let state = self.state.clone();
        // The event carries its whole context: its record shares none.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(error) = state.store.accept("{}", std::slice::from_ref(&event)).await {
                        state.metrics.rejected.with_label_values(&["emit_unavailable"]).inc();
                        tracing::error!(%error, "a server-side event could not be stored");
                    }
                });
                Ok(())
            }
            Err(_) => state.store.accept_blocking("{}", std::slice::from_ref(&event)).map(drop).map_err(|e| BackendError(e.to_string())),
        }
    }
}
