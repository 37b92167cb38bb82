//! Readers: committed records in sequence order from any position, across segments.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::record::{self, Bad, HEADER, MAX_RECORD_BYTES};
use super::{lock, Shared, WalError};

/// Records with their sequence numbers, as readers return them.
type Batch = Vec<(u64, Vec<u8>)>;

/// Bytes read from a segment per system call: the first read of a call asks for
/// `FIRST_CHUNK`, each read that fills its buffer doubles that, up to `CHUNK`. A
/// reader that follows the log's end reads a few records per call, and zeroing a
/// 256 KiB buffer for them each time was a tenth of a busy sink's CPU.
const FIRST_CHUNK: usize = 16 << 10;
const CHUNK: usize = 256 << 10;

/// Where a reader stands. Cheap to clone, so an async read can work on a copy and
/// only commit the new position when it completes (a cancelled read loses nothing).
#[derive(Clone)]
struct Position {
    seg_first: u64,
    file: Arc<File>,
    /// Byte offset of the record `next_seq` in `file`.
    offset: u64,
    next_seq: u64,
}

/// Reads committed records in order from a starting sequence number.
///
/// Only records below [`super::Wal::committed_seq`] are ever returned, so a reader
/// never sees a record that is not durable per the commit policy.
pub struct WalReader {
    shared: Arc<Shared>,
    pos: Position,
    watch: tokio::sync::watch::Receiver<u64>,
}

impl std::fmt::Debug for WalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalReader").field("next_seq", &self.pos.next_seq).field("segment", &self.pos.seg_first).finish()
    }
}

/// A committed record that does not read back. In a segment removed since the reader
/// opened it, that is the segment being reused (see `Wal::remove_before`): the reader
/// was left behind, as if it had found the segment gone.
fn corrupt(shared: &Shared, pos: &Position, reason: impl Into<String>) -> WalError {
    let first = shared.first.load(Ordering::Acquire);
    if pos.seg_first < first {
        return WalError::Truncated { requested: pos.next_seq, first };
    }
    WalError::Corrupt { path: shared.segment_path(pos.seg_first), offset: pos.offset, reason: reason.into() }
}

/// Whether the reader's segment was removed while the reader stood at its end, its
/// next record being in a segment still there: the file it holds may be a reused
/// one by now, holding newer records, so it moves on without reading it again.
fn passed_removed_segment(shared: &Shared, pos: &Position) -> bool {
    let first = shared.first.load(Ordering::Acquire);
    pos.seg_first < first && pos.next_seq >= first
}

/// Opens the segment starting at exactly `first_seq`, if it is still listed.
/// Done under the segments lock so `remove_before` cannot delete it in between
/// (an open file stays readable after deletion).
fn open_segment(shared: &Shared, seq: u64, exact: bool) -> Result<(u64, Arc<File>), WalError> {
    let segs = lock(&shared.segments);
    let first = segs[0].first_seq;
    if seq < first {
        return Err(WalError::Truncated { requested: seq, first });
    }
    let idx = segs.partition_point(|s| s.first_seq <= seq) - 1;
    let seg = segs[idx].first_seq;
    if exact && seg != seq {
        return Err(WalError::Corrupt {
            path: shared.segment_path(seg),
            offset: 0,
            reason: format!("no segment starts at committed sequence {seq}"),
        });
    }
    let file = File::open(shared.segment_path(seg))?;
    Ok((seg, Arc::new(file)))
}

/// Reads records `[pos.next_seq, limit)` (at most `max`), collecting them if
/// asked. Blocking file I/O; `limit` must not exceed the committed sequence.
///
/// An error after some records were collected returns those records; the error
/// comes back on the next call, from the position after them.
fn advance(shared: &Shared, pos: Position, limit: u64, max: usize, collect: bool) -> Result<(Batch, Position), WalError> {
    let mut out = Vec::new();
    let mut at = pos.clone();
    match advance_into(shared, &mut at, limit, max, collect, &mut out) {
        Ok(()) => Ok((out, at)),
        Err(_) if !out.is_empty() => Ok((out, at)),
        Err(e) => Err(e),
    }
}

fn advance_into(shared: &Shared, pos: &mut Position, limit: u64, max: usize, collect: bool, out: &mut Batch) -> Result<(), WalError> {
    let mut count = 0usize;
    // `buf` holds file bytes from `buf_off`; `i` is `pos.offset - buf_off`.
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_off = pos.offset;
    let mut i = 0usize;
    let mut chunk = FIRST_CHUNK;

    // Makes at least `need` bytes available at `i` unless the file ends first.
    let mut fill = |buf: &mut Vec<u8>, buf_off: &mut u64, i: &mut usize, file: &File, need: usize| -> std::io::Result<()> {
        if buf.len() - *i >= need {
            return Ok(());
        }
        buf.drain(..*i);
        *buf_off += *i as u64;
        *i = 0;
        let target = need.max(chunk);
        while buf.len() < need {
            let have = buf.len();
            buf.resize(target, 0);
            let n = loop {
                match file.read_at(&mut buf[have..], *buf_off + have as u64) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        buf.truncate(have);
                        return Err(e);
                    }
                }
            };
            buf.truncate(have + n);
            if n == 0 {
                break;
            }
        }
        if buf.len() >= target {
            chunk = (chunk * 2).min(CHUNK);
        }
        Ok(())
    };

    while count < max && pos.next_seq < limit {
        if passed_removed_segment(shared, pos) {
            buf.clear();
            i = 0;
        } else {
            fill(&mut buf, &mut buf_off, &mut i, &pos.file, HEADER)?;
        }
        let avail = buf.len() - i;
        if avail == 0 {
            // End of this segment while committed records remain: they start the next.
            let (seg, file) = open_segment(shared, pos.next_seq, true)?;
            *pos = Position { seg_first: seg, file, offset: 0, next_seq: pos.next_seq };
            buf.clear();
            buf_off = 0;
            i = 0;
            continue;
        }
        let checked = 'check: {
            if avail < HEADER {
                break 'check Err("committed record cut short");
            }
            let h = record::decode_header(&buf[i..]);
            if h.len > MAX_RECORD_BYTES {
                break 'check Err(Bad::TooLong.describe());
            }
            fill(&mut buf, &mut buf_off, &mut i, &pos.file, HEADER + h.len)?;
            record::check(&buf[i..], pos.next_seq).map(|(_, total)| total).map_err(Bad::describe)
        };
        let total = match checked {
            Ok(total) => total,
            // Removed (and reused) after the check above: read on from the next one.
            Err(_) if passed_removed_segment(shared, pos) => {
                buf.clear();
                i = 0;
                continue;
            }
            Err(reason) => return Err(corrupt(shared, pos, reason)),
        };
        if collect {
            out.push((pos.next_seq, buf[i + HEADER..i + total].to_vec()));
        }
        count += 1;
        i += total;
        pos.offset += total as u64;
        pos.next_seq += 1;
    }
    Ok(())
}

impl WalReader {
    pub(crate) fn open(shared: Arc<Shared>, from_seq: u64) -> Result<WalReader, WalError> {
        let watch = shared.subscribe();
        let committed = shared.committed.load(Ordering::Acquire);
        if from_seq > committed {
            return Err(WalError::BeyondEnd { requested: from_seq, end: committed });
        }
        let (seg, file) = open_segment(&shared, from_seq, false)?;
        let start = Position { seg_first: seg, file, offset: 0, next_seq: seg };
        // Skip from the segment start; every record is verified on the way.
        let (_, pos) = advance(&shared, start, from_seq, usize::MAX, false)?;
        Ok(WalReader { shared, pos, watch })
    }

    /// Bytes of committed log from this reader's position to the end: how far behind
    /// a consumer at this position is.
    pub fn bytes_ahead(&self) -> u64 {
        let before: u64 = {
            let segs = lock(&self.shared.segments);
            segs.iter().take_while(|s| s.first_seq < self.pos.seg_first).map(|s| s.bytes).sum()
        };
        self.shared.size.load(Ordering::Relaxed).saturating_sub(before + self.pos.offset)
    }

    /// Sequence number of the next record this reader returns.
    pub fn next_seq(&self) -> u64 {
        self.pos.next_seq
    }

    /// Path of the segment the reader is in (for diagnostics).
    pub fn segment_path(&self) -> PathBuf {
        self.shared.segment_path(self.pos.seg_first)
    }

    /// Up to `max` committed records from `next_seq()`, returning as soon as at
    /// least one is available, or an empty batch after `timeout`.
    pub fn read_batch_blocking(&mut self, max: usize, timeout: Duration) -> Result<Vec<(u64, Vec<u8>)>, WalError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        if !self.shared.wait_past(self.pos.next_seq, timeout) {
            return Ok(Vec::new());
        }
        let committed = self.shared.committed.load(Ordering::Acquire);
        let (out, pos) = advance(&self.shared, self.pos.clone(), committed, max, true)?;
        self.pos = pos;
        Ok(out)
    }

    /// Async [`WalReader::read_batch_blocking`]: waits on the committed-seq watch
    /// and does the file reads on the blocking pool. Cancel-safe: a dropped call
    /// does not move the reader.
    pub async fn read_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<(u64, Vec<u8>)>, WalError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Mark the current value seen before checking, so a commit after the
            // check wakes `changed()`.
            self.watch.borrow_and_update();
            let committed = self.shared.committed.load(Ordering::Acquire);
            if committed > self.pos.next_seq {
                let shared = self.shared.clone();
                let pos = self.pos.clone();
                let (out, pos) = tokio::task::spawn_blocking(move || advance(&shared, pos, committed, max, true))
                    .await
                    .map_err(|e| WalError::Io(std::io::Error::other(e.to_string())))??;
                self.pos = pos;
                return Ok(out);
            }
            match tokio::time::timeout_at(deadline, self.watch.changed()).await {
                Ok(Ok(())) => continue,
                // The sender lives in `Shared`, which this reader keeps alive.
                Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
            }
        }
    }
}
