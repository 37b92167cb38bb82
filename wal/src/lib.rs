//! A durable write-ahead log: segment files, group commit with fsync, readers at any
//! position, recovery after a crash. It knows nothing of events: a record is bytes.
//!
//! Guarantees: an append whose future resolves `Ok` (under [`CommitPolicy::Fsync`],
//! the default) is on disk and survives a crash or power loss; after a crash the log
//! reopens at its last whole record (a torn tail is cut, damage elsewhere is an
//! error, never skipped); a failed write keeps nothing of its group; readers only see
//! committed records, in order; the log never grows past [`WalConfig::max_bytes`]
//! (appends beyond it fail with [`WalError::Full`], which callers answer with 503),
//! and the disk holds at most one consumed segment besides, kept for reuse.
//!
//! The ingest server appends event records here and acknowledges a request only once
//! [`Wal::append`] resolves; sinks each read the log at their own checkpointed
//! position ([`Checkpoints`]) so a slow sink never holds ingest back, and
//! [`Wal::remove_before`] drops segments once every sink has passed them.
//!
//! One writer thread owns the active segment. Appenders hand it requests through a
//! bounded queue; it drains everything pending, writes it, fsyncs once and answers
//! the whole group (group commit), then publishes the new committed sequence to
//! readers (a `Condvar` for blocking readers, a `tokio::sync::watch` for async ones).
//!
//! Disk layout: `{dir}/{first_seq:020}.wal` segments of framed records (see
//! `record.rs`), a `LOCK` file held with `flock` while a writer is running, and at
//! most one consumed segment, `reuse.spare`, that the next rotation renames into place
//! and writes over: overwriting blocks a file already has needs no size or extent
//! update at each fsync, where a growing file needs one.

mod checkpoint;
mod reader;
mod record;
mod recovery;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use checkpoint::Checkpoints;
pub use reader::WalReader;
pub use record::MAX_RECORD_BYTES;

/// The smallest segment size [`Wal::open`] makes a large cap's segments into.
pub const MIN_SEGMENT_BYTES: u64 = 64 << 10;

/// When an append is acknowledged relative to fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitPolicy {
    /// Acknowledge only after the group is fsynced (the default: survives power loss).
    #[default]
    Fsync,
    /// Acknowledge after the write reaches the OS; fsync at most this often.
    /// Survives a process crash, may lose up to one interval on power loss.
    Interval(Duration),
    /// Never fsync except on segment rotation and shutdown.
    None,
}

/// Configuration of a [`Wal`].
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// Directory holding the segment files (created if missing).
    pub dir: PathBuf,
    /// A segment is closed and a new one started before it would grow past this.
    pub segment_bytes: u64,
    /// Total size cap; appends beyond it fail with [`WalError::Full`].
    pub max_bytes: u64,
    /// Durability of acknowledgements.
    pub commit: CommitPolicy,
    /// Pending append requests; beyond it appends fail with [`WalError::Full`].
    pub queue_capacity: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            dir: PathBuf::from("data/wal"),
            segment_bytes: 64 << 20,
            max_bytes: 1 << 30,
            commit: CommitPolicy::Fsync,
            queue_capacity: 4096,
        }
    }
}

/// Errors of the write-ahead log and checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The append queue or the size cap is full; the caller should retry later (HTTP 503).
    #[error("write-ahead log is full (queue or size cap reached); retry later")]
    Full,
    /// The log was shut down.
    #[error("write-ahead log is closed")]
    Closed,
    /// An I/O error; for appends, nothing of the failed group was kept.
    #[error("write-ahead log I/O error: {0}")]
    Io(#[from] io::Error),
    /// The requested position was already removed by [`Wal::remove_before`].
    #[error("sequence {requested} is no longer in the write-ahead log (oldest is {first})")]
    Truncated { requested: u64, first: u64 },
    /// The requested position is past the end of the log (e.g. a checkpoint written
    /// before a crash that lost un-fsynced records under a relaxed commit policy).
    #[error("sequence {requested} is beyond the end of the write-ahead log (next is {end})")]
    BeyondEnd { requested: u64, end: u64 },
    /// Damage that is not a torn tail: a bad record in an older segment, or a bad
    /// committed record met by a reader.
    #[error("write-ahead log corrupt in {path} at byte {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    /// A single record over [`MAX_RECORD_BYTES`].
    #[error("record of {len} bytes exceeds the {max}-byte limit")]
    RecordTooLarge { len: usize, max: usize },
    /// Another process (or another open `Wal`) holds the directory.
    #[error("write-ahead log directory {0} is locked by another writer")]
    Locked(PathBuf),
    /// Checkpoint names are plain file-name stems.
    #[error("invalid checkpoint name {0:?}")]
    InvalidName(String),
    /// A checkpoint could not be encoded or decoded.
    #[error("checkpoint {name}: {source}")]
    Checkpoint {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Append requests acknowledged successfully.
    pub appends: u64,
    /// Records written in acknowledged appends.
    pub records: u64,
    /// Write groups committed (each answered all the requests drained together).
    pub groups: u64,
    /// fsync calls on segment files.
    pub fsyncs: u64,
    /// Bytes written in acknowledged appends.
    pub bytes_written: u64,
    /// Appends refused with [`WalError::Full`].
    pub full: u64,
    /// Groups failed with an I/O error.
    pub io_errors: u64,
}

#[derive(Default)]
struct Counters {
    appends: AtomicU64,
    records: AtomicU64,
    groups: AtomicU64,
    fsyncs: AtomicU64,
    bytes_written: AtomicU64,
    full: AtomicU64,
    io_errors: AtomicU64,
}

/// One segment file as known to the writer and readers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentMeta {
    pub first_seq: u64,
    /// Final length; meaningful only once the segment is no longer active.
    pub bytes: u64,
}

/// State shared by the handle, the writer thread and readers.
pub(crate) struct Shared {
    pub config: WalConfig,
    /// Segments in sequence order; the last one is the active segment.
    pub segments: Mutex<Vec<SegmentMeta>>,
    pub committed: AtomicU64,
    pub first: AtomicU64,
    pub size: AtomicU64,
    pub closed: AtomicBool,
    /// Whether `reuse.spare` is there; changed only under the `segments` lock.
    pub spare: AtomicBool,
    commit_lock: Mutex<u64>,
    commit_cv: Condvar,
    commit_watch: tokio::sync::watch::Sender<u64>,
    counters: Counters,
    /// Lets unit tests hold the writer between receiving and processing a group.
    #[cfg(test)]
    pub gate: Mutex<()>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the log down with it; the data under these
    // locks stays consistent between statements.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Makes `committed` visible to every kind of reader.
    fn publish(&self, committed: u64) {
        self.committed.store(committed, Ordering::Release);
        *lock(&self.commit_lock) = committed;
        self.commit_cv.notify_all();
        self.commit_watch.send_replace(committed);
    }

    /// Blocks until `committed > seq` or the timeout passes; returns whether it did.
    pub(crate) fn wait_past(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.commit_lock);
        while *g <= seq {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self.commit_cv.wait_timeout(g, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commit_watch.subscribe()
    }

    pub(crate) fn segment_path(&self, first_seq: u64) -> PathBuf {
        record::segment_path(&self.config.dir, first_seq)
    }
}

/// How the writer answers one request.
pub(crate) enum Reply {
    Async(tokio::sync::oneshot::Sender<Result<Range<u64>, WalError>>),
    Blocking(SyncSender<Result<Range<u64>, WalError>>),
}

impl Reply {
    pub(crate) fn send(self, r: Result<Range<u64>, WalError>) {
        // The caller may have gone away (dropped future); the outcome stands anyway.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(r);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

/// An append queued by [`Wal::submit_blocking`].
#[must_use = "an append's outcome is known only by waiting for it"]
pub struct Appending(Outcome);

enum Outcome {
    /// Answered at once (nothing to append).
    Known(Range<u64>),
    /// The writer will answer here.
    Coming(mpsc::Receiver<Result<Range<u64>, WalError>>),
}

impl Appending {
    /// Blocks until the records are durable per the commit policy (or the append failed).
    pub fn wait(self) -> Result<Range<u64>, WalError> {
        match self.0 {
            Outcome::Known(range) => Ok(range),
            Outcome::Coming(rx) => rx.recv().map_err(|_| WalError::Closed)?,
        }
    }
}

pub(crate) struct Request {
    pub records: Vec<Vec<u8>>,
    /// Encoded size of all records.
    pub bytes: u64,
    pub reply: Reply,
}

pub(crate) enum Msg {
    Append(Request),
    /// Flush, fsync and stop.
    Shutdown,
}

/// Owns the sender and the writer thread; dropping the last [`Wal`] shuts down.
struct Handle {
    shared: Arc<Shared>,
    tx: SyncSender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Handle {
    fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let Some(thread) = lock(&self.thread).take() else {
            return;
        };
        // Blocking send: the writer is draining the queue, so room appears; if it
        // already exited the send fails and join returns at once.
        let _ = self.tx.send(Msg::Shutdown);
        if thread.join().is_err() {
            tracing::error!("wal writer thread panicked");
        }
    }
}

/// A durable, append-only log of byte records with sequence numbers.
///
/// Cheap to clone; all clones share one writer thread. Dropping the last clone
/// (or calling [`Wal::shutdown`]) flushes, fsyncs and stops the writer.
#[derive(Clone)]
pub struct Wal {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.inner.shared.config.dir)
            .field("first_seq", &self.first_seq())
            .field("committed_seq", &self.committed_seq())
            .finish()
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `config.dir`, recovers it and starts
    /// the writer thread.
    ///
    /// Recovery verifies every record; a torn or corrupt tail of the last segment
    /// is cut off (and logged), damage anywhere else is [`WalError::Corrupt`].
    pub fn open(mut config: WalConfig) -> Result<Wal, WalError> {
        // Consumed segments are removed whole: keep them small beside the cap, so the
        // log can shrink before it fills.
        config.segment_bytes = config.segment_bytes.min((config.max_bytes / 8).max(MIN_SEGMENT_BYTES)).max(1);
        config.queue_capacity = config.queue_capacity.max(1);
        let rec = recovery::recover(&config)?;
        tracing::info!(
            dir = %config.dir.display(),
            segments = rec.segments.len(),
            first_seq = rec.first_seq,
            next_seq = rec.next_seq,
            bytes = rec.size,
            "write-ahead log opened"
        );
        let (watch_tx, _) = tokio::sync::watch::channel(rec.next_seq);
        let shared = Arc::new(Shared {
            segments: Mutex::new(rec.segments.clone()),
            committed: AtomicU64::new(rec.next_seq),
            first: AtomicU64::new(rec.first_seq),
            size: AtomicU64::new(rec.size),
            closed: AtomicBool::new(false),
            spare: AtomicBool::new(false),
            commit_lock: Mutex::new(rec.next_seq),
            commit_cv: Condvar::new(),
            commit_watch: watch_tx,
            counters: Counters::default(),
            #[cfg(test)]
            gate: Mutex::new(()),
            config: config.clone(),
        });
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let w = writer::Writer::new(shared.clone(), rx, rec)?;
        let thread = std::thread::Builder::new().name("wal-writer".into()).spawn(move || w.run())?;
        Ok(Wal { inner: Arc::new(Handle { shared, tx, thread: Mutex::new(Some(thread)) }) })
    }

    /// Queues a request without waiting; errors that need no writer come back here.
    fn submit(&self, records: Vec<Vec<u8>>, reply: Reply) -> Result<Option<Range<u64>>, WalError> {
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(WalError::Closed);
        }
        if records.is_empty() {
            let c = self.committed_seq();
            return Ok(Some(c..c));
        }
        let mut bytes = 0u64;
        for r in &records {
            if r.len() > MAX_RECORD_BYTES {
                return Err(WalError::RecordTooLarge { len: r.len(), max: MAX_RECORD_BYTES });
            }
            bytes += record::encoded_len(r.len());
        }
        // Cheap early refusal; the writer re-checks against the exact size.
        if shared.size.load(Ordering::Relaxed) + bytes > shared.config.max_bytes {
            shared.counters.full.fetch_add(1, Ordering::Relaxed);
            return Err(WalError::Full);
        }
        let req = Request { records, bytes, reply };
        match self.inner.tx.try_send(Msg::Append(req)) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full(_)) => {
                shared.counters.full.fetch_add(1, Ordering::Relaxed);
                Err(WalError::Full)
            }
            Err(TrySendError::Disconnected(_)) => Err(WalError::Closed),
        }
    }

    /// Appends `records` with contiguous sequence numbers and resolves once they
    /// are durable per the commit policy (with [`CommitPolicy::Fsync`]: fsynced).
    ///
    /// Never blocks the executor: a full queue or size cap is [`WalError::Full`]
    /// at once. If the future is dropped after the request was queued, the records
    /// may still be written.
    pub async fn append(&self, records: Vec<Vec<u8>>) -> Result<Range<u64>, WalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(r) = self.submit(records, Reply::Async(tx))? {
            return Ok(r);
        }
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// [`Wal::append`] for threads outside an async runtime.
    pub fn append_blocking(&self, records: Vec<Vec<u8>>) -> Result<Range<u64>, WalError> {
        self.submit_blocking(records)?.wait()
    }

    /// Queues `records` and returns at once: a thread outside an async runtime prepares
    /// its next append while the writer writes this one, as concurrent requests do.
    /// Appends get their sequence numbers in the order they are submitted.
    pub fn submit_blocking(&self, records: Vec<Vec<u8>>) -> Result<Appending, WalError> {
        let (tx, rx) = mpsc::sync_channel(1);
        Ok(Appending(match self.submit(records, Reply::Blocking(tx))? {
            Some(range) => Outcome::Known(range),
            None => Outcome::Coming(rx),
        }))
    }

    /// Every sequence number below this is durable (per policy) and readable.
    pub fn committed_seq(&self) -> u64 {
        self.inner.shared.committed.load(Ordering::Acquire)
    }

    /// The oldest sequence number still on disk (equals `committed_seq` when empty).
    pub fn first_seq(&self) -> u64 {
        self.inner.shared.first.load(Ordering::Acquire)
    }

    /// Bytes of committed records on disk.
    pub fn size_bytes(&self) -> u64 {
        self.inner.shared.size.load(Ordering::Relaxed)
    }

    /// Directory of the segment files.
    pub fn dir(&self) -> &std::path::Path {
        &self.inner.shared.config.dir
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        let c = &self.inner.shared.counters;
        WalStats {
            appends: c.appends.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            full: c.full.load(Ordering::Relaxed),
            io_errors: c.io_errors.load(Ordering::Relaxed),
        }
    }

    /// A reader positioned at `from_seq`.
    ///
    /// `from_seq < first_seq()` is [`WalError::Truncated`]; `from_seq >
    /// committed_seq()` is [`WalError::BeyondEnd`] (waiting there would silently
    /// skip the records that will be written at the lower numbers).
    pub fn reader(&self, from_seq: u64) -> Result<WalReader, WalError> {
        WalReader::open(self.inner.shared.clone(), from_seq)
    }

    /// Deletes whole segments whose records are all below `seq` (clamped to
    /// `committed_seq()`), oldest first, never the active segment. Returns how many.
    /// The first one goes to `reuse.spare` instead when there is none, so the disk
    /// holds at most one segment (`segment_bytes`) beyond the log itself.
    pub fn remove_before(&self, seq: u64) -> Result<usize, WalError> {
        let shared = &self.inner.shared;
        let seq = seq.min(self.committed_seq());
        let mut segs = lock(&shared.segments);
        let mut removed = 0;
        let mut result = Ok(());
        // Segment i holds seqs [segs[i].first, segs[i+1].first): removable when the
        // next one starts at or below `seq`. Oldest first, so a crash part-way
        // leaves a contiguous log (recovery relies on it).
        while segs.len() >= 2 && segs[1].first_seq <= seq {
            let victim = segs[0];
            let path = shared.segment_path(victim.first_seq);
            let gone = if !shared.spare.load(Ordering::Relaxed) && std::fs::rename(&path, record::spare_path(&shared.config.dir)).is_ok() {
                shared.spare.store(true, Ordering::Relaxed);
                Ok(())
            } else {
                std::fs::remove_file(&path)
            };
            match gone {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            segs.remove(0);
            shared.size.fetch_sub(victim.bytes, Ordering::Relaxed);
            shared.first.store(segs[0].first_seq, Ordering::Release);
            removed += 1;
        }
        drop(segs);
        if removed > 0 {
            tracing::debug!(removed, first_seq = self.first_seq(), "wal segments removed");
            // Make the deletions durable so they cannot reappear out of order.
            if let Err(e) = recovery::sync_dir(&shared.config.dir) {
                result = result.and(Err(e));
            }
        }
        result?;
        Ok(removed)
    }

    /// Flushes, fsyncs and stops the writer; later appends fail with
    /// [`WalError::Closed`]. Readers keep working on what was committed.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    #[cfg(test)]
    pub(crate) fn submit_for_test(
        &self,
        records: Vec<Vec<u8>>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Range<u64>, WalError>>, WalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.submit(records, Reply::Async(tx))? {
            Some(_) => panic!("empty append in test"),
            None => Ok(rx),
        }
    }
}

/// Copies an I/O error so every request of a failed group gets one (keeps the errno).
pub(crate) fn clone_io(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}
