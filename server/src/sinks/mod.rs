//! Sinks: each consumes the write-ahead log at its own checkpointed position, so a
//! slow or failed sink never blocks ingest and a restart resumes where it stopped.

pub mod nats;
pub mod segment;
pub mod tracking_log;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use event_model::config::RoutingConfig;
use event_model::routing::Counters;

use crate::metrics::Metrics;
use crate::wal::{Checkpoints, Wal};

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

/// Everything a sink runner needs.
#[derive(Clone)]
pub struct SinkContext {
    pub wal: Wal,
    pub checkpoints: Arc<Checkpoints>,
    pub positions: Arc<Positions>,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
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

/// The checkpoint file of a sink: its branch path with dots.
fn checkpoint_key(sink_path: &str) -> String {
    sink_path.replace('/', ".")
}

/// The running sinks.
pub struct Sinks {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Sinks {
    /// Starts one thread per sink of the routing tree.
    pub fn start(
        routing: &RoutingConfig,
        data_dir: &Path,
        wal: Wal,
        checkpoints: Arc<Checkpoints>,
        metrics: Arc<Metrics>,
        counters: &Arc<Counters>,
    ) -> Result<Sinks, SinkError> {
        let stop = Arc::new(AtomicBool::new(false));
        let context = SinkContext { wal, checkpoints, positions: Arc::new(Positions::default()), metrics, stop: stop.clone() };
        // Each sink as a name and the loop its thread runs.
        let mut runners: Vec<(String, Box<dyn FnOnce() + Send>)> = Vec::new();
        for pipeline in routing.pipelines(counters)? {
            let spec = &pipeline.spec;
            match spec.kind {
                "tracking_log" => {
                    let options = tracking_log::Options::from_table(spec.options, data_dir)
                        .map_err(|message| SinkError::Options { path: spec.path.clone(), message })?;
                    let sink = tracking_log::TrackingLogSink::open(spec.path.clone(), options, pipeline.chain.clone(), context.clone())?;
                    runners.push((sink.name().to_owned(), Box::new(move || sink.run())));
                }
                "segment" => {
                    let options = segment::Options::from_table(spec.options, data_dir)
                        .map_err(|message| SinkError::Options { path: spec.path.clone(), message })?;
                    let sink = segment::SegmentSink::open(spec.path.clone(), options, pipeline.chain.clone(), context.clone())?;
                    runners.push((sink.name().to_owned(), Box::new(move || sink.run())));
                }
                "nats" => {
                    let options = nats::Options::from_table(spec.options).map_err(|message| SinkError::Options { path: spec.path.clone(), message })?;
                    let sink = nats::NatsSink::open(spec.path.clone(), options, pipeline.chain.clone(), context.clone())?;
                    runners.push((sink.name().to_owned(), Box::new(move || sink.run())));
                }
                other => return Err(SinkError::UnknownKind { path: spec.path.clone(), kind: other.to_owned() }),
            }
        }
        let threads = runners
            .into_iter()
            .map(|(name, run)| std::thread::Builder::new().name(format!("sink {name}")).spawn(run).expect("spawning a sink thread"))
            .collect();
        Ok(Sinks { stop, threads })
    }

    /// Lets every sink catch up with what the log has committed, then stops them.
    pub fn drain_and_stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
