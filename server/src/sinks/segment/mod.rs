//! Segment: events mapped to the HTTP Tracking API ([`mapping`]) and posted to
//! `/v1/batch` ([`client`]) by the shared sink driver.
//!
//! A batch of the log's records becomes Segment batches (≤ `max_batch_bytes`,
//! ≤ `max_batch_events`); the checkpoint moves past the records only once Segment
//! took them all, so delivery is at least once and Segment de-duplicates by
//! `messageId`, which is the event id. A batch Segment refuses for good (a 4xx other
//! than 401, 403, 408 and 429) goes to the dead-letter file ([`dead_letter`]) with the
//! status and response, as does an event over Segment's per-event limit; the sink then
//! moves on. A revoked key (401/403) is retried like an outage, reported as
//! `failing: credentials`, and, past the sink's backlog budget, spilled (the default
//! policy for Segment) so it never holds the tracking log or ingest back.
//!
//! The write key comes from the environment (`TRACKING_SEGMENT_WRITE_KEY`) and is
//! sent as HTTP Basic auth; it is never logged. Logs carry statuses and counts, never
//! an event or a response body (the dead-letter file, mode 0640, holds those).

pub mod client;
pub mod dead_letter;
pub mod mapping;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_model::config::Chain;
use event_model::processor::Rejection;
use event_model::{timestamp, Json};
use serde::Deserialize;

pub use client::{Client, PostError, WriteKey};
use dead_letter::DeadLetter;
pub use mapping::{check_message, to_message};

use super::driver::{Checkpointer, Failure, NoState, Records, Sink};
use crate::metrics::Metrics;

/// The environment variable that holds the write key.
pub const WRITE_KEY_ENV: &str = "TRACKING_SEGMENT_WRITE_KEY";

/// Bytes of a batch body around its messages: `{"batch":[` … `],"sentAt":"…"}`.
const ENVELOPE_BYTES: usize = 64;

/// Options of a `segment` sink in the routing configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    #[serde(default = "default_endpoint")]
    endpoint: String,
    #[serde(default = "default_max_batch_bytes")]
    max_batch_bytes: usize,
    #[serde(default = "default_max_event_bytes")]
    max_event_bytes: usize,
    #[serde(default = "default_max_batch_events")]
    max_batch_events: usize,
    #[serde(default = "default_flush_ms")]
    flush_ms: u64,
    #[serde(default = "default_dead_letter")]
    dead_letter: PathBuf,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_min_backoff_ms")]
    min_backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    max_backoff_ms: u64,
    #[serde(default = "default_shutdown_grace_ms")]
    shutdown_grace_ms: u64,
    #[serde(default = "default_write_key_env")]
    write_key_env: String,
}

fn default_endpoint() -> String {
    "https://api.segment.io".into()
}
fn default_max_batch_bytes() -> usize {
    500_000
}
fn default_max_event_bytes() -> usize {
    32_000
}
fn default_max_batch_events() -> usize {
    500
}
fn default_flush_ms() -> u64 {
    1000
}
fn default_dead_letter() -> PathBuf {
    "segment-dead-letter.jsonl".into()
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_min_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    30_000
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}
fn default_write_key_env() -> String {
    WRITE_KEY_ENV.into()
}

/// Resolved options.
#[derive(Debug, Clone)]
pub struct Options {
    /// The batch URL: the configured endpoint with `/v1/batch`.
    pub batch_url: String,
    /// A request body is at most this long (Segment: 500 KB).
    pub max_batch_bytes: usize,
    /// A longer message is dead-lettered (Segment: 32 KB).
    pub max_event_bytes: usize,
    /// Messages per request.
    pub max_batch_events: usize,
    /// A batch waits at most this long for more events before it is sent.
    pub flush: Duration,
    /// Refused events, one JSON object per line.
    pub dead_letter: PathBuf,
    /// One HTTP request, connection included.
    pub timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// On shutdown, how long the sink keeps trying to deliver what is committed;
    /// what it cannot deliver by then is sent after the restart.
    pub shutdown_grace: Duration,
    /// The environment variable holding the write key.
    pub write_key_env: String,
}

impl Options {
    /// Reads the sink's table; a relative `dead_letter` path is under `data_dir`.
    pub fn from_table(table: &toml::Table, data_dir: &Path) -> Result<Self, String> {
        let raw = RawOptions::deserialize(toml::Value::Table(table.clone())).map_err(|e| e.to_string())?;
        let endpoint = raw.endpoint.trim_end_matches('/');
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(format!("endpoint must be an http:// or https:// URL, not `{endpoint}`"));
        }
        if raw.max_event_bytes == 0 || raw.max_event_bytes + ENVELOPE_BYTES > raw.max_batch_bytes {
            return Err(format!(
                "max_event_bytes ({}) must be above 0 and leave {ENVELOPE_BYTES} bytes of max_batch_bytes ({})",
                raw.max_event_bytes, raw.max_batch_bytes
            ));
        }
        if raw.max_batch_events == 0 || raw.flush_ms == 0 || raw.timeout_ms == 0 {
            return Err("max_batch_events, flush_ms and timeout_ms must be above 0".into());
        }
        if raw.min_backoff_ms == 0 || raw.min_backoff_ms > raw.max_backoff_ms {
            return Err("min_backoff_ms must be above 0 and at most max_backoff_ms".into());
        }
        let dead_letter = if raw.dead_letter.is_absolute() { raw.dead_letter } else { data_dir.join(raw.dead_letter) };
        Ok(Options {
            batch_url: format!("{endpoint}/v1/batch"),
            max_batch_bytes: raw.max_batch_bytes,
            max_event_bytes: raw.max_event_bytes,
            max_batch_events: raw.max_batch_events,
            flush: Duration::from_millis(raw.flush_ms),
            dead_letter,
            timeout: Duration::from_millis(raw.timeout_ms),
            min_backoff: Duration::from_millis(raw.min_backoff_ms),
            max_backoff: Duration::from_millis(raw.max_backoff_ms),
            shutdown_grace: Duration::from_millis(raw.shutdown_grace_ms),
            write_key_env: raw.write_key_env,
        })
    }
}

/// A message ready to send: its id and compact JSON.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub json: String,
}

/// The Segment batches of `messages`, each within the size and count limits.
pub fn chunks<'m>(messages: &'m [Message], options: &Options) -> Vec<&'m [Message]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, m) in messages.iter().enumerate() {
        let n = i - start;
        if n > 0 && (n >= options.max_batch_events || bytes + 1 + m.json.len() + ENVELOPE_BYTES > options.max_batch_bytes) {
            out.push(&messages[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += m.json.len() + usize::from(i > start);
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

/// `{"batch":[…],"sentAt":"…"}`.
pub fn batch_body(messages: &[Message]) -> Vec<u8> {
    let sent_at = timestamp::format(timestamp::now());
    let mut body = Vec::with_capacity(messages.iter().map(|m| m.json.len() + 1).sum::<usize>() + ENVELOPE_BYTES);
    body.extend_from_slice(b"{\"batch\":[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(m.json.as_bytes());
    }
    body.extend_from_slice(b"],\"sentAt\":\"");
    body.extend_from_slice(sent_at.as_bytes());
    body.extend_from_slice(b"\"}");
    body
}

/// The messages of a batch of records, kept while it is retried (each is prepared,
/// and each refused one dead-lettered, once), and how many of its Segment batches
/// were already taken.
struct Pending {
    first: u64,
    last: u64,
    messages: Vec<Message>,
    posted: usize,
}

/// The Segment sink.
pub struct SegmentSink {
    name: String,
    options: Options,
    chain: Chain,
    metrics: Arc<Metrics>,
    client: Client,
    dead_letter: DeadLetter,
    pending: Option<Pending>,
    /// When each dead-letter reason was last logged (the metric counts them all).
    warned: HashMap<&'static str, Instant>,
}

impl SegmentSink {
    pub fn new(name: String, options: Options, key: WriteKey, chain: Chain, metrics: Arc<Metrics>) -> Self {
        let client = Client::new(options.batch_url.clone(), &key, options.timeout);
        let dead_letter = DeadLetter::new(options.dead_letter.clone());
        SegmentSink { name, options, chain, metrics, client, dead_letter, pending: None, warned: HashMap::new() }
    }

    /// The messages for `records`: routing drops are counted by the routing counters;
    /// what Segment would refuse goes to the dead-letter file now.
    fn prepare(&mut self, records: &Records) -> Result<Vec<Message>, Failure> {
        let mut messages = Vec::new();
        for (seq, record) in records {
            let Some(events) = crate::sinks::events_of(&self.metrics, &self.name, *seq, record) else { continue };
            for event in events {
                let Ok(event) = self.chain.process(event) else { continue };
                let message = to_message(&event);
                let json = Json::Object(message.clone()).to_compact();
                let id = message.get_str("messageId").unwrap_or_default().into_owned();
                match check_message(&message, json.len(), self.options.max_event_bytes) {
                    Some(why) => self.dead_letter(&id, &json, &why, None)?,
                    None => messages.push(Message { id, json }),
                }
            }
        }
        Ok(messages)
    }

    fn dead_letter(&mut self, id: &str, json: &str, why: &Rejection, response: Option<(u16, &str)>) -> Result<(), Failure> {
        self.dead_letter.write(&self.name, id, json, why, response)?;
        if response.is_none() {
            // One line per reason every 10 seconds at most; the metric counts them all.
            let now = Instant::now();
            let quiet = self.warned.get(why.reason).is_some_and(|at| now.duration_since(*at) < Duration::from_secs(10));
            if !quiet {
                self.warned.insert(why.reason, now);
                tracing::warn!(sink = %self.name, reason = why.reason, path = %self.dead_letter.path().display(), "{}; the event is in the dead-letter file (more within 10 s are counted, not logged)", why.detail);
            }
        }
        self.metrics.sink_dead_lettered.with_label_values(&[&self.name, why.reason]).inc();
        Ok(())
    }

    /// Posts one Segment batch; a refusal dead-letters its messages.
    fn post(&mut self, chunk: &[Message]) -> Result<(), Failure> {
        match self.client.post(&batch_body(chunk)) {
            Ok(()) => Ok(()),
            Err(PostError::Refused { status, body }) => {
                tracing::error!(sink = %self.name, status, events = chunk.len(), path = %self.dead_letter.path().display(), "Segment refused a batch; its events are in the dead-letter file");
                let why = Rejection::new("refused", format!("Segment answered {status}"));
                for m in chunk {
                    self.dead_letter(&m.id, &m.json, &why, Some((status, &body)))?;
                }
                Ok(())
            }
            Err(PostError::Credentials { status, retry_after }) => {
                Err(Failure::credentials(format!("Segment refuses the write key (status {status})")).retry_after(retry_after))
            }
            Err(PostError::Retry { why, retry_after }) => Err(Failure::unavailable(format!("Segment: {why}")).retry_after(retry_after)),
        }
    }

    /// Delivers spilled lines (log records, or messages as earlier versions spilled
    /// them), in batches; returns how many messages.
    pub fn replay(&mut self, lines: &[String]) -> Result<u64, Failure> {
        let (records, messages) = super::spill::split_replay_lines(lines);
        let mut messages: Vec<Message> = messages
            .iter()
            .filter_map(|line| {
                let parsed = event_model::Fields::parse_text(&event_model::Text::from(*line))?;
                Some(Message { id: parsed.get_str("messageId").unwrap_or_default().into_owned(), json: (*line).to_owned() })
            })
            .collect();
        messages.extend(self.prepare(&records)?);
        for chunk in chunks(&messages, &self.options) {
            self.post(chunk)?;
        }
        self.dead_letter.sync()?;
        Ok(messages.len() as u64)
    }
}

impl Sink for SegmentSink {
    type State = NoState;

    fn resume(&mut self, _: Option<NoState>) -> Result<(), Failure> {
        self.pending = None;
        tracing::info!(sink = %self.name, url = %self.options.batch_url, "segment sink starting");
        Ok(())
    }

    fn deliver(&mut self, records: &Records, _: &mut Checkpointer<'_, NoState>) -> Result<u64, Failure> {
        let (first, last) = (records.first().map_or(0, |r| r.0), records.last().map_or(0, |r| r.0));
        if !self.pending.as_ref().is_some_and(|p| p.first == first && p.last == last) {
            let messages = self.prepare(records)?;
            self.pending = Some(Pending { first, last, messages, posted: 0 });
        }
        let mut pending = self.pending.take().expect("prepared above");
        let result = (|| {
            let chunks = chunks(&pending.messages, &self.options);
            for chunk in &chunks[pending.posted..] {
                self.post(chunk)?;
                pending.posted += 1;
            }
            self.dead_letter.sync()?;
            Ok(pending.messages.len() as u64)
        })();
        if result.is_err() {
            // Retried as it is: what Segment took is not posted again.
            self.pending = Some(pending);
        }
        result
    }

    fn state(&self) -> NoState {
        NoState {}
    }

    fn batching(&self) -> (usize, Duration) {
        (self.options.max_batch_events, self.options.flush)
    }

    /// About two Segment batches of records at a time.
    fn batch_bytes(&self) -> u64 {
        2 * self.options.max_batch_bytes as u64
    }

    fn backoff(&self) -> (Duration, Duration) {
        (self.options.min_backoff, self.options.max_backoff)
    }

    fn shutdown_grace(&self) -> Duration {
        self.options.shutdown_grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let table: toml::Table = toml::from_str("endpoint = \"http://127.0.0.1:9/\"\nflush_ms = 50").unwrap();
        let o = Options::from_table(&table, Path::new("/data")).unwrap();
        assert_eq!(o.batch_url, "http://127.0.0.1:9/v1/batch");
        assert_eq!(o.dead_letter, PathBuf::from("/data/segment-dead-letter.jsonl"));
        assert_eq!((o.max_batch_bytes, o.max_event_bytes), (500_000, 32_000));
        let bad = |text: &str| Options::from_table(&toml::from_str(text).unwrap(), Path::new("/d")).unwrap_err();
        assert!(bad("endpoint = \"ftp://x\"").contains("endpoint"));
        assert!(bad("max_event_bytes = 600000").contains("max_event_bytes"));
        assert!(bad("write_key = \"x\"").contains("unknown field"), "the key is never in the file");
    }

    #[test]
    fn batches_stay_under_the_limits() {
        let options = Options::from_table(
            &toml::from_str("max_batch_bytes = 1000\nmax_event_bytes = 300\nmax_batch_events = 5").unwrap(),
            Path::new("/d"),
        )
        .unwrap();
        let messages: Vec<Message> = (0..10).map(|n| Message { id: n.to_string(), json: "x".repeat(300) }).collect();
        let chunks = chunks(&messages, &options);
        assert_eq!(chunks.iter().map(|c| c.len()).collect::<Vec<_>>(), [3, 3, 3, 1]);
        for chunk in &chunks {
            assert!(batch_body(chunk).len() <= 1000);
        }
        let small: Vec<Message> = (0..12).map(|n| Message { id: n.to_string(), json: "{}".into() }).collect();
        assert_eq!(super::chunks(&small, &options).iter().map(|c| c.len()).collect::<Vec<_>>(), [5, 5, 2]);
    }
}
