//! Segment: events mapped to the HTTP Tracking API and posted to `/v1/batch`.
//!
//! The sink reads the write-ahead log at its own checkpoint, like the tracking-log
//! sink, on its own thread with a blocking HTTP client. A batch is posted until
//! Segment accepts it (retries with exponential backoff and jitter on 5xx, 429 and
//! network errors, honouring `Retry-After`), and only then does the checkpoint move
//! past it: delivery is at least once, and Segment de-duplicates by `messageId`,
//! which is the event id. A batch Segment refuses for good (another 4xx) goes to a
//! dead-letter file with the status and response, as does an event over Segment's
//! per-event limit; the sink then moves on. A slow or failed Segment never blocks
//! ingest: it only grows this sink's lag.
//!
//! The write key comes from the environment (`TRACKING_SEGMENT_WRITE_KEY`) and is
//! sent as HTTP Basic auth; it is never logged. Logs carry statuses and counts, never
//! an event or a response body (the dead-letter file, mode 0640, holds those).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use event_model::config::Chain;
use event_model::processor::Rejection;
use event_model::processors::{event_type, TRACKING_LOG_TYPE};
use event_model::{timestamp, Event, Map, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{SinkContext, SinkError};

/// The environment variable that holds the write key.
pub const WRITE_KEY_ENV: &str = "TRACKING_SEGMENT_WRITE_KEY";

/// Bytes of a batch body around its messages: `{"batch":[` … `],"sentAt":"…"}`.
const ENVELOPE_BYTES: usize = 64;

/// At most this much of a refusal's response body goes to the dead-letter file.
const MAX_RESPONSE_BYTES: u64 = 4096;

/// A `Retry-After` longer than this is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

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

/// The write key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct WriteKey(String);

impl std::fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteKey(<redacted>)")
    }
}

impl WriteKey {
    pub fn new(key: impl Into<String>) -> Self {
        WriteKey(key.into())
    }

    /// Reads the key from `var`; missing or empty is an error that names the variable.
    pub fn from_env(var: &str) -> Result<Self, String> {
        match std::env::var(var) {
            Ok(key) if !key.trim().is_empty() => Ok(WriteKey(key.trim().to_owned())),
            _ => Err(format!("the Segment write key is missing: set the environment variable {var}")),
        }
    }

    /// `Basic base64(key:)`: the key as the user name and an empty password.
    fn authorization(&self) -> String {
        format!("Basic {}", base64(format!("{}:", self.0).as_bytes()))
    }
}

/// Standard base64 with padding.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Mapping

fn non_empty<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The path of a URL (`https://h/a/b?q#f` → `/a/b`); a path is returned as it is.
fn url_path(url: &str) -> Option<&str> {
    let rest = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            match after.find(['/', '?', '#']) {
                Some(j) if after.as_bytes()[j] == b'/' => &after[j..],
                _ => return Some("/"),
            }
        }
        None if url.starts_with('/') => url,
        None => return None,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The first language tag of an `Accept-Language` header, as Segment's `locale`.
fn locale(accept_language: &str) -> Option<&str> {
    let first = accept_language.split(',').next()?.split(';').next()?.trim();
    (!first.is_empty() && first != "*").then_some(first)
}

/// Segment's `userId`: the context's `user_id`, which the server sets from a verified
/// credential only (a client-declared id is kept apart and never used here).
fn user_id(context: &Map<String, Value>) -> Option<String> {
    match context.get("user_id")? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The event id, or for an event without one a stable id derived from its content,
/// so a redelivery still de-duplicates.
fn message_id(event: &Event) -> String {
    match event.id() {
        Some(id) => id.to_owned(),
        None => {
            let bytes = serde_json::to_vec(event).unwrap_or_default();
            format!("tracking-{}", hex::encode(&Sha256::digest(&bytes)[..16]))
        }
    }
}

/// The `page` context of Segment. For browser events the page is the event's page
/// URL and the referrer the one the SDK sent (the ingest request's own `Referer` is
/// the page itself); for server events it is the request the service handled.
fn page_context(event: &Event) -> Map<String, Value> {
    let top = event.as_map();
    let context = event.context();
    let browser = context.get("event_source").and_then(Value::as_str) == Some("browser");
    let mut url = non_empty(context, "page").map(str::to_owned);
    let path;
    let referrer;
    if browser {
        path = url.as_deref().and_then(url_path).map(str::to_owned);
        referrer = non_empty(top, "referrer").map(str::to_owned);
    } else {
        let request_path = non_empty(context, "path");
        if url.is_none() {
            if let (Some(host), Some(p)) = (non_empty(context, "host"), request_path) {
                url = Some(format!("https://{host}{p}"));
            }
        }
        path = request_path.map(str::to_owned).or_else(|| url.as_deref().and_then(url_path).map(str::to_owned));
        referrer = non_empty(top, "referrer").or_else(|| non_empty(context, "referer")).map(str::to_owned);
    }
    let mut page = Map::new();
    for (key, value) in [("path", path), ("referrer", referrer), ("url", url)] {
        if let Some(value) = value {
            page.insert(key.into(), Value::String(value));
        }
    }
    page
}

/// Maps an event (after its branch's processors) to a message of Segment's HTTP
/// Tracking API. Tracking-log and server events become `track` calls named by the
/// event name. Whether the message is acceptable is [`check_message`]'s business.
pub fn to_message(event: &Event) -> Map<String, Value> {
    let top = event.as_map();
    let context = event.context();
    let kind = match event_type(event) {
        TRACKING_LOG_TYPE => "track",
        other => other,
    };
    let mut m = Map::new();
    m.insert("type".into(), Value::String(kind.into()));
    m.insert("messageId".into(), Value::String(message_id(event)));
    if let Some(ts) = non_empty(top, "client_timestamp").or_else(|| non_empty(top, "timestamp")) {
        m.insert("timestamp".into(), Value::String(ts.to_owned()));
    }
    if let Some(user_id) = user_id(context) {
        m.insert("userId".into(), Value::String(user_id));
    }
    let anonymous = non_empty(top, "anonymous_id").or_else(|| non_empty(context, "session")).or_else(|| non_empty(context, "client_id"));
    if let Some(anonymous) = anonymous {
        m.insert("anonymousId".into(), Value::String(anonymous.to_owned()));
    }

    let mut payload = match event.data() {
        Some(Value::Object(data)) => data.clone(),
        None | Some(Value::Null) => Map::new(),
        // A legacy `/event` payload that is not an object (a raw string).
        Some(other) => {
            let mut wrapped = Map::new();
            wrapped.insert("data".into(), other.clone());
            wrapped
        }
    };
    let page = page_context(event);
    match kind {
        "identify" => {
            m.insert("traits".into(), Value::Object(payload));
        }
        _ => {
            if kind == "page" {
                m.insert("name".into(), Value::String(event.name().to_owned()));
                if let Some(category) = non_empty(top, "category") {
                    m.insert("category".into(), Value::String(category.to_owned()));
                }
                // Segment's reserved page properties, as analytics.js fills them.
                for (key, value) in &page {
                    if !payload.contains_key(key) {
                        payload.insert(key.clone(), value.clone());
                    }
                }
            } else {
                m.insert("event".into(), Value::String(event.name().to_owned()));
                if let Some(category) = non_empty(top, "category") {
                    payload.entry("category").or_insert_with(|| Value::String(category.to_owned()));
                }
            }
            // The Google Analytics processor's fields.
            for key in ["label", "nonInteraction"] {
                if let Some(value) = top.get(key).filter(|v| !v.is_null()) {
                    payload.insert(key.into(), value.clone());
                }
            }
            m.insert("properties".into(), Value::Object(payload));
        }
    }

    let mut segment_context = Map::new();
    // Without an address Segment would locate the user at the ingest server; 0.0.0.0
    // tells it not to record one.
    let ip = non_empty(context, "ip").unwrap_or("0.0.0.0");
    segment_context.insert("ip".into(), Value::String(ip.to_owned()));
    if let Some(agent) = non_empty(context, "agent") {
        segment_context.insert("userAgent".into(), Value::String(agent.to_owned()));
    }
    if let Some(locale) = non_empty(context, "accept_language").and_then(locale) {
        segment_context.insert("locale".into(), Value::String(locale.to_owned()));
    }
    if !page.is_empty() {
        segment_context.insert("page".into(), Value::Object(page));
    }
    if let Some(client_id) = non_empty(context, "client_id") {
        let mut ga = Map::new();
        ga.insert("clientId".into(), Value::String(client_id.to_owned()));
        segment_context.insert("Google Analytics".into(), Value::Object(ga));
    }
    let mut library = Map::new();
    library.insert("name".into(), Value::String("tracking".into()));
    library.insert("version".into(), Value::String(env!("CARGO_PKG_VERSION").into()));
    segment_context.insert("library".into(), Value::Object(library));
    m.insert("context".into(), Value::Object(segment_context));
    m
}

/// Why Segment would refuse a message, checked before it is sent.
pub fn check_message(message: &Map<String, Value>, serialized_len: usize, max_event_bytes: usize) -> Option<Rejection> {
    if serialized_len > max_event_bytes {
        return Some(Rejection::new(
            "event_too_large",
            format!("message is {serialized_len} bytes serialized, over Segment's limit of {max_event_bytes}"),
        ));
    }
    if !message.contains_key("userId") && !message.contains_key("anonymousId") {
        return Some(Rejection::new(
            "no_identity",
            "no verified user id, anonymous id, session or client id: Segment requires a userId or an anonymousId",
        ));
    }
    None
}

// ---------------------------------------------------------------------------
// HTTP

/// Why a post did not go through.
#[derive(Debug)]
pub enum PostError {
    /// Worth trying again: a 5xx, 429, 408, 401/403 (a key problem, never the
    /// events'), an unexpected status, or a network error.
    Retry { why: String, retry_after: Option<Duration> },
    /// Refused for good: another 4xx, with (the start of) the response body.
    Refused { status: u16, body: String },
}

/// Posts batch bodies to Segment.
pub struct Client {
    agent: ureq::Agent,
    url: String,
    authorization: String,
}

impl Client {
    pub fn new(url: String, key: &WriteKey, timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .redirects(0)
            .user_agent(concat!("tracking-server/", env!("CARGO_PKG_VERSION")))
            .build();
        Client { agent, url, authorization: key.authorization() }
    }

    /// Posts one batch body.
    pub fn post(&self, body: &[u8]) -> Result<(), PostError> {
        let request = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json")
            .set("Authorization", &self.authorization);
        match request.send_bytes(body) {
            Ok(response) if (200..300).contains(&response.status()) => {
                // Read the reply so the connection can be reused.
                let _ = io::copy(&mut response.into_reader().take(1 << 16), &mut io::sink());
                Ok(())
            }
            Ok(response) => Err(PostError::Retry { why: format!("unexpected status {}", response.status()), retry_after: None }),
            Err(ureq::Error::Status(status, response)) => {
                let retry_after = response.header("Retry-After").and_then(parse_retry_after);
                if status >= 500 || matches!(status, 401 | 403 | 408 | 429) {
                    Err(PostError::Retry { why: format!("status {status}"), retry_after })
                } else {
                    let mut body = String::new();
                    let _ = response.into_reader().take(MAX_RESPONSE_BYTES).read_to_string(&mut body);
                    Err(PostError::Refused { status, body })
                }
            }
            Err(ureq::Error::Transport(error)) => Err(PostError::Retry { why: format!("network: {}", error.kind()), retry_after: None }),
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// The wait before retry number `attempt` (1-based): exponential from `min`, capped
/// at `max`, with jitter over its upper half.
fn backoff(attempt: u32, min: Duration, max: Duration) -> Duration {
    let base = min.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(max);
    let mut random = [0u8; 4];
    let fraction = match getrandom::getrandom(&mut random) {
        Ok(()) => f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    };
    base / 2 + base.mul_f64(fraction / 2.0)
}

// ---------------------------------------------------------------------------
// Dead letters

/// The dead-letter file: one JSON object per line (`at`, `sink`, `id`, `reason`,
/// `detail`, for refusals `status` and `response`, and `event`: the Segment message).
struct DeadLetter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    dirty: bool,
}

impl DeadLetter {
    fn new(path: PathBuf) -> Self {
        DeadLetter { path, out: None, dirty: false }
    }

    fn write(&mut self, entry: &Value) -> io::Result<()> {
        if self.out.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new().create(true).append(true).mode(0o640).open(&self.path)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
            self.out = Some(BufWriter::new(file));
        }
        let out = self.out.as_mut().expect("opened above");
        serde_json::to_writer(&mut *out, entry)?;
        out.write_all(b"\n")?;
        self.dirty = true;
        Ok(())
    }

    /// Makes every entry durable (before the checkpoint passes the events).
    fn sync(&mut self) -> io::Result<()> {
        if let (true, Some(out)) = (self.dirty, self.out.as_mut()) {
            out.flush()?;
            out.get_ref().sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The sink

/// Every log record before `seq` is delivered to Segment or dead-lettered.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Checkpoint {
    seq: u64,
}

/// A batch being filled: serialized messages.
#[derive(Default)]
struct Batch {
    ids: Vec<String>,
    messages: Vec<Vec<u8>>,
    bytes: usize,
    started: Option<Instant>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn fits(&self, len: usize, options: &Options) -> bool {
        self.messages.len() < options.max_batch_events && self.bytes + 1 + len + ENVELOPE_BYTES <= options.max_batch_bytes
    }

    fn push(&mut self, id: String, message: Vec<u8>) {
        self.started.get_or_insert_with(Instant::now);
        self.bytes += message.len() + usize::from(!self.messages.is_empty());
        self.ids.push(id);
        self.messages.push(message);
    }

    /// `{"batch":[…],"sentAt":"…"}`, from the messages as they were serialized.
    fn body(&self) -> Vec<u8> {
        let sent_at = timestamp::format(timestamp::now());
        let mut body = Vec::with_capacity(self.bytes + ENVELOPE_BYTES);
        body.extend_from_slice(b"{\"batch\":[");
        for (i, message) in self.messages.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(message);
        }
        body.extend_from_slice(b"],\"sentAt\":\"");
        body.extend_from_slice(sent_at.as_bytes());
        body.extend_from_slice(b"\"}");
        body
    }

    fn clear(&mut self) {
        *self = Batch::default();
    }
}

/// How a delivery ended.
enum Delivery {
    /// Segment took the batch, or refused it and it is in the dead-letter file.
    Done,
    /// Shutting down and the grace period is over: left for the next start.
    GaveUp,
}

/// The Segment sink.
pub struct SegmentSink {
    name: String,
    options: Options,
    chain: Chain,
    context: SinkContext,
    client: Client,
    dead_letter: DeadLetter,
    checkpoint: Checkpoint,
    stopping_since: Option<Instant>,
    /// When a dead letter of each reason was last logged.
    warned: HashMap<&'static str, Instant>,
}

impl SegmentSink {
    /// Reads the write key and loads the checkpoint (a new sink starts at the oldest
    /// record in the log).
    pub fn open(name: String, options: Options, chain: Chain, context: SinkContext) -> Result<Self, SinkError> {
        let key = WriteKey::from_env(&options.write_key_env).map_err(|message| SinkError::Options { path: name.clone(), message })?;
        let client = Client::new(options.batch_url.clone(), &key, options.timeout);
        let stored: Option<Checkpoint> = context.load_checkpoint(&name)?;
        let checkpoint = Checkpoint { seq: context.resume_at(&name, stored.map(|c| c.seq)) };
        let dead_letter = DeadLetter::new(options.dead_letter.clone());
        tracing::info!(sink = %name, url = %options.batch_url, from = checkpoint.seq, "segment sink starting");
        Ok(SegmentSink { name, options, chain, context, client, dead_letter, checkpoint, stopping_since: None, warned: HashMap::new() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Consumes the log until asked to stop. Local failures (the log, the dead-letter
    /// file, a checkpoint) restart from the last checkpoint: nothing is skipped.
    pub fn run(mut self) {
        loop {
            match self.run_until_error() {
                Ok(()) => return,
                Err(error) => {
                    tracing::error!(sink = %self.name, %error, "segment sink failed; retrying from the last checkpoint");
                    self.context.metrics.sink_errors.with_label_values(&[&self.name]).inc();
                    if self.past_grace() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Whether the server is stopping and the grace period for delivery is over.
    fn past_grace(&mut self) -> bool {
        if !self.context.stop.load(Ordering::SeqCst) {
            return false;
        }
        let since = *self.stopping_since.get_or_insert_with(Instant::now);
        since.elapsed() >= self.options.shutdown_grace
    }

    fn update_lag(&self) {
        let lag = self.context.wal.committed_seq().saturating_sub(self.checkpoint.seq);
        self.context.metrics.sink_lag.with_label_values(&[&self.name]).set(lag as i64);
    }

    fn run_until_error(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let mut reader = self.context.wal.reader(self.checkpoint.seq)?;
        let mut batch = Batch::default();
        // Every record before `covered` is in `batch`, dropped, or dead-lettered.
        let mut covered = self.checkpoint.seq;
        loop {
            let stopping = self.context.stop.load(Ordering::SeqCst);
            if stopping {
                if self.past_grace() {
                    tracing::warn!(sink = %self.name, lag = self.context.wal.committed_seq().saturating_sub(self.checkpoint.seq), "stopping before Segment has everything; the rest is sent after the restart");
                    return Ok(());
                }
                if reader.next_seq() >= self.context.wal.committed_seq() {
                    if !batch.is_empty() {
                        if let Delivery::GaveUp = self.deliver(&mut batch)? {
                            return Ok(());
                        }
                    }
                    self.save(covered)?;
                    return Ok(());
                }
            }
            let due = batch.started.map(|s| s.elapsed() >= self.options.flush).unwrap_or(false);
            if due {
                if let Delivery::GaveUp = self.deliver(&mut batch)? {
                    return Ok(());
                }
                self.save(covered)?;
            }
            let wait = match batch.started {
                Some(started) => self.options.flush.saturating_sub(started.elapsed()).min(Duration::from_millis(100)),
                None => Duration::from_millis(100),
            };
            let records = reader.read_batch_blocking(512, wait)?;
            for (seq, record) in records {
                let event = match serde_json::from_slice::<Map<String, Value>>(&record) {
                    Ok(map) => Event::from_stored(map),
                    Err(error) => {
                        tracing::error!(sink = %self.name, seq, %error, "unreadable record in the log");
                        self.context.metrics.sink_rejected.with_label_values(&[&self.name, "unreadable_record"]).inc();
                        covered = seq + 1;
                        continue;
                    }
                };
                // Routing drops are counted by the routing counters.
                if let Ok(event) = self.chain.process(event) {
                    let message = to_message(&event);
                    let bytes = serde_json::to_vec(&message).expect("a JSON map serializes");
                    match check_message(&message, bytes.len(), self.options.max_event_bytes) {
                        Some(why) => self.dead_letter(&message, &why, None)?,
                        None => {
                            if !batch.fits(bytes.len(), &self.options) {
                                if let Delivery::GaveUp = self.deliver(&mut batch)? {
                                    return Ok(());
                                }
                                // Everything before this record is delivered.
                                self.save(seq)?;
                            }
                            let id = message.get("messageId").and_then(Value::as_str).unwrap_or_default().to_owned();
                            batch.push(id, bytes);
                        }
                    }
                }
                covered = seq + 1;
            }
            if batch.is_empty() && covered > self.checkpoint.seq {
                // Only drops and dead letters since the last save.
                self.save(covered)?;
            }
            self.update_lag();
        }
    }

    /// Posts `batch` until Segment takes it; a refusal dead-letters its events.
    fn deliver(&mut self, batch: &mut Batch) -> Result<Delivery, Box<dyn std::error::Error>> {
        let metrics = self.context.metrics.clone();
        let mut attempt = 0u32;
        loop {
            match self.client.post(&batch.body()) {
                Ok(()) => {
                    metrics.sink_delivered.with_label_values(&[&self.name]).inc_by(batch.messages.len() as u64);
                    if attempt > 0 {
                        tracing::info!(sink = %self.name, events = batch.messages.len(), attempts = attempt + 1, "Segment accepted the batch after retries");
                    }
                    batch.clear();
                    return Ok(Delivery::Done);
                }
                Err(PostError::Refused { status, body }) => {
                    tracing::error!(sink = %self.name, status, events = batch.messages.len(), path = %self.options.dead_letter.display(), "Segment refused a batch; its events are in the dead-letter file");
                    let why = Rejection::new("refused", format!("Segment answered {status}"));
                    for message in &batch.messages {
                        let message: Value = serde_json::from_slice(message)?;
                        let Value::Object(message) = message else { continue };
                        self.dead_letter(&message, &why, Some((status, &body)))?;
                    }
                    batch.clear();
                    return Ok(Delivery::Done);
                }
                Err(PostError::Retry { why, retry_after }) => {
                    attempt += 1;
                    metrics.sink_retried.with_label_values(&[&self.name]).inc();
                    let delay = match retry_after {
                        Some(after) => after.max(Duration::from_millis(100)),
                        None => backoff(attempt, self.options.min_backoff, self.options.max_backoff),
                    };
                    tracing::warn!(sink = %self.name, reason = %why, attempt, retry_in_ms = delay.as_millis() as u64, events = batch.messages.len(), "Segment did not take the batch; retrying");
                    let until = Instant::now() + delay;
                    while Instant::now() < until {
                        if self.past_grace() {
                            return Ok(Delivery::GaveUp);
                        }
                        self.update_lag();
                        std::thread::sleep(until.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)));
                    }
                    if self.past_grace() {
                        return Ok(Delivery::GaveUp);
                    }
                }
            }
        }
    }

    fn dead_letter(&mut self, message: &Map<String, Value>, why: &Rejection, response: Option<(u16, &str)>) -> io::Result<()> {
        let mut entry = Map::new();
        entry.insert("at".into(), Value::String(timestamp::format(timestamp::now())));
        entry.insert("sink".into(), Value::String(self.name.clone()));
        entry.insert("id".into(), message.get("messageId").cloned().unwrap_or(Value::Null));
        entry.insert("reason".into(), Value::String(why.reason.into()));
        entry.insert("detail".into(), Value::String(why.detail.clone()));
        if let Some((status, body)) = response {
            entry.insert("status".into(), Value::from(status));
            entry.insert("response".into(), Value::String(body.to_owned()));
        }
        entry.insert("event".into(), Value::Object(message.clone()));
        self.dead_letter.write(&Value::Object(entry))?;
        if response.is_none() {
            // One line per reason every 10 seconds at most; the metric counts them all.
            let now = Instant::now();
            let quiet = self.warned.get(why.reason).is_some_and(|at| now.duration_since(*at) < Duration::from_secs(10));
            if !quiet {
                self.warned.insert(why.reason, now);
                tracing::warn!(sink = %self.name, reason = why.reason, path = %self.options.dead_letter.display(), "{}; the event is in the dead-letter file (more within 10 s are counted, not logged)", why.detail);
            }
        }
        self.context.metrics.sink_dead_lettered.with_label_values(&[&self.name, why.reason]).inc();
        Ok(())
    }

    /// Records that every log record before `seq` is delivered or dead-lettered:
    /// dead letters first, then the checkpoint.
    fn save(&mut self, seq: u64) -> Result<(), Box<dyn std::error::Error>> {
        self.dead_letter.sync()?;
        if seq != self.checkpoint.seq {
            self.checkpoint.seq = seq;
            self.context.save_checkpoint(&self.name, &self.checkpoint)?;
        }
        self.context.passed(&self.name, seq);
        self.update_lag();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_model::json;

    fn browser_event(kind: Option<&str>, extra: Value) -> Event {
        let context = json!({
            "user_id": 42, "username": "ada", "session": "0123456789abcdef0123456789abcdef", "ip": "203.0.113.7",
            "agent": "Mozilla/5.0", "host": "ingest.example.com", "path": "/v1/batch",
            "referer": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo/courseware/",
            "accept_language": "fr-CA,fr;q=0.9", "client_id": "1234.5678", "course_id": "course-v1:edX+DemoX+Demo",
            "org_id": "edX", "event_source": "browser",
            "page": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo/courseware/?x=1#top"
        });
        let mut e = Event::with_parts(
            "edx.ui.lms.link_clicked",
            "2026-11-22T10:01:02.200000+00:00".into(),
            json!({"target_url": "https://x"}),
            context.as_object().unwrap().clone(),
            Some(uuid::Uuid::now_v7()),
        );
        if let Some(kind) = kind {
            e.as_map_mut().insert("type".into(), json!(kind));
        }
        for (k, v) in extra.as_object().unwrap() {
            e.as_map_mut().insert(k.clone(), v.clone());
        }
        e
    }

    #[test]
    fn track_mapping() {
        let e = browser_event(
            Some("track"),
            json!({"anonymous_id": "anon-1", "declared_user_id": "999", "client_timestamp": "2026-11-22T10:01:02.100000+00:00",
                   "referrer": "https://lms.example.com/dashboard", "label": "course-v1:edX+DemoX+Demo", "nonInteraction": 1}),
        );
        let m = Value::Object(to_message(&e));
        assert_eq!(m["type"], "track");
        assert_eq!(m["event"], "edx.ui.lms.link_clicked");
        assert_eq!(m["messageId"], e.id().unwrap());
        assert_eq!(m["userId"], "42", "from the verified context, as a string; never the declared id");
        assert_eq!(m["anonymousId"], "anon-1");
        assert_eq!(m["timestamp"], "2026-11-22T10:01:02.100000+00:00", "the client's clock when it sent one");
        assert_eq!(m["properties"], json!({"target_url": "https://x", "label": "course-v1:edX+DemoX+Demo", "nonInteraction": 1}));
        let c = &m["context"];
        assert_eq!(c["ip"], "203.0.113.7");
        assert_eq!(c["userAgent"], "Mozilla/5.0");
        assert_eq!(c["locale"], "fr-CA");
        assert_eq!(
            c["page"],
            json!({"path": "/courses/course-v1:edX+DemoX+Demo/courseware/", "referrer": "https://lms.example.com/dashboard",
                   "url": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo/courseware/?x=1#top"})
        );
        assert_eq!(c["library"], json!({"name": "tracking", "version": env!("CARGO_PKG_VERSION")}));
        assert_eq!(c["Google Analytics"], json!({"clientId": "1234.5678"}));
        assert!(check_message(m.as_object().unwrap(), 100, 32_000).is_none());
    }

    #[test]
    fn page_identify_and_tracking_log_mapping() {
        let page = Value::Object(to_message(&browser_event(Some("page"), json!({"category": "learning"}))));
        assert_eq!(page["type"], "page");
        assert_eq!(page["name"], "edx.ui.lms.link_clicked");
        assert_eq!(page["category"], "learning");
        assert_eq!(page["properties"]["path"], "/courses/course-v1:edX+DemoX+Demo/courseware/");
        assert!(page.get("event").is_none());

        let identify = Value::Object(to_message(&browser_event(Some("identify"), json!({}))));
        assert_eq!(identify["traits"], json!({"target_url": "https://x"}));
        assert!(identify.get("properties").is_none());

        let log = browser_event(None, json!({}));
        let m = Value::Object(to_message(&log));
        assert_eq!((m["type"].as_str(), m["event"].as_str()), (Some("track"), Some("edx.ui.lms.link_clicked")));
        assert_eq!(m["timestamp"], "2026-11-22T10:01:02.200000+00:00", "the event time without a client clock");
        assert_eq!(m["anonymousId"], "0123456789abcdef0123456789abcdef", "the session when there is no anonymous id");
    }

    #[test]
    fn server_events_and_identity() {
        let context = json!({"user_id": null, "host": "lms.example.com", "path": "/api/enroll", "referer": "https://lms.example.com/x",
                             "ip": "", "client_id": "", "session": ""});
        let e = Event::with_parts("edx.course.enrollment.activated", "2026-11-22T10:01:02+00:00".into(), json!("raw"), context.as_object().unwrap().clone(), None);
        let m = to_message(&e);
        let v = Value::Object(m.clone());
        assert_eq!(v["context"]["page"], json!({"path": "/api/enroll", "referrer": "https://lms.example.com/x", "url": "https://lms.example.com/api/enroll"}));
        assert_eq!(v["context"]["ip"], "0.0.0.0");
        assert_eq!(v["properties"], json!({"data": "raw"}));
        assert!(v["messageId"].as_str().unwrap().starts_with("tracking-"));
        assert_eq!(v["messageId"], Value::Object(to_message(&e))["messageId"], "stable without an event id");
        assert!(v.get("userId").is_none() && v.get("anonymousId").is_none());
        assert_eq!(check_message(&m, 100, 32_000).unwrap().reason, "no_identity");
        assert_eq!(check_message(&m, 40_000, 32_000).unwrap().reason, "event_too_large");
    }

    #[test]
    fn helpers() {
        assert_eq!(base64(b"key:"), "a2V5Og==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(WriteKey::new("abc").authorization(), "Basic YWJjOg==");
        assert_eq!(format!("{:?}", WriteKey::new("secret")), "WriteKey(<redacted>)");
        assert_eq!(url_path("https://h.example/a/b?q=1#f"), Some("/a/b"));
        assert_eq!(url_path("https://h.example"), Some("/"));
        assert_eq!(url_path("https://h.example?q"), Some("/"));
        assert_eq!(url_path("/courses/x"), Some("/courses/x"));
        assert_eq!(url_path("nothing"), None);
        assert_eq!(locale("en-US,en;q=0.9"), Some("en-US"));
        assert_eq!(locale("*"), None);
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("99999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a date in the past");
        assert_eq!(parse_retry_after("soon"), None);
        for attempt in 1..40 {
            let d = backoff(attempt, Duration::from_millis(500), Duration::from_secs(30));
            assert!(d <= Duration::from_secs(30) && d >= Duration::from_millis(250), "{attempt}: {d:?}");
        }
        assert!(backoff(1, Duration::from_millis(500), Duration::from_secs(30)) <= Duration::from_millis(500));
        assert!(backoff(6, Duration::from_millis(500), Duration::from_secs(30)) >= Duration::from_secs(8));
    }

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
    fn batches_stay_under_the_limit() {
        let options = Options::from_table(&toml::from_str("max_batch_bytes = 1000\nmax_event_bytes = 300").unwrap(), Path::new("/d")).unwrap();
        let mut batch = Batch::default();
        let message = vec![b'x'; 300];
        let mut n = 0;
        while batch.fits(message.len(), &options) {
            batch.push(n.to_string(), message.clone());
            n += 1;
        }
        assert_eq!(n, 3);
        assert!(batch.body().len() <= 1000, "{}", batch.body().len());
    }
}
