//! The one driver every sink runs under: it reads the write-ahead log at the sink's
//! checkpoint, hands records to the sink, saves the checkpoint once they are
//! delivered, retries failures with backoff and jitter (never sooner than
//! `Retry-After`), applies the sink's backlog policy when it cannot deliver, and
//! restarts the sink from its checkpoint when it panics.
//!
//! A sink only turns records into deliveries ([`Sink::deliver`]); spilling copies the
//! log's records and is the driver's; everything about *when* is here, so every
//! sink retries, spills, reports its state and recovers the same way.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::spill::SpillWriter;
use super::SinkContext;

/// Log records as the driver hands them out: sequence number and bytes.
pub type Records = [(u64, Vec<u8>)];

/// Why a delivery did not go through. The driver retries it (the records stay).
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    /// What went wrong, without event data or secrets.
    pub message: String,
    /// The destination asked to wait at least this long (`Retry-After`).
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The destination is down, slow, full or refusing for now.
    Unavailable,
    /// The destination refuses the credentials (a revoked or wrong key): nothing
    /// improves until someone changes them.
    Credentials,
}

impl Failure {
    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure { kind: FailureKind::Unavailable, message: message.into(), retry_after: None }
    }

    pub fn credentials(message: impl Into<String>) -> Failure {
        Failure { kind: FailureKind::Credentials, message: message.into(), retry_after: None }
    }

    pub fn retry_after(mut self, after: Option<Duration>) -> Failure {
        self.retry_after = after;
        self
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::unavailable(format!("I/O: {e}"))
    }
}

impl From<crate::wal::WalError> for Failure {
    fn from(e: crate::wal::WalError) -> Failure {
        Failure::unavailable(e.to_string())
    }
}

/// A consumer of the write-ahead log.
pub trait Sink: Send + 'static {
    /// What the sink saves with its log position (the tracking log: its file's length).
    type State: Serialize + DeserializeOwned + Default + Clone + Send;

    /// After a start or restart, with the state saved with the checkpoint (`None` for
    /// a new sink): e.g. cut a file back to what the checkpoint covers.
    fn resume(&mut self, state: Option<Self::State>) -> Result<(), Failure>;

    /// Delivers the events of `records`, durably once [`Sink::commit`] returns, or
    /// fails (then nothing of them counts as delivered; a repeat is harmless
    /// downstream). Returns the events delivered. `checkpoint` saves a position inside
    /// the batch, for sinks that must (the tracking log, when it rotates its file).
    fn deliver(&mut self, records: &Records, checkpoint: &mut Checkpointer<'_, Self::State>) -> Result<u64, Failure>;

    /// Makes what was delivered durable; called before each checkpoint is saved.
    fn commit(&mut self) -> Result<(), Failure> {
        Ok(())
    }

    /// How long deliveries may go without a checkpoint (zero: a checkpoint after each).
    /// A sink that writes its own file again from the checkpoint after a crash, cutting
    /// what came after (the tracking log), saves its disk a sync and a checkpoint per
    /// delivery; a sink that sends elsewhere re-sends at most what came since.
    fn checkpoint_interval(&self) -> Duration {
        Duration::ZERO
    }

    /// The state to save with the position after a delivery.
    fn state(&self) -> Self::State;

    /// Called after each delivery and when no record came for a while (rotation by age).
    fn tick(&mut self, checkpoint: &mut Checkpointer<'_, Self::State>) -> Result<(), Failure> {
        let _ = checkpoint;
        Ok(())
    }

    /// Most records per delivery, and how long to wait for more before delivering
    /// fewer.
    fn batching(&self) -> (usize, Duration) {
        (2048, Duration::ZERO)
    }

    /// Most bytes of records per delivery (a record holds one request's events, so a
    /// count alone can make one delivery very large, and every decision wait for it).
    fn batch_bytes(&self) -> u64 {
        4 << 20
    }

    /// The first and the longest wait between attempts.
    fn backoff(&self) -> (Duration, Duration) {
        (Duration::from_millis(200), Duration::from_secs(30))
    }

    /// On shutdown, how long to keep retrying what is committed; the rest waits in the
    /// log for the next start.
    fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// What a sink does when it cannot deliver and its backlog passes its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Keep the backlog in the log (the tracking log, the record of truth): a log that
    /// fills makes ingest answer 503, never lose an event.
    Block,
    /// Move what cannot be delivered to the sink's spill files, replayable later, so
    /// the log and ingest go on.
    Spill,
}

/// A sink's backlog budget and policy (`when_full`, `max_lag_bytes`, `max_lag_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogPolicy {
    pub when_full: WhenFull,
    /// Log bytes the sink may be behind while failing before it spills.
    pub max_lag_bytes: u64,
    /// How long the sink may fail to deliver before it spills.
    pub max_lag: Duration,
}

/// The states a sink is in, as `tracking_sink_state` and `/status` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SinkState {
    Ok = 0,
    Retrying = 1,
    Spilling = 2,
    FailingCredentials = 3,
    Restarting = 4,
    Stopped = 5,
}

impl SinkState {
    pub const ALL: [SinkState; 6] =
        [SinkState::Ok, SinkState::Retrying, SinkState::Spilling, SinkState::FailingCredentials, SinkState::Restarting, SinkState::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkState::Ok => "ok",
            SinkState::Retrying => "retrying",
            SinkState::Spilling => "spilling",
            SinkState::FailingCredentials => "failing: credentials",
            SinkState::Restarting => "restarting",
            SinkState::Stopped => "stopped",
        }
    }

    fn from_u8(v: u8) -> SinkState {
        SinkState::ALL.get(usize::from(v)).copied().unwrap_or(SinkState::Ok)
    }
}

/// What `/status` and the metrics show of one sink; updated by its driver.
pub struct SinkStatus {
    pub name: String,
    pub kind: String,
    pub policy: BacklogPolicy,
    state: AtomicU8,
    pub lag_records: AtomicU64,
    pub lag_bytes: AtomicU64,
    pub delivered: AtomicU64,
    pub spilled: AtomicU64,
    pub restarts: AtomicU64,
    /// Events delivered per second over the last few seconds (f64 bits).
    rate: AtomicU64,
    window: Mutex<(Instant, u64)>,
    /// The last failure, for the status page (no event data).
    pub last_error: Mutex<Option<String>>,
}

impl SinkStatus {
    pub fn new(name: &str, kind: &str, policy: BacklogPolicy) -> SinkStatus {
        SinkStatus {
            name: name.to_owned(),
            kind: kind.to_owned(),
            policy,
            state: AtomicU8::new(SinkState::Ok as u8),
            lag_records: AtomicU64::new(0),
            lag_bytes: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            rate: AtomicU64::new(0f64.to_bits()),
            window: Mutex::new((Instant::now(), 0)),
            last_error: Mutex::new(None),
        }
    }

    pub fn state(&self) -> SinkState {
        SinkState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Events delivered per second recently.
    pub fn rate(&self) -> f64 {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = window.0.elapsed();
        if elapsed >= Duration::from_secs(5) {
            // Nothing delivered for a while: the rate decays to what was seen.
            let total = self.delivered.load(Ordering::Relaxed);
            let rate = (total - window.1) as f64 / elapsed.as_secs_f64();
            *window = (Instant::now(), total);
            self.rate.store(rate.to_bits(), Ordering::Relaxed);
        }
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }
}

/// The state of a sink that keeps nothing beside its log position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoState {}

/// The position a sink's checkpoint holds, with its own state beside it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checkpoint<S> {
    pub seq: u64,
    #[serde(flatten)]
    pub state: S,
}

/// Saves a sink's checkpoint: durably, then tells the log which segments may go.
pub struct Checkpointer<'a, S> {
    context: &'a SinkContext,
    name: &'a str,
    saved: Checkpoint<S>,
    saved_at: Instant,
    /// Everything before this position is delivered (saved or not yet).
    delivered: u64,
}

impl<'a, S: Serialize + Clone> Checkpointer<'a, S> {
    fn new(context: &'a SinkContext, name: &'a str, saved: Checkpoint<S>) -> Self {
        let delivered = saved.seq;
        Checkpointer { context, name, saved, saved_at: Instant::now(), delivered }
    }

    /// Records that everything before `seq` is delivered, with `state`.
    pub fn save(&mut self, seq: u64, state: S) -> Result<(), Failure> {
        self.saved = Checkpoint { seq, state };
        self.context.save_checkpoint(self.name, &self.saved)?;
        self.context.passed(self.name, seq);
        self.saved_at = Instant::now();
        self.delivered = seq;
        Ok(())
    }

    /// Everything before this position is delivered (whether or not its checkpoint is
    /// saved yet).
    pub fn seq(&self) -> u64 {
        self.delivered
    }

    /// Deliveries since the last save.
    fn pending(&self) -> bool {
        self.delivered > self.saved.seq
    }
}

/// Makes a sink's deliveries since the last checkpoint durable and saves the
/// checkpoint after them (nothing when there were none).
fn commit_pending<S: Sink>(sink: &mut S, checkpoint: &mut Checkpointer<'_, S::State>) -> Result<(), Failure> {
    if !checkpoint.pending() {
        return Ok(());
    }
    sink.commit()?;
    checkpoint.save(checkpoint.seq(), sink.state())
}

/// Exponential backoff with jitter over the upper half: `min`·2ⁿ, capped at `max`.
pub struct Backoff {
    attempt: u32,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { attempt: 0, min, max: max.max(min) }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let base = self.min.saturating_mul(1u32 << (self.attempt - 1).min(20)).min(self.max);
        let mut random = [0u8; 4];
        let fraction = match getrandom::getrandom(&mut random) {
            Ok(()) => f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX),
            Err(_) => 0.5,
        };
        base / 2 + base.mul_f64(fraction / 2.0)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A test-only fault: the sink at `path` panics at its `n`th delivery (the
/// `fault-injection` feature, `TRACKING_FAULT_SINK_PANIC=path=n`).
#[cfg(feature = "fault-injection")]
fn injected_panic(name: &str, deliveries: u64) {
    static FIRED: AtomicBool = AtomicBool::new(false);
    let Ok(spec) = std::env::var("TRACKING_FAULT_SINK_PANIC") else { return };
    let Some((path, n)) = spec.split_once('=') else { return };
    if path == name && n.parse() == Ok(deliveries) && !FIRED.swap(true, Ordering::SeqCst) {
        panic!("injected fault: sink {name} panics at delivery {deliveries}");
    }
}

#[cfg(not(feature = "fault-injection"))]
fn injected_panic(_: &str, _: u64) {}

/// Runs a sink until `stop` is set and it has delivered what the log holds (or its
/// shutdown grace is over). `make` builds the sink; it is called again after a panic
/// or an error that ends a run, and the new sink resumes from the checkpoint.
pub fn supervise<S: Sink>(
    mut make: impl FnMut() -> Result<S, Failure>,
    context: SinkContext,
    status: Arc<SinkStatus>,
    policy: BacklogPolicy,
) {
    let name = status.name.clone();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    let mut deliveries = 0u64;
    loop {
        let started = Instant::now();
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<(), Failure> {
            let mut sink = make()?;
            drive(&mut sink, &context, &status, policy, &mut deliveries)
        }));
        let why = match run {
            Ok(Ok(())) => {
                set_state(&context, &status, SinkState::Stopped);
                return;
            }
            Ok(Err(failure)) => failure.message,
            Err(panic) => {
                let message = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
                format!("panicked: {}", message.unwrap_or_else(|| "no message".into()))
            }
        };
        if started.elapsed() > Duration::from_secs(60) {
            backoff.reset();
        }
        status.restarts.fetch_add(1, Ordering::Relaxed);
        context.metrics.sink_restarts.with_label_values(&[&name]).inc();
        set_state(&context, &status, SinkState::Restarting);
        *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        let delay = backoff.next_delay();
        tracing::error!(sink = %name, reason = %why, restart_in_ms = delay.as_millis() as u64, "sink stopped; restarting from its checkpoint");
        if context.stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_millis(10) {
            // Stopping, and the sink cannot even start: leave the rest in the log.
            set_state(&context, &status, SinkState::Stopped);
            return;
        }
        sleep_unless(&context.stop, delay);
    }
}

fn set_state(context: &SinkContext, status: &SinkStatus, state: SinkState) {
    if status.state.swap(state as u8, Ordering::Relaxed) != state as u8 {
        for s in SinkState::ALL {
            context.metrics.sink_state.with_label_values(&[&status.name, s.as_str()]).set(i64::from(s == state));
        }
    }
}

/// Sleeps up to `delay`, in short steps, returning early when asked to stop.
fn sleep_unless(stop: &AtomicBool, delay: Duration) {
    let until = Instant::now() + delay;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

fn drive<S: Sink>(
    sink: &mut S,
    context: &SinkContext,
    status: &SinkStatus,
    policy: BacklogPolicy,
    deliveries: &mut u64,
) -> Result<(), Failure> {
    let name = status.name.as_str();
    let metrics = &context.metrics;
    let stored: Option<Checkpoint<S::State>> =
        context.load_checkpoint(name).map_err(|e| Failure::unavailable(format!("loading the checkpoint: {e}")))?;
    let seq = context.resume_at(name, stored.as_ref().map(|c| c.seq));
    let new_sink = stored.is_none();
    let state = stored.map(|c| c.state);
    sink.resume(state.clone())?;
    let mut checkpoint = Checkpointer::new(context, name, Checkpoint { seq, state: state.unwrap_or_default() });
    if new_sink {
        // Where a new sink starts (the tracking log: after what its file already held)
        // is saved first, so a restart before its first checkpoint starts there again.
        checkpoint.save(seq, sink.state())?;
    }
    let mut reader = context.wal.reader(seq)?;
    let (max_records, linger) = sink.batching();
    let max_bytes = sink.batch_bytes();
    let (min_backoff, max_backoff) = sink.backoff();
    let mut backoff = Backoff::new(min_backoff, max_backoff);
    let mut failing_since: Option<Instant> = None;
    let mut spilling = false;
    // Delivering, but spilling what it is behind by (see below).
    let mut behind = false;
    let mut next_probe = Instant::now();
    let mut stopped_at: Option<Instant> = None;
    let mut spill = SpillWriter::new(context.spill_dir(name));
    set_state(context, status, SinkState::Ok);
    loop {
        let stopping = context.stop.load(Ordering::SeqCst);
        if stopping {
            stopped_at.get_or_insert_with(Instant::now);
            if reader.next_seq() >= context.wal.committed_seq() {
                commit_pending(sink, &mut checkpoint)?;
                spill.close()?;
                return Ok(());
            }
        }
        let lag_bytes = reader.bytes_ahead();
        // Up to `max_records` records and `max_bytes` bytes, read a few records at a
        // time so the byte cap holds; waiting up to `linger` for more when short.
        let mut batch = reader.read_batch_blocking(max_records.min(READ_STEP), Duration::from_millis(100))?;
        let mut bytes: u64 = batch.iter().map(|(_, r)| r.len() as u64).sum();
        let until = Instant::now() + linger;
        while !batch.is_empty() && batch.len() < max_records && bytes < max_bytes && !stopping && !context.stop.load(Ordering::SeqCst) {
            let more = reader.read_batch_blocking((max_records - batch.len()).min(READ_STEP), Duration::ZERO)?;
            if more.is_empty() {
                // Drained: the rest of the linger is slept through in naps, not woken
                // at each commit, so a sink that keeps up with a busy log reads it
                // once a nap rather than once a request.
                let wait = until.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    break;
                }
                std::thread::sleep(wait.min(LINGER_NAP));
                continue;
            }
            bytes += more.iter().map(|(_, r)| r.len() as u64).sum::<u64>();
            batch.extend(more);
        }
        update_lag(context, status, checkpoint.seq(), lag_bytes);
        let Some(&(last, _)) = batch.last() else {
            // A quiet moment: what was delivered since the last checkpoint is saved.
            commit_pending(sink, &mut checkpoint)?;
            if spilling {
                // Nothing to spill: a quiet moment to close the file for replay.
                spill.close()?;
            }
            sink.tick(&mut checkpoint)?;
            continue;
        };
        let batch_bytes = bytes;
        // Over the backlog budget in bytes, counting this batch.
        let over_lag_bytes = |reader: &crate::wal::WalReader| reader.bytes_ahead().saturating_add(batch_bytes) > policy.max_lag_bytes;
        // A sink that delivers, but slower than ingest, is over its budget too: what it
        // is behind by goes to its spill until it catches up, so it never holds the log.
        if policy.when_full == WhenFull::Spill && !spilling && over_lag_bytes(&reader) {
            if !behind {
                behind = true;
                tracing::warn!(sink = %name, lag_bytes = reader.bytes_ahead(), dir = %spill.dir().display(),
                    "the sink is slower than ingest and over its backlog budget; spilling until it catches up");
            }
            if spill_past(sink, &batch, &mut spill, &mut checkpoint, context, status)? {
                continue;
            }
        } else if behind && !spilling {
            behind = false;
            spill.close()?;
            tracing::info!(sink = %name, "caught up with ingest; delivering again");
        }
        loop {
            // Deliveries are tried when the backoff (or, spilling, the next probe) is due.
            let probe = Instant::now() >= next_probe;
            let failure = if probe {
                *deliveries += 1;
                injected_panic(name, *deliveries);
                match sink.deliver(&batch, &mut checkpoint) {
                    Ok(events) => {
                        checkpoint.delivered = last + 1;
                        if checkpoint.saved_at.elapsed() >= sink.checkpoint_interval() {
                            commit_pending(sink, &mut checkpoint)?;
                        }
                        status.delivered.fetch_add(events, Ordering::Relaxed);
                        metrics.sink_delivered.with_label_values(&[name]).inc_by(events);
                        if failing_since.take().is_some() {
                            tracing::info!(sink = %name, "delivering again");
                        }
                        if spilling {
                            spilling = false;
                            spill.close()?;
                        }
                        backoff.reset();
                        set_state(context, status, SinkState::Ok);
                        sink.tick(&mut checkpoint)?;
                        break;
                    }
                    Err(failure) => failure,
                }
            } else {
                let last = status.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Failure::unavailable(last.unwrap_or_else(|| "waiting for the next try".to_owned()))
            };
            if probe {
                metrics.sink_errors.with_label_values(&[name]).inc();
                metrics.sink_retried.with_label_values(&[name]).inc();
                *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure.message.clone());
            }
            let since = *failing_since.get_or_insert_with(Instant::now);
            let over_budget = |reader: &crate::wal::WalReader| over_lag_bytes(reader) || since.elapsed() > policy.max_lag;
            if policy.when_full == WhenFull::Spill && (spilling || over_budget(&reader)) {
                if !spilling {
                    tracing::warn!(sink = %name, reason = %failure.message, lag_bytes, failing_secs = since.elapsed().as_secs(),
                        dir = %spill.dir().display(), "the sink cannot deliver and is over its backlog budget; spilling what it cannot deliver");
                }
                if probe {
                    next_probe = Instant::now() + failure.retry_after.unwrap_or_default().max(backoff.next_delay());
                }
                if spill_past(sink, &batch, &mut spill, &mut checkpoint, context, status)? {
                    spilling = true;
                    break;
                }
                spilling = false;
            }
            let state = match failure.kind {
                FailureKind::Credentials => SinkState::FailingCredentials,
                FailureKind::Unavailable => SinkState::Retrying,
            };
            set_state(context, status, state);
            if stopped_at.is_some_and(|at| at.elapsed() >= sink.shutdown_grace()) {
                tracing::error!(sink = %name, reason = %failure.message, undelivered = context.wal.committed_seq().saturating_sub(checkpoint.seq()),
                    "stopping with records not yet delivered; they are delivered after the next start");
                commit_pending(sink, &mut checkpoint)?;
                spill.close()?;
                return Ok(());
            }
            let delay = failure.retry_after.map_or_else(|| backoff.next_delay(), |after| after.max(Duration::from_millis(100)));
            if probe {
                tracing::warn!(sink = %name, reason = %failure.message, retry_in_ms = delay.as_millis() as u64, "delivery failed; retrying");
            }
            let until = Instant::now() + delay;
            next_probe = next_probe.max(until);
            while Instant::now() < until {
                update_lag(context, status, checkpoint.seq(), reader.bytes_ahead() + batch_bytes);
                // The log keeps growing while the sink waits: a sink that may spill starts
                // as soon as it is over its budget, not after the wait, so the log never
                // fills up behind it.
                if policy.when_full == WhenFull::Spill && !spilling && over_budget(&reader) {
                    break;
                }
                let stop_now = context.stop.load(Ordering::SeqCst);
                if stop_now {
                    stopped_at.get_or_insert_with(Instant::now);
                    if stopped_at.is_some_and(|at| at.elapsed() >= sink.shutdown_grace()) {
                        break;
                    }
                }
                std::thread::sleep(until.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)));
            }
        }
    }
}

/// Writes a batch's records to the spill as the log holds them, durably; returns the
/// events they hold. Spilling is a copy, far cheaper than delivering, so a sink that
/// cannot keep up with ingest catches up by spilling; its processors and message
/// format are applied when `replay-spill` delivers the spill.
fn spill_batch(batch: &Records, spill: &mut SpillWriter, metrics: &crate::metrics::Metrics, name: &str) -> Result<u64, Failure> {
    let mut events = 0;
    for (seq, record) in batch {
        match crate::record::event_count(record) {
            Ok(n) => {
                spill.write_record(record)?;
                events += n;
            }
            // What delivery skips too.
            Err(error) => super::count_unreadable(metrics, name, *seq, &error),
        }
    }
    spill.sync()?;
    Ok(events)
}

/// Spills `batch`, moves the checkpoint past it and counts it; `false` (logged) when
/// the spill cannot be written, and the batch stays in the log.
fn spill_past<S: Sink>(
    sink: &mut S,
    batch: &Records,
    spill: &mut SpillWriter,
    checkpoint: &mut Checkpointer<'_, S::State>,
    context: &SinkContext,
    status: &SinkStatus,
) -> Result<bool, Failure> {
    let Some(&(last, _)) = batch.last() else { return Ok(true) };
    let events = match spill_batch(batch, spill, &context.metrics, &status.name) {
        Ok(events) => events,
        Err(failure) => {
            tracing::error!(sink = %status.name, reason = %failure.message, "cannot spill; the backlog stays in the log");
            return Ok(false);
        }
    };
    sink.commit()?;
    checkpoint.save(last + 1, sink.state())?;
    status.spilled.fetch_add(events, Ordering::Relaxed);
    context.metrics.sink_spilled.with_label_values(&[&status.name]).inc_by(events);
    context.metrics.sink_spill_bytes.with_label_values(&[&status.name]).set(spill.total_bytes() as i64);
    set_state(context, status, SinkState::Spilling);
    Ok(true)
}

/// Records read per call while a batch is gathered.
const READ_STEP: usize = 32;

/// The longest sleep while a short batch lingers: how late a full batch or a stop can
/// be noticed.
const LINGER_NAP: Duration = Duration::from_millis(10);

fn update_lag(context: &SinkContext, status: &SinkStatus, seq: u64, bytes: u64) {
    let records = context.wal.committed_seq().saturating_sub(seq);
    status.lag_records.store(records, Ordering::Relaxed);
    status.lag_bytes.store(bytes, Ordering::Relaxed);
    context.metrics.sink_lag.with_label_values(&[&status.name]).set(records as i64);
    context.metrics.sink_lag_bytes.with_label_values(&[&status.name]).set(bytes as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        for attempt in 1..40 {
            let d = b.next_delay();
            let base = Duration::from_millis(500).saturating_mul(1 << (attempt - 1).min(20)).min(Duration::from_secs(30));
            assert!(d >= base / 2 && d <= base, "{attempt}: {d:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(500));
    }

    #[test]
    fn states_have_stable_names() {
        let names: Vec<_> = SinkState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["ok", "retrying", "spilling", "failing: credentials", "restarting", "stopped"]);
        for s in SinkState::ALL {
            assert_eq!(SinkState::from_u8(s as u8), s);
        }
    }

    /// Records each delivery's size; short batches wait up to `linger`.
    struct Lingering {
        max: usize,
        linger: Duration,
        deliveries: Arc<Mutex<Vec<usize>>>,
    }

    impl Sink for Lingering {
        type State = NoState;
        fn resume(&mut self, _: Option<NoState>) -> Result<(), Failure> {
            Ok(())
        }
        fn deliver(&mut self, records: &Records, _: &mut Checkpointer<'_, NoState>) -> Result<u64, Failure> {
            self.deliveries.lock().unwrap().push(records.len());
            Ok(records.len() as u64)
        }
        fn state(&self) -> NoState {
            NoState {}
        }
        fn batching(&self) -> (usize, Duration) {
            (self.max, self.linger)
        }
    }

    /// Runs a [`Lingering`] sink on a fresh log; `feed` appends to it, then the sink is
    /// given 5 s at most to deliver `expected` records. Returns the deliveries.
    fn deliveries_of(max: usize, linger: Duration, expected: usize, feed: impl FnOnce(&crate::wal::Wal)) -> Vec<usize> {
        let dir = tempfile::tempdir().unwrap();
        let wal = crate::wal::Wal::open(crate::wal::WalConfig { dir: dir.path().join("wal"), ..Default::default() }).unwrap();
        let context = SinkContext {
            wal: wal.clone(),
            checkpoints: Arc::new(crate::wal::Checkpoints::open(dir.path().join("checkpoints")).unwrap()),
            positions: Arc::new(super::super::Positions::default()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            stop: Arc::new(AtomicBool::new(false)),
            spill_root: dir.path().join("spill"),
        };
        let stop = context.stop.clone();
        let policy = BacklogPolicy { when_full: WhenFull::Block, max_lag_bytes: u64::MAX, max_lag: Duration::MAX };
        let status = Arc::new(SinkStatus::new("test", "test", policy));
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let seen = deliveries.clone();
        let runner = std::thread::spawn(move || {
            supervise(|| Ok(Lingering { max, linger, deliveries: seen.clone() }), context, status, policy);
        });
        feed(&wal);
        let deadline = Instant::now() + Duration::from_secs(5);
        while deliveries.lock().unwrap().iter().sum::<usize>() < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::SeqCst);
        runner.join().unwrap();
        let got = deliveries.lock().unwrap().clone();
        got
    }

    #[test]
    fn a_short_batch_lingers_for_what_is_committed_meanwhile() {
        // Ten commits over about 50 ms, well inside a 2 s linger: one delivery, where a
        // sink woken at each commit would deliver as they come.
        let got = deliveries_of(100, Duration::from_secs(2), 10, |wal| {
            for n in 0..10u8 {
                wal.append_blocking(vec![vec![n]]).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        assert_eq!(got, [10]);
    }

    #[test]
    fn a_full_batch_does_not_wait_for_its_linger() {
        // A 30 s linger, eight records at once, four a batch: both batches go at once
        // (the helper waits 5 s at most).
        let got = deliveries_of(4, Duration::from_secs(30), 8, |wal| {
            wal.append_blocking((0..8u8).map(|n| vec![n]).collect()).unwrap();
        });
        assert_eq!(got, [4, 4]);
    }

    #[test]
    fn checkpoints_keep_the_earlier_file_format() {
        #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
        struct FileState {
            file_len: u64,
            opened_at: u64,
        }
        let cp = Checkpoint { seq: 7, state: FileState { file_len: 100, opened_at: 5 } };
        assert_eq!(serde_json::to_string(&cp).unwrap(), r#"{"seq":7,"file_len":100,"opened_at":5}"#);
        let back: Checkpoint<NoState> = serde_json::from_str(r#"{"seq":9}"#).unwrap();
        assert_eq!(back.seq, 9);
        assert_eq!(serde_json::to_string(&back).unwrap(), r#"{"seq":9}"#);
    }
}
