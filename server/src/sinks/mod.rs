//! Sinks: each consumes the write-ahead log at its own checkpointed position, under
//! the one [`driver`] they share (checkpoints, retries with backoff, the backlog
//! policy and its [`spill`] files, restart after a panic), so a slow or failed sink
//! never blocks ingest or another sink, and a restart resumes where it stopped.
//!
//! Every sink's table in the routing configuration takes, besides its own options,
//! `when_full` (`block` or `spill`), `max_lag_bytes` and `max_lag_secs`.

pub mod driver;
pub mod nats;
pub mod segment;
pub mod spill;
pub mod tracking_log;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use event_model::config::{Chain, RoutingConfig};
use event_model::routing::Counters;
use serde::Deserialize;

use crate::metrics::Metrics;
use crate::wal::{Checkpoints, Wal};
use driver::{BacklogPolicy, Failure, SinkStatus, WhenFull};

/// A sink configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink `{path}`: unknown sink type `{kind}` (known: tracking_log, segment, nats)")]
    UnknownKind { path: String, kind: String },
    #[error("sink `{path}`: {message}")]
    Options { path: String, message: String },
    #[error(transparent)]
    Routing(#[from] event_model::config::ConfigError),
    #[error("sink `{path}`: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("sink `{path}`: {message}")]
    Wal { path: String, message: String },
}

/// The log position each sink has durably passed; segments before the slowest are removed.
#[derive(Default)]
pub struct Positions(Mutex<HashMap<String, u64>>);

impl Positions {
    pub fn set(&self, sink: &str, seq: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(sink.to_owned(), seq);
    }

    /// The position of the slowest sink.
    pub fn min(&self) -> Option<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).values().copied().min()
    }
}

/// Everything a sink's driver needs.
#[derive(Clone)]
pub struct SinkContext {
    pub wal: Wal,
    pub checkpoints: Arc<Checkpoints>,
    pub positions: Arc<Positions>,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
    /// Where spill directories live (`{data_dir}/spill`).
    pub spill_root: PathBuf,
}

impl SinkContext {
    /// Loads a sink's stored checkpoint (named after its branch path).
    pub fn load_checkpoint<T: serde::de::DeserializeOwned>(&self, sink: &str) -> Result<Option<T>, SinkError> {
        self.checkpoints.load(&checkpoint_key(sink)).map_err(|e| SinkError::Wal { path: sink.to_owned(), message: e.to_string() })
    }

    /// Stores a sink's checkpoint atomically.
    pub fn save_checkpoint<T: serde::Serialize>(&self, sink: &str, checkpoint: &T) -> Result<(), crate::wal::WalError> {
        self.checkpoints.save(&checkpoint_key(sink), checkpoint)
    }

    /// A sink's spill directory.
    pub fn spill_dir(&self, sink: &str) -> PathBuf {
        self.spill_root.join(checkpoint_key(sink))
    }

    /// The log position a sink resumes at, registered as its position: the stored
    /// one, or the oldest record for a new sink. A checkpoint past the end of the log
    /// (only with a non-fsync commit policy, whose unsynced tail a crash lost after
    /// the sink had passed it) resumes at the end.
    pub fn resume_at(&self, sink: &str, stored: Option<u64>) -> u64 {
        let mut seq = stored.unwrap_or_else(|| self.wal.first_seq());
        let committed = self.wal.committed_seq();
        if seq > committed {
            tracing::warn!(sink, checkpoint = seq, committed, "the log ends before this sink's checkpoint; resuming at its end");
            seq = committed;
        }
        self.positions.set(sink, seq);
        seq
    }

    /// Records that `sink` has durably passed `seq`, and removes log segments every
    /// sink has passed.
    pub fn passed(&self, sink: &str, seq: u64) {
        self.positions.set(sink, seq);
        if let Some(min) = self.positions.min() {
            if let Err(error) = self.wal.remove_before(min) {
                tracing::warn!(%error, "could not remove consumed log segments");
            }
        }
    }
}

/// The events of a log record; an unreadable record is logged, counted and `None`.
pub fn events_of(metrics: &Metrics, sink: &str, seq: u64, record: &[u8]) -> Option<Vec<event_model::Event>> {
    match crate::record::decode(record) {
        Ok(events) => Some(events),
        Err(error) => {
            count_unreadable(metrics, sink, seq, &error);
            None
        }
    }
}

/// Logs and counts a record of the log that cannot be read (the sink skips it).
pub fn count_unreadable(metrics: &Metrics, sink: &str, seq: u64, error: &crate::record::RecordError) {
    tracing::error!(sink, seq, %error, "unreadable record in the log");
    metrics.sink_rejected.with_label_values(&[sink, "unreadable_record"]).inc();
}

/// `20261122-100102`: the UTC time in file names (rotated logs, spill files).
pub fn file_stamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}{:02}{:02}-{:02}{:02}{:02}", now.year(), u8::from(now.month()), now.day(), now.hour(), now.minute(), now.second())
}

/// The checkpoint file of a sink: its branch path with dots.
fn checkpoint_key(sink_path: &str) -> String {
    sink_path.replace('/', ".")
}

/// The backlog options every sink's table takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    when_full: Option<WhenFull>,
    max_lag_bytes: Option<u64>,
    max_lag_secs: Option<u64>,
}

/// Default backlog budget of a spilling sink: a quarter of the log's cap, so it spills
/// well before the log would fill.
fn default_max_lag_bytes(wal_max_bytes: u64) -> u64 {
    wal_max_bytes / 4
}

/// Takes the backlog options out of a sink's table; the rest are the sink's own.
pub(crate) fn take_policy(
    kind: &str,
    path: &str,
    table: &toml::Table,
    wal_max_bytes: u64,
) -> Result<(BacklogPolicy, toml::Table), SinkError> {
    let mut own = table.clone();
    let mut raw = toml::Table::new();
    for key in ["when_full", "max_lag_bytes", "max_lag_secs"] {
        if let Some(v) = own.remove(key) {
            raw.insert(key.to_owned(), v);
        }
    }
    let raw = RawPolicy::deserialize(toml::Value::Table(raw))
        .map_err(|e| SinkError::Options { path: path.to_owned(), message: e.to_string() })?;
    let default_when = if kind == "tracking_log" { WhenFull::Block } else { WhenFull::Spill };
    let when_full = raw.when_full.unwrap_or(default_when);
    if kind == "tracking_log" && when_full == WhenFull::Spill {
        return Err(SinkError::Options {
            path: path.to_owned(),
            message: "a tracking_log sink is the record of truth: its `when_full` is `block`".into(),
        });
    }
    let max_lag_bytes = raw.max_lag_bytes.unwrap_or_else(|| default_max_lag_bytes(wal_max_bytes));
    if when_full == WhenFull::Spill && max_lag_bytes >= wal_max_bytes {
        return Err(SinkError::Options {
            path: path.to_owned(),
            message: format!("`max_lag_bytes` ({max_lag_bytes}) must be below `[wal] max_bytes` ({wal_max_bytes}), or the log fills before the sink spills"),
        });
    }
    let policy = BacklogPolicy { when_full, max_lag_bytes, max_lag: Duration::from_secs(raw.max_lag_secs.unwrap_or(600)) };
    Ok((policy, own))
}

/// The running sinks.
pub struct Sinks {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Each sink's state, lag and counts, for `/status`.
    pub status: Arc<Vec<Arc<SinkStatus>>>,
}

/// A sink to start: its status, policy, and the thread body.
type Runner = (Arc<SinkStatus>, Box<dyn FnOnce() + Send>);

impl Sinks {
    /// Starts one thread per sink of the routing tree.
    pub fn start(
        routing: &RoutingConfig,
        data_dir: &Path,
        wal: Wal,
        wal_max_bytes: u64,
        checkpoints: Arc<Checkpoints>,
        metrics: Arc<Metrics>,
        counters: &Arc<Counters>,
    ) -> Result<Sinks, SinkError> {
        let stop = Arc::new(AtomicBool::new(false));
        let context = SinkContext {
            wal,
            checkpoints,
            positions: Arc::new(Positions::default()),
            metrics,
            stop: stop.clone(),
            spill_root: data_dir.join("spill"),
        };
        let mut runners: Vec<Runner> = Vec::new();
        for pipeline in routing.pipelines(counters)? {
            let spec = &pipeline.spec;
            let path = spec.path.clone();
            let (policy, own) = take_policy(spec.kind, &path, spec.options, wal_max_bytes)?;
            let status = Arc::new(SinkStatus::new(&path, spec.kind, policy));
            let options_error = |message| SinkError::Options { path: path.clone(), message };
            let chain = pipeline.chain.clone();
            let cx = context.clone();
            let st = status.clone();
            let run: Box<dyn FnOnce() + Send> = match spec.kind {
                "tracking_log" => {
                    let options = tracking_log::Options::from_table(&own, data_dir).map_err(options_error)?;
                    let name = path.clone();
                    Box::new(move || {
                        let c = cx.clone();
                        driver::supervise(
                            move || Ok(tracking_log::TrackingLogSink::new(name.clone(), options.clone(), chain.clone(), c.metrics.clone())),
                            cx,
                            st,
                            policy,
                        )
                    })
                }
                "segment" => {
                    let options = segment::Options::from_table(&own, data_dir).map_err(options_error)?;
                    let key = segment::WriteKey::from_env(&options.write_key_env)
                        .map_err(|message| SinkError::Options { path: path.clone(), message })?;
                    let name = path.clone();
                    Box::new(move || {
                        let c = cx.clone();
                        driver::supervise(
                            move || {
                                Ok(segment::SegmentSink::new(name.clone(), options.clone(), key.clone(), chain.clone(), c.metrics.clone()))
                            },
                            cx,
                            st,
                            policy,
                        )
                    })
                }
                "nats" => {
                    let options = nats::Options::from_table(&own).map_err(options_error)?;
                    nats::NatsSink::check(&path, &options)?;
                    let name = path.clone();
                    Box::new(move || {
                        let c = cx.clone();
                        driver::supervise(
                            move || nats::NatsSink::new(name.clone(), options.clone(), chain.clone(), c.metrics.clone()),
                            cx,
                            st,
                            policy,
                        )
                    })
                }
                other => return Err(SinkError::UnknownKind { path, kind: other.to_owned() }),
            };
            runners.push((status, run));
        }
        let status: Vec<Arc<SinkStatus>> = runners.iter().map(|(s, _)| s.clone()).collect();
        let threads = runners
            .into_iter()
            .map(|(status, run)| {
                std::thread::Builder::new().name(format!("sink {}", status.name)).spawn(run).expect("spawning a sink thread")
            })
            .collect();
        Ok(Sinks { stop, threads, status: Arc::new(status) })
    }

    /// Lets every sink catch up with what the log has committed, then stops them.
    pub fn drain_and_stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Builds one sink of the routing by path (or last name) for `replay-spill`, with the
/// processors of its branch (a spill holds log records, as the sink reads them).
pub fn replay_target(
    routing: &RoutingConfig,
    data_dir: &Path,
    wal_max_bytes: u64,
    sink: &str,
) -> Result<(String, ReplayTarget), SinkError> {
    let counters = Arc::new(Counters::default());
    for pipeline in routing.pipelines(&counters)? {
        let spec = &pipeline.spec;
        if spec.path != sink && spec.name != sink {
            continue;
        }
        let (_, own) = take_policy(spec.kind, &spec.path, spec.options, wal_max_bytes)?;
        let options_error = |message| SinkError::Options { path: spec.path.clone(), message };
        let chain = pipeline.chain.clone();
        return match spec.kind {
            "segment" => {
                let options = segment::Options::from_table(&own, data_dir).map_err(options_error)?;
                let key = segment::WriteKey::from_env(&options.write_key_env)
                    .map_err(|message| SinkError::Options { path: spec.path.clone(), message })?;
                Ok((spec.path.clone(), ReplayTarget::Segment(options, key, chain)))
            }
            "nats" => Ok((spec.path.clone(), ReplayTarget::Nats(nats::Options::from_table(&own).map_err(options_error)?, chain))),
            other => Err(SinkError::Options { path: spec.path.clone(), message: format!("a `{other}` sink does not spill") }),
        };
    }
    Err(SinkError::Options { path: sink.to_owned(), message: "no sink of the routing has this path or name".into() })
}

/// A sink that spill files are replayed into, with its branch's processors.
pub enum ReplayTarget {
    Segment(segment::Options, segment::WriteKey, Chain),
    Nats(nats::Options, Chain),
}

/// What `replay-spill` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    pub files: usize,
    pub messages: u64,
}

/// Delivers a sink's closed spill files, oldest first, removing each once delivered;
/// failures are retried with backoff for up to `patience`.
pub fn replay_spill(
    path: &str,
    target: ReplayTarget,
    data_dir: &Path,
    metrics: Arc<Metrics>,
    patience: Duration,
) -> Result<ReplayReport, Failure> {
    let dir = data_dir.join("spill").join(checkpoint_key(path));
    type Deliver = Box<dyn FnMut(&[String]) -> Result<u64, Failure>>;
    let mut deliver: Deliver = match target {
        ReplayTarget::Segment(options, key, chain) => {
            let mut sink = segment::SegmentSink::new(path.to_owned(), options, key, chain, metrics.clone());
            Box::new(move |lines| sink.replay(lines))
        }
        ReplayTarget::Nats(options, chain) => {
            let mut sink = nats::NatsSink::new(path.to_owned(), options, chain, metrics.clone())?;
            Box::new(move |lines| sink.replay(lines))
        }
    };
    let mut report = ReplayReport::default();
    spill::close_all(&dir)?;
    for file in spill::closed_files(&dir)? {
        let text = std::fs::read_to_string(&file)?;
        // A line cut short by a crash is not a message: skipped.
        let lines: Vec<String> = text.lines().filter(|l| event_model::Json::parse(l).is_ok()).map(str::to_owned).collect();
        let mut backoff = driver::Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let started = std::time::Instant::now();
        // A line is a log record (a request's events) or, from earlier versions, one message.
        for chunk in lines.chunks(64) {
            loop {
                match deliver(chunk) {
                    Ok(n) => {
                        report.messages += n;
                        break;
                    }
                    Err(failure) if started.elapsed() < patience => {
                        let delay = failure.retry_after.unwrap_or_default().max(backoff.next_delay());
                        tracing::warn!(sink = %path, reason = %failure.message, retry_in_ms = delay.as_millis() as u64, "replay failed; retrying");
                        std::thread::sleep(delay);
                    }
                    Err(failure) => return Err(failure),
                }
            }
        }
        std::fs::remove_file(&file)?;
        report.files += 1;
        tracing::info!(sink = %path, file = %file.display(), messages = lines.len(), "replayed a spill file");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_policies() {
        let table = |s: &str| -> toml::Table { toml::from_str(s).unwrap() };
        let (p, own) = take_policy("segment", "root/s", &table("endpoint = \"http://x\"\nmax_lag_secs = 5"), 4 << 20).unwrap();
        assert_eq!((p.when_full, p.max_lag_bytes, p.max_lag), (WhenFull::Spill, 1 << 20, Duration::from_secs(5)));
        assert_eq!(own.keys().collect::<Vec<_>>(), ["endpoint"]);
        let (p, _) = take_policy("tracking_log", "root/t", &table(""), 4 << 20).unwrap();
        assert_eq!(p.when_full, WhenFull::Block);
        assert!(take_policy("tracking_log", "root/t", &table("when_full = \"spill\""), 4 << 20)
            .unwrap_err()
            .to_string()
            .contains("record of truth"));
        assert!(take_policy("nats", "root/n", &table("max_lag_bytes = 8000000"), 4 << 20).unwrap_err().to_string().contains("below"));
        assert!(take_policy("nats", "root/n", &table("when_full = \"drop\""), 4 << 20).is_err());
    }
}
