//! The NATS JetStream sink: publishes each event of the write-ahead log, as stored
//! (modern shape, JSON), to `tracking.<event name>` with `Nats-Msg-Id` = the event id,
//! so JetStream keeps one copy of an event however many times and from however many
//! ingest nodes it is published (within the stream's duplicate window).
//!
//! Like the tracking-log sink it consumes the log at its own checkpointed position:
//! a batch of publishes is pipelined, every publish acknowledgement is awaited, and
//! only then is the checkpoint moved past the batch. A NATS outage (or any publish
//! error) sends the sink back to its checkpoint after a backoff: nothing is skipped,
//! ingest is never blocked (the log absorbs the outage, up to `[wal] max_bytes`), and
//! the lag metric grows until NATS is back.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::{self, message::PublishMessage, stream, ErrorCode};
use async_nats::ServerAddr;
use event_model::config::Chain;
use serde::Deserialize;
use sha2::Digest as _;

use super::driver::{Checkpointer, Failure, NoState, Records, Sink};
use super::SinkError;
use crate::config::{default_stream, Urls};
use crate::metrics::Metrics;
use crate::record::RecordError;

/// Every event subject starts with this token.
pub const SUBJECT_PREFIX: &str = "tracking";

/// Subjects are cut to this many bytes (NATS has no hard limit, but subjects travel
/// in every message's control line).
const MAX_SUBJECT_BYTES: usize = 256;

/// Options of a `nats` sink in the routing configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    #[serde(default)]
    url: Urls,
    #[serde(default = "default_stream")]
    stream: String,
    #[serde(default = "default_subjects")]
    subjects: Vec<String>,
    #[serde(default = "default_replicas")]
    replicas: usize,
    #[serde(default = "default_max_age_secs")]
    max_age_secs: u64,
    #[serde(default = "default_duplicate_window_secs")]
    duplicate_window_secs: u64,
    #[serde(default = "default_batch")]
    batch: usize,
    #[serde(default = "default_ack_timeout_secs")]
    ack_timeout_secs: u64,
    #[serde(default = "default_max_message_bytes")]
    max_message_bytes: usize,
}

fn default_subjects() -> Vec<String> {
    vec![format!("{SUBJECT_PREFIX}.>")]
}
fn default_replicas() -> usize {
    1
}
fn default_max_age_secs() -> u64 {
    7 * 86_400
}
fn default_duplicate_window_secs() -> u64 {
    120
}
fn default_batch() -> usize {
    1000
}
fn default_ack_timeout_secs() -> u64 {
    5
}
/// Half of nats-server's default `max_payload` (1 MB).
fn default_max_message_bytes() -> usize {
    512 << 10
}

/// Resolved options.
#[derive(Debug, Clone)]
pub struct Options {
    pub servers: Vec<ServerAddr>,
    /// The stream, created if missing (and checked if present).
    pub stream: String,
    /// The stream's subjects; they must capture every `tracking.…` subject.
    pub subjects: Vec<String>,
    pub replicas: usize,
    /// How long the stream keeps a message (0: forever).
    pub max_age: Duration,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a re-publish.
    pub duplicate_window: Duration,
    /// Publishes in flight before their acknowledgements are awaited and the
    /// checkpoint is saved.
    pub batch: usize,
    /// How long a publish acknowledgement (and a JetStream API call) may take.
    pub ack_timeout: Duration,
    /// A message holds a request's consecutive events of one subject up to this many
    /// bytes (below the servers' `max_payload`); one larger event goes alone.
    pub max_message_bytes: usize,
}

impl Options {
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let raw = RawOptions::deserialize(toml::Value::Table(table.clone())).map_err(|e| e.to_string())?;
        let servers = raw.url.servers()?;
        check_stream_name(&raw.stream)?;
        if raw.subjects.is_empty() {
            return Err("`subjects` is empty".into());
        }
        if !raw.subjects.iter().any(|s| captures_prefix(s)) {
            return Err(format!("`subjects` {:?} do not capture every event subject (`{SUBJECT_PREFIX}.>`)", raw.subjects));
        }
        if !(1..=5).contains(&raw.replicas) {
            return Err(format!("`replicas` must be 1 to 5 (JetStream's limit), not {}", raw.replicas));
        }
        if raw.duplicate_window_secs == 0 {
            return Err("`duplicate_window_secs` must be more than 0: it is what de-duplicates re-publishes".into());
        }
        if raw.max_age_secs > 0 && raw.duplicate_window_secs > raw.max_age_secs {
            return Err("`duplicate_window_secs` cannot be longer than `max_age_secs`".into());
        }
        if !(1..=10_000).contains(&raw.batch) {
            return Err(format!("`batch` must be 1 to 10000, not {}", raw.batch));
        }
        if raw.ack_timeout_secs == 0 {
            return Err("`ack_timeout_secs` must be more than 0".into());
        }
        if raw.max_message_bytes < 1024 {
            return Err(format!("`max_message_bytes` must be at least 1024, not {}", raw.max_message_bytes));
        }
        Ok(Options {
            servers,
            stream: raw.stream,
            subjects: raw.subjects,
            replicas: raw.replicas,
            max_age: Duration::from_secs(raw.max_age_secs),
            duplicate_window: Duration::from_secs(raw.duplicate_window_secs),
            batch: raw.batch,
            ack_timeout: Duration::from_secs(raw.ack_timeout_secs),
            max_message_bytes: raw.max_message_bytes,
        })
    }

    fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: self.subjects.clone(),
            num_replicas: self.replicas,
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            description: Some("Tracking events (tracking-server nats sink)".into()),
            ..Default::default()
        }
    }
}

/// Stream names are one subject token: no whitespace, `.`, `*` or `>`.
pub fn check_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\')) {
        return Err(format!("stream name {name:?} must be non-empty, without whitespace, `.`, `*`, `>`, `/` or `\\`"));
    }
    Ok(())
}

/// Whether a stream subject pattern captures every `tracking.<anything>` subject.
fn captures_prefix(pattern: &str) -> bool {
    let mut tokens = pattern.split('.');
    match (tokens.next(), tokens.next(), tokens.next()) {
        (Some(">"), None, None) => true,
        (Some(first), Some(">"), None) => first == SUBJECT_PREFIX || first == "*",
        _ => false,
    }
}

/// The subject of an event: `tracking.` and the event name, made a valid subject.
///
/// The name is split at `.` into tokens; in each token every character other than
/// an ASCII letter, digit, `-` or `_` becomes `_` (so no whitespace, `*`, `>`,
/// non-ASCII, `/` or `:`), an empty token (`a..b`, a leading or trailing dot)
/// becomes `_`, an empty name is `unknown`, and the subject is cut to 256 bytes.
/// `edx.course.enrollment.activated` → `tracking.edx.course.enrollment.activated`;
/// `/courses/x y/*` → `tracking._courses_x_y__`. The exact name stays in the payload.
pub fn subject_for(name: &str) -> String {
    let name = if name.is_empty() { event_model::UNKNOWN_EVENT_NAME } else { name };
    let mut subject = String::with_capacity(SUBJECT_PREFIX.len() + 1 + name.len());
    subject.push_str(SUBJECT_PREFIX);
    for token in name.split('.') {
        subject.push('.');
        if token.is_empty() {
            subject.push('_');
        }
        for c in token.chars() {
            subject.push(if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' });
        }
    }
    if subject.len() > MAX_SUBJECT_BYTES {
        // Only ASCII is left: any byte is a character boundary.
        subject.truncate(MAX_SUBJECT_BYTES);
        if subject.ends_with('.') {
            subject.pop();
            subject.push('_');
        }
    }
    subject
}

/// The `Nats-Msg-Id` of a payload: the event id, or, for an event that has none (an
/// old archive reprocessed), a digest of the payload so that re-publishing it is
/// still de-duplicated.
pub fn message_id(id: Option<&str>, payload: &[u8]) -> String {
    match id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("sha256-{}", hex::encode(&sha2::Sha256::digest(payload)[..16])),
    }
}

/// Connects to one of `servers`, logging disconnections and reconnections. Once
/// connected, the client reconnects by itself (to any server of the cluster).
pub(crate) async fn connect(servers: &[ServerAddr], name: &str, timeout: Duration) -> Result<async_nats::Client, async_nats::ConnectError> {
    let label = name.to_owned();
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        .event_callback(move |event| {
            let label = label.clone();
            async move {
                match event {
                    async_nats::Event::Connected => tracing::info!(client = %label, "connected to NATS"),
                    async_nats::Event::Disconnected => tracing::warn!(client = %label, "disconnected from NATS; reconnecting"),
                    other => tracing::info!(client = %label, event = %other, "NATS client event"),
                }
            }
        })
        .connect(servers.to_vec())
        .await
}

/// Why the stream cannot be used.
#[derive(Debug)]
enum StreamProblem {
    /// The stream exists with a configuration this sink must not write to, or the
    /// server refused to create it (a configuration error: retrying will not help
    /// until someone changes something).
    Refused(String),
    /// NATS or JetStream is not reachable or not ready yet.
    Unavailable(String),
}

impl std::fmt::Display for StreamProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamProblem::Refused(m) | StreamProblem::Unavailable(m) => f.write_str(m),
        }
    }
}

fn sorted(subjects: &[String]) -> Vec<String> {
    let mut s = subjects.to_vec();
    s.sort();
    s.dedup();
    s
}

/// JetStream's answers while a cluster is short of peers or has no leader: the stream
/// can be created once the cluster is whole again, so they are not refusals.
const CLUSTER_NOT_READY: [ErrorCode; 5] = [
    ErrorCode::CLUSTER_INCOMPLETE,
    ErrorCode::CLUSTER_NO_PEERS,
    ErrorCode::CLUSTER_NOT_ACTIVE,
    ErrorCode::CLUSTER_NOT_AVAILABLE,
    ErrorCode::CLUSTER_NOT_LEADER,
];

/// Creates the stream if it is missing, or checks that the existing one has the
/// configured subjects and replicas.
async fn ensure_stream(js: &jetstream::Context, options: &Options) -> Result<(), StreamProblem> {
    use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
    let name = &options.stream;
    let existing = match js.get_stream(name).await {
        Ok(stream) => Some(stream.cached_info().config.clone()),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(err) if err.error_code() == ErrorCode::STREAM_NOT_FOUND => None,
            _ => return Err(StreamProblem::Unavailable(format!("looking up stream {name}: {e}"))),
        },
    };
    let config = match existing {
        Some(config) => config,
        None => match js.create_stream(options.stream_config()).await {
            Ok(_) => {
                tracing::info!(stream = %name, subjects = ?options.subjects, replicas = options.replicas, "created the JetStream stream");
                return Ok(());
            }
            Err(e) => match e.kind() {
                // Another ingest node created it first: check what it made.
                CreateStreamErrorKind::JetStream(err) if err.error_code() == ErrorCode::STREAM_NAME_EXIST => js
                    .get_stream(name)
                    .await
                    .map_err(|e| StreamProblem::Unavailable(format!("looking up stream {name}: {e}")))?
                    .cached_info()
                    .config
                    .clone(),
                // A cluster short of peers, or still electing: one may come back.
                CreateStreamErrorKind::JetStream(err) if CLUSTER_NOT_READY.contains(&err.error_code()) => {
                    return Err(StreamProblem::Unavailable(format!("creating stream {name}: {err}")))
                }
                CreateStreamErrorKind::JetStream(err) if err.code() != 503 => {
                    return Err(StreamProblem::Refused(format!("NATS refused to create stream {name}: {err}")))
                }
                _ => return Err(StreamProblem::Unavailable(format!("creating stream {name}: {e}"))),
            },
        },
    };
    if sorted(&config.subjects) != sorted(&options.subjects) {
        return Err(StreamProblem::Refused(format!(
            "stream {name} exists with subjects {:?}, but this sink is configured for {:?}; change `subjects` or the stream",
            config.subjects, options.subjects
        )));
    }
    if config.num_replicas.max(1) != options.replicas {
        return Err(StreamProblem::Refused(format!(
            "stream {name} exists with {} replicas, but this sink is configured for {}; change `replicas` or the stream",
            config.num_replicas, options.replicas
        )));
    }
    if config.max_age != options.max_age || config.duplicate_window != options.duplicate_window {
        tracing::warn!(
            stream = %name,
            max_age_secs = config.max_age.as_secs(),
            duplicate_window_secs = config.duplicate_window.as_secs(),
            "the stream's max age or duplicate window differs from this sink's configuration; the stream's settings apply"
        );
    }
    Ok(())
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outgoing {
    subject: String,
    id: String,
    payload: Vec<u8>,
    /// Events in the payload.
    events: u64,
}

/// How a sink's events become messages, by what its processors do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Processors that only keep or drop: each message is a run of the record as it is
    /// stored, its shared context once and each event's own text.
    Shared,
    /// Processors that change events, on the record read in place: each event whole
    /// (its context merged) in a message whose shared context is `{}`.
    WholeViews,
    /// The same, from built events (a processor that does not run on views).
    WholeEvents,
}

impl Form {
    fn of(chain: &Chain) -> Form {
        if chain.only_filters() {
            Form::Shared
        } else if chain.runs_on_views() {
            Form::WholeViews
        } else {
            Form::WholeEvents
        }
    }
}

/// One message in the making: consecutive events of one record with one subject, as a
/// log record (`{"context":…,"events":[…]}`), which the relay stores as one.
struct Group {
    subject: String,
    payload: String,
    /// The length of the payload's head (`{"context":…,"events":[`).
    head: usize,
    /// Digest of the events' ids (of the payload, for an event without one).
    ids: sha2::Sha256,
    first_id: Option<String>,
    events: u64,
}

/// The messages for log records, leaving out the events the routing drops and the
/// records that cannot be read (given to `unreadable`). One message per run of
/// consecutive events with one subject in a record (a request's events are usually one
/// run), up to `max_bytes`, in the `form` the chain allows.
fn messages(records: &Records, chain: &Chain, form: Form, max_bytes: usize, unreadable: &dyn Fn(u64, &RecordError)) -> Vec<Outgoing> {
    let mut out = Vec::new();
    for (seq, record) in records {
        let mut runs = Runs { max_bytes, context: "{}", group: None, out: &mut out };
        let read = match form {
            Form::Shared => shared_runs(record, chain, &mut runs),
            Form::WholeViews => crate::record::views(record).map(|views| {
                for mut view in views {
                    // Routing drops are counted by the routing counters.
                    if chain.process_view(&mut view).is_err() {
                        continue;
                    }
                    let mut json = String::with_capacity(1024);
                    view.write_compact(&mut json);
                    let name = view.get_str("name").unwrap_or(Cow::Borrowed(event_model::UNKNOWN_EVENT_NAME));
                    runs.push(subject_for(&name), &json, view.get_str("id").as_deref());
                }
            }),
            Form::WholeEvents => crate::record::decode(record).map(|events| {
                for event in events {
                    let Ok(event) = chain.process(event) else { continue };
                    runs.push(subject_for(&event.name()), &event.to_compact(), event.id().as_deref());
                }
            }),
        };
        match read {
            Ok(()) => runs.finish(),
            Err(error) => unreadable(*seq, &error),
        }
    }
    out
}

/// The runs of a record in the shared form: each event's own text, kept or dropped by
/// the chain's filters (which read top-level members only, so the event's own view
/// decides as its merged one would).
fn shared_runs<'r>(record: &'r [u8], chain: &Chain, runs: &mut Runs<'r, '_>) -> Result<(), RecordError> {
    let text = std::str::from_utf8(record).map_err(|_| RecordError::Utf8)?;
    let (context, events) = match crate::record::parts(text)? {
        Some(parts) => (parts.context, parts.events),
        // A record of an earlier version: one whole event.
        None => ("{}", vec![text]),
    };
    runs.context = context;
    for event in events {
        let mut view = event_model::view::EventView::parse(event).map_err(RecordError::Json)?;
        if chain.process_view(&mut view).is_err() {
            continue;
        }
        let name = view.get_str("name").unwrap_or(Cow::Borrowed(event_model::UNKNOWN_EVENT_NAME));
        runs.push(subject_for(&name), event, view.get_str("id").as_deref());
    }
    Ok(())
}

/// A record's messages being made: consecutive events with one subject share one.
struct Runs<'c, 'o> {
    max_bytes: usize,
    /// The record's shared context, as its messages carry it.
    context: &'c str,
    group: Option<Group>,
    out: &'o mut Vec<Outgoing>,
}

impl Runs<'_, '_> {
    fn push(&mut self, subject: String, json: &str, id: Option<&str>) {
        let full = |g: &Group| g.subject != subject || g.payload.len() + json.len() + 3 > self.max_bytes;
        if self.group.as_ref().is_some_and(full) {
            self.out.extend(self.group.take().map(Group::finish));
        }
        let context = self.context;
        self.group.get_or_insert_with(|| Group::new(subject, context)).push(json, id);
    }

    fn finish(self) {
        self.out.extend(self.group.map(Group::finish));
    }
}

impl Group {
    fn new(subject: String, context: &str) -> Group {
        let mut payload = String::with_capacity(context.len() + 1024);
        payload.push_str("{\"context\":");
        payload.push_str(context);
        payload.push_str(",\"events\":[");
        Group { subject, head: payload.len(), payload, ids: sha2::Sha256::new(), first_id: None, events: 0 }
    }

    fn push(&mut self, json: &str, id: Option<&str>) {
        if self.events > 0 {
            self.payload.push(',');
        }
        self.payload.push_str(json);
        // An event without an id is told apart by its text and the context it shares.
        let id = match id {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => message_id(None, [&self.payload.as_bytes()[..self.head], json.as_bytes()].concat().as_slice()),
        };
        self.ids.update(id.as_bytes());
        self.ids.update(b",");
        if self.events == 0 {
            self.first_id = Some(id);
        }
        self.events += 1;
    }

    /// The message. Its `Nats-Msg-Id` is the event's id for one event, else a digest
    /// of the events' ids: the same record published again has the same ids.
    fn finish(mut self) -> Outgoing {
        self.payload.push_str("]}");
        let id = match (self.events, self.first_id) {
            (1, Some(id)) => id,
            _ => format!("sha256-{}", hex::encode(&self.ids.finalize()[..16])),
        };
        Outgoing { subject: self.subject, id, payload: self.payload.into_bytes(), events: self.events }
    }
}

/// The JetStream sink.
pub struct NatsSink {
    name: String,
    options: Options,
    chain: Chain,
    metrics: Arc<Metrics>,
    /// Its own runtime (the sink runs on a thread of its own); taken while in use.
    runtime: Option<tokio::runtime::Runtime>,
    connection: Option<jetstream::Context>,
}

impl NatsSink {
    /// If NATS answers, creates or checks the stream: a stream with other subjects or
    /// replicas is a configuration error reported now. An unreachable NATS is not: the
    /// sink keeps trying while ingest goes on.
    pub fn check(name: &str, options: &Options) -> Result<(), SinkError> {
        if let Err(StreamProblem::Refused(message)) = check_stream_at_start(name, options) {
            return Err(SinkError::Options { path: name.to_owned(), message });
        }
        Ok(())
    }

    pub fn new(name: String, options: Options, chain: Chain, metrics: Arc<Metrics>) -> Result<Self, Failure> {
        // One worker of its own keeps the connection serviced (pings, reconnects,
        // acknowledgements) between the driver's deliveries.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("nats {name}"))
            .enable_all()
            .build()
            .map_err(|e| Failure::unavailable(format!("starting the NATS sink's runtime: {e}")))?;
        Ok(NatsSink { name, options, chain, metrics, runtime: Some(runtime), connection: None })
    }

    /// The messages for log records (see [`messages`]); unreadable records are counted.
    fn prepare(&self, records: &Records) -> Vec<Outgoing> {
        let unreadable = |seq: u64, error: &RecordError| super::count_unreadable(&self.metrics, &self.name, seq, error);
        messages(records, &self.chain, Form::of(&self.chain), self.options.max_message_bytes, &unreadable)
    }

    async fn connection(&mut self) -> Result<jetstream::Context, Failure> {
        if let Some(js) = &self.connection {
            return Ok(js.clone());
        }
        let client = connect(&self.options.servers, &format!("tracking-server {}", self.name), self.options.ack_timeout)
            .await
            .map_err(|e| Failure::unavailable(format!("connecting to NATS: {e}")))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(self.options.ack_timeout)
            // Publishes given up on hold their in-flight slot until this passes.
            .ack_timeout(self.options.ack_timeout)
            .max_ack_inflight(self.options.batch)
            .backpressure_on_inflight(true)
            .build(client);
        ensure_stream(&js, &self.options).await.map_err(|e| Failure::unavailable(e.to_string()))?;
        self.connection = Some(js.clone());
        Ok(js)
    }

    fn publish(&mut self, outgoing: Vec<Outgoing>) -> Result<(), Failure> {
        let rt = self.runtime.take().ok_or_else(|| Failure::unavailable("the NATS sink's runtime is gone"))?;
        // A batch gets the acknowledgement timeout for its acknowledgements, and as long
        // again to be sent: publishing waits for in-flight slots, which a broken
        // connection may never give back.
        let deadline = self.options.ack_timeout * 2;
        let batch = self.options.batch;
        let result = rt.block_on(async {
            let js = self.connection().await?;
            let mut outgoing = outgoing.into_iter().peekable();
            let result = loop {
                // `batch` publishes in flight at a time, as the option says.
                let chunk: Vec<Outgoing> = outgoing.by_ref().take(batch).collect();
                if chunk.is_empty() {
                    return Ok(());
                }
                match tokio::time::timeout(deadline, publish_all(&js, chunk)).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(error)) => break Failure::unavailable(format!("publishing: {error}")),
                    Err(_) => break Failure::unavailable(format!("publishing: no acknowledgements within {} s", deadline.as_secs())),
                }
            };
            // A fresh connection for the retry: its in-flight slots and subscriptions
            // start clean (and a deleted stream is checked, and created, again).
            self.connection = None;
            Err(result)
        });
        self.runtime = Some(rt);
        result
    }

    /// Publishes spilled lines (log records, or `{"subject", "id", "payload"}` as
    /// earlier versions spilled them); returns how many messages.
    pub fn replay(&mut self, lines: &[String]) -> Result<u64, Failure> {
        let (records, messages) = super::spill::split_replay_lines(lines);
        let mut outgoing = self.prepare(&records);
        for line in messages {
            let Some(fields) = event_model::Fields::parse_text(&event_model::Text::from(line)) else { continue };
            let (Some(subject), Some(id), Some(payload)) = (fields.get_str("subject"), fields.get_str("id"), fields.get("payload")) else {
                continue;
            };
            outgoing.push(Outgoing {
                subject: subject.into_owned(),
                id: id.into_owned(),
                payload: payload.to_compact().into_bytes(),
                events: 1,
            });
        }
        let n = outgoing.iter().map(|o| o.events).sum();
        self.publish(outgoing)?;
        Ok(n)
    }
}

impl Sink for NatsSink {
    type State = NoState;

    fn resume(&mut self, _: Option<NoState>) -> Result<(), Failure> {
        Ok(())
    }

    fn deliver(&mut self, records: &Records, _: &mut Checkpointer<'_, NoState>) -> Result<u64, Failure> {
        let outgoing = self.prepare(records);
        let count = outgoing.iter().map(|o| o.events).sum();
        self.publish(outgoing)?;
        Ok(count)
    }

    fn state(&self) -> NoState {
        NoState {}
    }

    fn batching(&self) -> (usize, Duration) {
        (self.options.batch, Duration::ZERO)
    }

    fn backoff(&self) -> (Duration, Duration) {
        (Duration::from_millis(100), Duration::from_secs(10))
    }
}

/// Publishes every message, pipelined, then waits for every acknowledgement.
async fn publish_all(js: &jetstream::Context, outgoing: Vec<Outgoing>) -> Result<(), PublishError> {
    let mut acks = Vec::with_capacity(outgoing.len());
    for message in outgoing {
        let publish = PublishMessage::build().message_id(&message.id).payload(message.payload.into());
        acks.push(js.send_publish(message.subject, publish).await?);
    }
    // Awaited together: each acknowledgement's timeout runs from when it is polled.
    futures_util::future::try_join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await?;
    Ok(())
}

/// At start: connect briefly and create or check the stream.
fn check_stream_at_start(name: &str, options: &Options) -> Result<(), StreamProblem> {
    // The caller may be inside an async runtime (the server's): use a thread of our own.
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| StreamProblem::Unavailable(e.to_string()))?;
                runtime.block_on(async {
                    let timeout = options.ack_timeout.min(Duration::from_secs(3));
                    let client = connect(&options.servers, &format!("tracking-server {name} (start)"), timeout)
                        .await
                        .map_err(|e| StreamProblem::Unavailable(format!("connecting to NATS: {e}")))?;
                    let js = jetstream::ContextBuilder::new().timeout(timeout).build(client);
                    ensure_stream(&js, options).await
                })
            })
            .join()
            .unwrap_or_else(|_| Err(StreamProblem::Unavailable("the stream check panicked".into())))
    });
    if let Err(StreamProblem::Unavailable(message)) = &result {
        tracing::warn!(sink = %name, %message, "NATS JetStream is not available yet; events wait in the log and are published once it is");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_from_records_read_in_place_are_those_of_built_events() {
        let routing = r#"[backends.stream]
processors = [{ type = "internal_events", mode = "exclude" }]
[backends.stream.backends.jetstream]
type = "nats""#;
        let counters = event_model::routing::Counters::new();
        let routing = event_model::config::RoutingConfig::from_toml(routing).unwrap();
        let chain = routing.pipelines(&counters).unwrap().into_iter().next().unwrap().chain;
        assert!(chain.runs_on_views());
        let record = |context: &str, events: &[&str]| {
            let mut record = crate::record::RecordBuilder::new(context, 256);
            for event in events {
                record.push(event);
            }
            record.finish()
        };
        let records: Vec<(u64, Vec<u8>)> = vec![
            (
                0,
                record(
                    r#"{"user_id":1,"course_id":"","session":"s"}"#,
                    &[
                        r#"{"name":"a.b","data":{"x":1},"context":{"course_id":"c"},"id":"019a0000-0000-7000-8000-000000000001"}"#,
                        r#"{"name":"a.b","data":{"k":"v","k":"w"},"context":{},"id":"019a0000-0000-7000-8000-000000000002"}"#,
                        r#"{"name":"edx.bi.dropped","data":{}}"#,
                        r#"{"name":"other.subject","data":"é","context":"odd"}"#,
                        r#"{"data":{"no":"name or id"}}"#,
                    ],
                ),
            ),
            (1, b"not a record".to_vec()),
            (2, record("{}", &[r#"{"name":"seq","context":{"user_id":2}}"#])),
            (3, br#"{"name":"old.shape","data":{"v":1},"context":{"username":"u"},"id":"i"}"#.to_vec()),
        ];
        // What a message holds once read as a record: each event whole, compact.
        let read = |messages: &[Outgoing]| -> Vec<String> {
            let views = messages.iter().flat_map(|m| crate::record::views(&m.payload).unwrap());
            views
                .map(|v| {
                    let mut json = String::new();
                    v.write_compact(&mut json);
                    json
                })
                .collect()
        };
        assert_eq!(Form::of(&chain), Form::Shared, "a filter changes nothing");
        for max_bytes in [512 << 10, 200] {
            let unreadable = std::cell::RefCell::new(Vec::new());
            let count = |seq: u64, _: &RecordError| unreadable.borrow_mut().push(seq);
            let from_views = messages(&records, &chain, Form::WholeViews, max_bytes, &count);
            let from_events = messages(&records, &chain, Form::WholeEvents, max_bytes, &count);
            let shared = messages(&records, &chain, Form::Shared, max_bytes, &count);
            assert_eq!(from_views, from_events);
            assert_eq!(from_views.iter().map(|m| m.events).sum::<u64>(), 6, "the internal event is dropped");
            assert_eq!(*unreadable.borrow(), [1, 1, 1]);
            // The same messages (subjects, ids, events) but for the context, written once.
            let heads = |m: &[Outgoing]| m.iter().map(|o| (o.subject.clone(), o.events)).collect::<Vec<_>>();
            assert_eq!(heads(&shared), heads(&from_views));
            // The same `Nats-Msg-Id` where every event has an id; for the others a digest
            // of what the message holds (its context and its text).
            for (s, w) in shared.iter().zip(&from_views) {
                let all_have_ids = crate::record::views(&w.payload).unwrap().iter().all(|v| v.get_str("id").is_some());
                assert!(if all_have_ids { s.id == w.id } else { s.id.starts_with("sha256-") }, "{} / {}", s.id, w.id);
            }
            assert_eq!(read(&shared), read(&from_views), "read back, the same whole events");
            assert!(shared[0].payload.starts_with(br#"{"context":{"user_id":1,"course_id":"","session":"s"},"events":[{"name":"a.b","data":{"x":1},"context":{"course_id":"c"}"#));
            assert!(from_views[0].payload.starts_with(br#"{"context":{},"events":[{"name":"a.b""#));
        }
    }

    #[test]
    fn events_without_ids_in_other_contexts_are_other_messages() {
        let record = |context: &str| {
            let mut record = crate::record::RecordBuilder::new(context, 64);
            record.push(r#"{"name":"a.b","timestamp":"t","data":{}}"#);
            record.finish()
        };
        let records = vec![(0, record(r#"{"user_id":1}"#)), (1, record(r#"{"user_id":2}"#)), (2, record(r#"{"user_id":1}"#))];
        let out = messages(&records, &Chain::empty(), Form::Shared, 512 << 10, &|_, _| panic!("readable"));
        assert_ne!(out[0].id, out[1].id, "two users' identical events are two messages");
        assert_eq!(out[0].id, out[2].id, "the same record published again is one");
    }

    #[test]
    fn subjects_are_valid_and_readable() {
        assert_eq!(subject_for("edx.course.enrollment.activated"), "tracking.edx.course.enrollment.activated");
        assert_eq!(subject_for("seq_goto"), "tracking.seq_goto");
        assert_eq!(subject_for("/courses/x y/*"), "tracking._courses_x_y__");
        assert_eq!(subject_for("a..b"), "tracking.a._.b");
        assert_eq!(subject_for(".a."), "tracking._.a._");
        assert_eq!(subject_for("edx.>"), "tracking.edx._");
        assert_eq!(subject_for("edx.*.x"), "tracking.edx._.x");
        assert_eq!(subject_for("tab\there"), "tracking.tab_here");
        assert_eq!(subject_for("édx.ü"), "tracking._dx._");
        assert_eq!(subject_for(""), "tracking.unknown");
        let long = subject_for(&"a.".repeat(300));
        assert!(long.len() <= MAX_SUBJECT_BYTES);
        assert!(!long.ends_with('.') && !long.contains(".."));
        for name in ["a b", "x.*", ">", "..", "a.b.", "\u{1F600}"] {
            let s = subject_for(name);
            assert!(s.split('.').all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')), "{s}");
        }
    }

    #[test]
    fn message_ids() {
        assert_eq!(message_id(Some("0192f3a0-7b1c-7d2e-8f3a-0123456789ab"), b"{}"), "0192f3a0-7b1c-7d2e-8f3a-0123456789ab");
        let a = message_id(None, b"{\"name\":\"a\"}");
        assert!(a.starts_with("sha256-") && a.len() == 7 + 32);
        assert_eq!(a, message_id(None, b"{\"name\":\"a\"}"), "the same payload has the same id");
        assert_ne!(a, message_id(None, b"{\"name\":\"b\"}"));
    }

    #[test]
    fn options() {
        let table = |s: &str| -> toml::Table { toml::from_str(s).unwrap() };
        let o = Options::from_table(&table("")).unwrap();
        assert_eq!(o.servers.len(), 1);
        assert_eq!(o.stream, "TRACKING");
        assert_eq!(o.subjects, ["tracking.>"]);
        assert_eq!((o.replicas, o.max_age.as_secs(), o.duplicate_window.as_secs()), (1, 604_800, 120));
        let o = Options::from_table(&table("url = \"nats://a:4222, nats://b:4223\"\nreplicas = 3")).unwrap();
        assert_eq!(o.servers.len(), 2);
        assert_eq!(Options::from_table(&table("url = [\"nats://a:1\", \"nats://b:2\", \"nats://c:3\"]")).unwrap().servers.len(), 3);
        let err = |s: &str| Options::from_table(&table(s)).unwrap_err();
        assert!(err("subjects = [\"tracking.edx.>\"]").contains("do not capture"));
        assert!(Options::from_table(&table("subjects = [\"tracking.>\", \"other.>\"]")).is_ok());
        assert!(Options::from_table(&table("subjects = [\">\"]")).is_ok());
        assert!(err("stream = \"a.b\"").contains("stream name"));
        assert!(err("replicas = 0").contains("replicas"));
        assert!(err("duplicate_window_secs = 0").contains("duplicate_window_secs"));
        assert!(err("max_age_secs = 60").contains("longer than"));
        assert!(err("colour = 1").contains("unknown field"));
        assert!(err("url = \"\"").contains("no NATS server"));
    }
}
