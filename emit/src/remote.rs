//! The remote backend: events batched over HTTP to an ingest server's `POST /v1/events`.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_model::routing::{Backend, BackendError};
use event_model::Event;

/// Options of the remote backend.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The ingest server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// The shared token of `POST /v1/events` (the server's `TRACKING_SERVER_TOKEN`).
    pub token: String,
    pub max_batch: usize,
    pub max_delay: Duration,
    /// Events held while the server is unreachable; beyond it new events are dropped
    /// (counted, logged).
    pub buffer: usize,
}

impl RemoteOptions {
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        RemoteOptions { url: url.into(), token: token.into(), max_batch: 100, max_delay: Duration::from_millis(500), buffer: 10_000 }
    }
}

enum Message {
    Event(Box<Event>),
    Flush(SyncSender<()>),
}

/// Batches events to a remote ingest server's `POST /v1/events`, retrying with
/// backoff on 5xx, 429 and network errors; events keep their ids, so retries are
/// de-duplicated by the server.
pub struct RemoteBackend {
    tx: SyncSender<Message>,
    worker: Option<JoinHandle<()>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl RemoteBackend {
    pub fn new(options: RemoteOptions) -> Self {
        let (tx, rx) = mpsc::sync_channel(options.buffer);
        let worker = std::thread::Builder::new()
            .name("tracking remote emit".into())
            .spawn(move || remote_worker(options, rx))
            .expect("spawning the remote emit thread");
        RemoteBackend { tx, worker: Some(worker), dropped: Default::default() }
    }

    /// Waits up to `timeout` until every event sent so far has been delivered;
    /// returns whether it was.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.tx.send(Message::Flush(done_tx)).is_ok() && done_rx.recv_timeout(timeout).is_ok()
    }

    /// Events dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for RemoteBackend {
    fn drop(&mut self) {
        let delivered = self.flush(Duration::from_secs(10));
        // Closing the channel ends the worker once it is idle.
        let (closed, _) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.tx, closed));
        match self.worker.take() {
            Some(worker) if delivered => {
                let _ = worker.join();
            }
            _ => tracing::error!("stopping with server events not yet delivered to the ingest server"),
        }
    }
}

impl Backend for RemoteBackend {
    fn send(&self, event: &Event) -> Result<(), BackendError> {
        match self.tx.try_send(Message::Event(Box::new(event.clone()))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!("remote emit buffer full; event dropped");
                Err(BackendError("remote emit buffer full".into()))
            }
            Err(TrySendError::Disconnected(_)) => Err(BackendError("remote emit stopped".into())),
        }
    }
}

fn remote_worker(options: RemoteOptions, rx: Receiver<Message>) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let endpoint = format!("{}/v1/events", options.url.trim_end_matches('/'));
    let mut batch: Vec<Event> = Vec::new();
    let mut waiting: Vec<SyncSender<()>> = Vec::new();
    loop {
        let deadline = Instant::now() + options.max_delay;
        let mut closed = false;
        while batch.len() < options.max_batch && waiting.is_empty() {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Message::Event(event)) => batch.push(*event),
                Ok(Message::Flush(done)) => waiting.push(done),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            deliver(&agent, &endpoint, &options.token, std::mem::take(&mut batch));
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

/// Posts one batch until it is accepted or refused for good; a server that is down
/// is retried with capped backoff for as long as it takes (the bounded buffer in
/// front of the worker holds new events meanwhile).
fn deliver(agent: &ureq::Agent, endpoint: &str, token: &str, events: Vec<Event>) {
    let body = serde_json::json!({ "events": events }).to_string();
    let mut delay = Duration::from_millis(200);
    for attempt in 1u64.. {
        let result = agent
            .post(endpoint)
            .set("Content-Type", "application/json")
            .set("Authorization", &format!("Bearer {token}"))
            .send_string(&body);
        let retry_after = match result {
            Ok(_) => return,
            Err(ureq::Error::Status(code, response)) if code == 429 || code >= 500 => {
                response.header("Retry-After").and_then(|v| v.parse::<u64>().ok()).map(Duration::from_secs)
            }
            Err(ureq::Error::Status(code, _)) => {
                tracing::error!(status = code, events = events.len(), "the ingest server refused a batch of server events");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, attempt, "ingest server unreachable; retrying");
                None
            }
        };
        std::thread::sleep(retry_after.unwrap_or(delay));
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}
