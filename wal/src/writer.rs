//! The writer thread: drains pending appends, writes them, fsyncs once, answers all.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::recovery::{sync_dir, Recovered};
use super::{clone_io, lock, record, CommitPolicy, Msg, Request, SegmentMeta, Shared, WalError};

/// Write the encode buffer out once it reaches this size, so a huge group does not
/// hold all of its bytes in memory twice.
const FLUSH_BYTES: usize = 1 << 20;

/// Where the log stood before a group, to undo a failed one.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    active_first: u64,
    active_len: u64,
    next_seq: u64,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Msg>,
    /// The active (last) segment, positioned at its end.
    file: File,
    active_first: u64,
    /// Bytes of `file` written (the encode buffer not included).
    active_len: u64,
    next_seq: u64,
    buf: Vec<u8>,
    /// Written since the last fsync.
    dirty: bool,
    last_sync: Instant,
    /// A failed group whose undo also failed; retried before the next group.
    pending_rollback: Option<Snapshot>,
    /// Holds the directory `flock` until the thread exits.
    _lock: File,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, rx: Receiver<Msg>, rec: Recovered) -> io::Result<Writer> {
        let last = *rec.segments.last().expect("recovery yields a segment");
        let mut file = OpenOptions::new().write(true).open(shared.segment_path(last.first_seq))?;
        file.seek(SeekFrom::Start(last.bytes))?;
        Ok(Writer {
            shared,
            rx,
            file,
            active_first: last.first_seq,
            active_len: last.bytes,
            next_seq: rec.next_seq,
            buf: Vec::with_capacity(64 << 10),
            dirty: false,
            last_sync: Instant::now(),
            pending_rollback: None,
            _lock: rec.lock,
        })
    }

    fn interval(&self) -> Option<Duration> {
        match self.shared.config.commit {
            CommitPolicy::Interval(d) => Some(d),
            _ => None,
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            // Wait for work; with an interval policy also wake to fsync on time.
            let msg = match self.interval().filter(|_| self.dirty) {
                Some(d) => {
                    let deadline = self.last_sync + d;
                    let now = Instant::now();
                    if now >= deadline {
                        self.background_sync();
                        continue;
                    }
                    match self.rx.recv_timeout(deadline - now) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            self.background_sync();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            #[cfg(test)]
            let shared = self.shared.clone();
            #[cfg(test)]
            let gate = lock(&shared.gate);
            // Group commit: take everything already queued.
            let mut group = Vec::new();
            let mut stop = false;
            match msg {
                Msg::Append(r) => group.push(r),
                Msg::Shutdown => stop = true,
            }
            while !stop {
                match self.rx.try_recv() {
                    Ok(Msg::Append(r)) => group.push(r),
                    Ok(Msg::Shutdown) => stop = true,
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            #[cfg(test)]
            drop(gate);
            if stop {
                break;
            }
        }
        // A clean stop leaves no old bytes after the records (and nothing to cut, with
        // a warning, at the next open).
        if let Err(e) = self.cut_to_records() {
            tracing::error!(error = %e, "wal could not cut a reused segment to its records");
        }
        if self.dirty {
            self.background_sync();
        }
        // Requests that raced with shutdown.
        while let Ok(m) = self.rx.try_recv() {
            if let Msg::Append(r) = m {
                r.reply.send(Err(WalError::Closed));
            }
        }
        tracing::info!(next_seq = self.next_seq, "wal writer stopped");
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        let shared = self.shared.clone();
        let c = &shared.counters;
        if let Some(snap) = self.pending_rollback {
            if let Err(e) = self.rollback(snap) {
                tracing::error!(error = %e, "wal still cannot undo a failed write; refusing appends");
                c.io_errors.fetch_add(1, Ordering::Relaxed);
                for r in group {
                    r.reply.send(Err(WalError::Io(clone_io(&e))));
                }
                return;
            }
            self.pending_rollback = None;
        }

        // Size cap per request, in arrival order.
        let max = self.shared.config.max_bytes;
        let mut size = self.shared.size.load(Ordering::Relaxed);
        let mut accepted = Vec::with_capacity(group.len());
        for req in group {
            if size + req.bytes > max {
                c.full.fetch_add(1, Ordering::Relaxed);
                req.reply.send(Err(WalError::Full));
            } else {
                size += req.bytes;
                accepted.push(req);
            }
        }
        if accepted.is_empty() {
            return;
        }

        let snap = Snapshot { active_first: self.active_first, active_len: self.active_len, next_seq: self.next_seq };
        let fsync = self.shared.config.commit == CommitPolicy::Fsync;
        let res = (|| -> io::Result<()> {
            for req in &accepted {
                for rec in &req.records {
                    self.push(rec)?;
                }
            }
            self.flush_buf()?;
            if fsync {
                self.sync()?;
            } else {
                self.dirty = true;
            }
            Ok(())
        })();

        if let Err(e) = res {
            c.io_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, requests = accepted.len(), "wal write failed; undoing the group");
            if let Err(e2) = self.rollback(snap) {
                tracing::error!(error = %e2, "wal could not undo the failed group; will retry");
                self.pending_rollback = Some(snap);
            }
            for req in accepted {
                req.reply.send(Err(WalError::Io(clone_io(&e))));
            }
            return;
        }

        if let Some(d) = self.interval() {
            if self.last_sync.elapsed() >= d {
                self.background_sync();
            }
        }

        let group_bytes: u64 = accepted.iter().map(|r| r.bytes).sum();
        let records: u64 = accepted.iter().map(|r| r.records.len() as u64).sum();
        self.shared.size.fetch_add(group_bytes, Ordering::Relaxed);
        c.groups.fetch_add(1, Ordering::Relaxed);
        c.appends.fetch_add(accepted.len() as u64, Ordering::Relaxed);
        c.records.fetch_add(records, Ordering::Relaxed);
        c.bytes_written.fetch_add(group_bytes, Ordering::Relaxed);
        // Publish before answering: once an append returns, readers can see it.
        self.shared.publish(self.next_seq);
        let mut seq = snap.next_seq;
        for req in accepted {
            let n = req.records.len() as u64;
            req.reply.send(Ok(seq..seq + n));
            seq += n;
        }
    }

    fn push(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = record::encoded_len(payload.len());
        let used = self.active_len + self.buf.len() as u64;
        if used > 0 && used + len > self.shared.config.segment_bytes {
            self.rotate()?;
        }
        record::encode(&mut self.buf, self.next_seq, payload);
        self.next_seq += 1;
        if self.buf.len() >= FLUSH_BYTES {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        let n = self.buf.len() as u64;
        // On error the file is cut back by `rollback`; the bytes are not retried.
        self.buf.clear();
        r?;
        self.active_len += n;
        Ok(())
    }

    /// Cuts a reused segment's old bytes after its records (synced with the next sync).
    fn cut_to_records(&mut self) -> io::Result<()> {
        if self.file.metadata()?.len() > self.active_len {
            self.file.set_len(self.active_len)?;
            self.dirty = true;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.shared.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// fsync outside the ack path (interval policy, shutdown); failures are logged
    /// and retried, the records were already acknowledged.
    fn background_sync(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "wal fsync failed; will retry");
            // Avoid spinning on a persistent failure.
            self.last_sync = Instant::now();
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.flush_buf()?;
        // A segment is complete on disk, ending at its last record (readers move on
        // at its end), before a newer one exists, whatever the commit policy, so
        // recovery only ever finds a torn write in the last one.
        self.cut_to_records()?;
        self.sync()?;
        let first = self.next_seq;
        let path = self.shared.segment_path(first);
        let file = {
            let mut segs = lock(&self.shared.segments);
            let spare = record::spare_path(&self.shared.config.dir);
            let reused = self.shared.spare.swap(false, Ordering::Relaxed) && fs::rename(&spare, &path).is_ok();
            // A reused file keeps its bytes, written over from the start.
            let file = OpenOptions::new().write(true).create(true).truncate(!reused).open(&path)?;
            if let Some(last) = segs.last_mut() {
                last.bytes = self.active_len;
            }
            segs.push(SegmentMeta { first_seq: first, bytes: 0 });
            file
        };
        self.file = file;
        self.active_first = first;
        self.active_len = 0;
        // Make the new name durable before records in it are acknowledged.
        sync_dir(&self.shared.config.dir)?;
        tracing::debug!(segment = first, "wal segment started");
        Ok(())
    }

    /// Undoes a failed group: drops segments it created and cuts the active one
    /// back, so sequence numbers continue without a gap.
    fn rollback(&mut self, snap: Snapshot) -> io::Result<()> {
        self.buf.clear();
        let mut removed = false;
        {
            let mut segs = lock(&self.shared.segments);
            // A segment starting exactly at the group's first seq was a rotation of
            // a full segment and may stay (emptied); later ones exist only because
            // of this group. `remove_before` cannot have touched these (they start
            // above the committed seq).
            while segs.len() > 1 && segs.last().is_some_and(|s| s.first_seq > snap.next_seq) {
                let s = segs[segs.len() - 1];
                match fs::remove_file(self.shared.segment_path(s.first_seq)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                segs.pop();
                removed = true;
            }
        }
        let active = *lock(&self.shared.segments).last().expect("segments never empty");
        // Removals durable before the older segment is shortened, or a crash could
        // leave a shortened segment followed by a newer one; and a kept new segment
        // may be here because its directory fsync is what failed.
        if removed || active.first_seq != snap.active_first {
            sync_dir(&self.shared.config.dir)?;
        }
        let len = if active.first_seq == snap.active_first { snap.active_len } else { 0 };
        if self.active_first != active.first_seq {
            self.file = OpenOptions::new().write(true).open(self.shared.segment_path(active.first_seq))?;
            self.active_first = active.first_seq;
        }
        self.file.set_len(len)?;
        self.file.seek(SeekFrom::Start(len))?;
        self.active_len = len;
        self.next_seq = snap.next_seq;
        Ok(())
    }
}
