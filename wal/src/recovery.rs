//! Opening a log directory: lock it, verify every segment, cut a torn tail.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::record::{self, Bad, HEADER, MAX_RECORD_BYTES};
use super::{SegmentMeta, WalConfig, WalError};

/// What the writer starts from.
pub(crate) struct Recovered {
    /// Segments in order; the last is active and its `bytes` is its length.
    pub segments: Vec<SegmentMeta>,
    pub first_seq: u64,
    pub next_seq: u64,
    pub size: u64,
    /// `flock`ed for as long as the writer runs.
    pub lock: File,
}

/// fsyncs a directory so entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn acquire_lock(dir: &Path) -> Result<File, WalError> {
    let f = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("LOCK"))?;
    // `flock(LOCK_EX | LOCK_NB)` on Unix.
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(WalError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Result of verifying one segment.
struct Scan {
    first_seq: u64,
    /// Bytes of valid records from the start.
    valid_len: u64,
    file_len: u64,
    /// Sequence after the last valid record.
    end_seq: u64,
    bad: Option<Bad>,
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn scan_segment(path: &Path, first_seq: u64) -> io::Result<Scan> {
    let f = File::open(path)?;
    let file_len = f.metadata()?.len();
    let mut r = io::BufReader::with_capacity(1 << 20, f);
    let mut offset = 0u64;
    let mut seq = first_seq;
    let mut payload = Vec::new();
    let mut bad = None;
    loop {
        let mut hdr = [0u8; HEADER];
        let n = read_full(&mut r, &mut hdr)?;
        if n == 0 {
            break;
        }
        if n < HEADER {
            bad = Some(Bad::Short);
            break;
        }
        let h = record::decode_header(&hdr);
        if h.len > MAX_RECORD_BYTES {
            bad = Some(Bad::TooLong);
            break;
        }
        payload.resize(h.len, 0);
        if read_full(&mut r, &mut payload)? < h.len {
            bad = Some(Bad::Short);
            break;
        }
        if h.seq != seq {
            bad = Some(Bad::WrongSeq);
            break;
        }
        if record::checksum(h.seq, &payload) != h.crc {
            bad = Some(Bad::Crc);
            break;
        }
        offset += (HEADER + h.len) as u64;
        seq += 1;
    }
    Ok(Scan { first_seq, valid_len: offset, file_len, end_seq: seq, bad })
}

fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = record::parse_segment_name(name) {
            firsts.push(first);
        } else if name.ends_with(record::SEGMENT_SUFFIX) {
            tracing::warn!(file = name, "ignoring misnamed file in wal directory");
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

fn create_segment(dir: &Path, first_seq: u64) -> io::Result<PathBuf> {
    let path = record::segment_path(dir, first_seq);
    File::create(&path)?.sync_all()?;
    sync_dir(dir)?;
    Ok(path)
}

pub(crate) fn recover(config: &WalConfig) -> Result<Recovered, WalError> {
    let dir = &config.dir;
    fs::create_dir_all(dir)?;
    let lock = acquire_lock(dir)?;
    // A spare is only ever reused by the writer that kept it: an older one could hold
    // records whose sequence numbers a log started anew would meet again.
    match fs::remove_file(record::spare_path(dir)) {
        Ok(()) => sync_dir(dir)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let firsts = list_segments(dir)?;
    if firsts.is_empty() {
        create_segment(dir, 0)?;
        return Ok(Recovered { segments: vec![SegmentMeta { first_seq: 0, bytes: 0 }], first_seq: 0, next_seq: 0, size: 0, lock });
    }
    let mut scans = Vec::with_capacity(firsts.len());
    for &first in &firsts {
        scans.push(scan_segment(&record::segment_path(dir, first), first)?);
    }

    // A clean segment ending before the next one starts means segments in between
    // are missing. `remove_before` deletes oldest first, so that is a crash during
    // removal and everything up to the gap had been chosen for deletion: finish it.
    let mut start = 0;
    for i in 0..scans.len() - 1 {
        if scans[i].bad.is_none() && scans[i].end_seq < scans[i + 1].first_seq {
            start = i + 1;
        }
    }
    for s in &scans[..start] {
        tracing::warn!(segment = s.first_seq, "removing wal segment left over from an interrupted removal");
        fs::remove_file(record::segment_path(dir, s.first_seq))?;
    }
    if start > 0 {
        sync_dir(dir)?;
    }
    let scans = &mut scans[start..];

    // Older segments were cut to their records and fsynced before the next one was
    // created, so only the last can hold a torn write (or a reused segment's old
    // bytes); damage elsewhere is real corruption.
    let n = scans.len();
    for i in 0..n - 1 {
        let s = &scans[i];
        let path = record::segment_path(dir, s.first_seq);
        if let Some(bad) = s.bad {
            return Err(WalError::Corrupt { path, offset: s.valid_len, reason: bad.describe().to_string() });
        }
        if s.end_seq != scans[i + 1].first_seq {
            return Err(WalError::Corrupt {
                path,
                offset: s.valid_len,
                reason: format!("segment ends at sequence {} but the next starts at {}", s.end_seq, scans[i + 1].first_seq),
            });
        }
    }

    let last = &mut scans[n - 1];
    if let Some(bad) = last.bad {
        let path = record::segment_path(dir, last.first_seq);
        tracing::warn!(
            segment = %path.display(),
            offset = last.valid_len,
            bytes_removed = last.file_len - last.valid_len,
            reason = bad.describe(),
            "truncating the write-ahead log after its last whole record (a torn write, or what a reused segment held before)"
        );
        let f = OpenOptions::new().write(true).open(&path)?;
        f.set_len(last.valid_len)?;
        f.sync_all()?;
        last.file_len = last.valid_len;
    }

    let segments: Vec<SegmentMeta> = scans.iter().map(|s| SegmentMeta { first_seq: s.first_seq, bytes: s.valid_len }).collect();
    let size = segments.iter().map(|s| s.bytes).sum();
    Ok(Recovered { first_seq: segments[0].first_seq, next_seq: scans[n - 1].end_seq, segments, size, lock })
}
