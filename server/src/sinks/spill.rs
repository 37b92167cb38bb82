//! Spill files: what a sink with the `spill` policy could not deliver, so
//! `tracking-server replay-spill --sink NAME` can deliver it later (downstream
//! de-duplication by message id makes a repeat harmless). One JSON line per log
//! record, `{"record":<the record>}`: spilling is a copy, so it always keeps up with
//! ingest; the sink's processors and format are applied at replay. (Files written by
//! earlier versions hold one message per line in the sink's format; replay takes both.)
//!
//! A sink writes `spill-<time>-<n>.jsonl.open` (mode 0640) and renames it to
//! `.jsonl` when it closes it: when it delivers again, when the file reaches
//! [`SPILL_FILE_BYTES`], on shutdown, or at the next start after a crash. Replay takes
//! only closed files, oldest first, and removes each once it is delivered.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A spill file is closed (and a new one started) at this size.
pub const SPILL_FILE_BYTES: u64 = 16 << 20;

const RECORD_PREFIX: &str = "{\"record\":";
const OPEN_SUFFIX: &str = ".jsonl.open";
const CLOSED_SUFFIX: &str = ".jsonl";

struct Open {
    out: BufWriter<File>,
    path: PathBuf,
    bytes: u64,
}

/// Appends lines to a sink's spill directory.
pub struct SpillWriter {
    dir: PathBuf,
    open: Option<Open>,
    /// Bytes in the directory (closed files at start, plus what was written since).
    total: Option<u64>,
    counter: u32,
}

impl SpillWriter {
    pub fn new(dir: PathBuf) -> SpillWriter {
        SpillWriter { dir, open: None, total: None, counter: 0 }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one line (a newline is added).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.open.as_ref().is_some_and(|o| o.bytes >= SPILL_FILE_BYTES) {
            self.close()?;
        }
        if self.open.is_none() {
            self.open = Some(self.create()?);
        }
        let open = self.open.as_mut().expect("opened above");
        open.out.write_all(line)?;
        open.out.write_all(b"\n")?;
        open.bytes += line.len() as u64 + 1;
        if let Some(total) = &mut self.total {
            *total += line.len() as u64 + 1;
        }
        Ok(())
    }

    /// Appends one log record as a `{"record":…}` line. A record is valid JSON, whose
    /// only newlines are whitespace between tokens: they become spaces.
    pub fn write_record(&mut self, record: &[u8]) -> io::Result<()> {
        let mut line = Vec::with_capacity(record.len() + RECORD_PREFIX.len() + 1);
        line.extend_from_slice(RECORD_PREFIX.as_bytes());
        line.extend(record.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
        line.push(b'}');
        self.write_line(&line)
    }

    fn create(&mut self) -> io::Result<Open> {
        fs::create_dir_all(&self.dir)?;
        if self.total.is_none() {
            close_leftovers(&self.dir)?;
            self.total = Some(dir_bytes(&self.dir));
        }
        self.counter += 1;
        let name = format!("spill-{}-{}-{}{OPEN_SUFFIX}", super::file_stamp(), std::process::id(), self.counter);
        let path = self.dir.join(name);
        let file = OpenOptions::new().create_new(true).append(true).mode(0o640).open(&path)?;
        file.set_permissions(fs::Permissions::from_mode(0o640))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(Open { out: BufWriter::with_capacity(1 << 16, file), path, bytes: 0 })
    }

    /// Makes every line written so far durable (before the log lets go of them).
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(open) = &mut self.open {
            open.out.flush()?;
            open.out.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// Closes the current file for replay.
    pub fn close(&mut self) -> io::Result<()> {
        let Some(mut open) = self.open.take() else { return Ok(()) };
        open.out.flush()?;
        open.out.get_ref().sync_data()?;
        let closed = closed_name(&open.path);
        fs::rename(&open.path, &closed)?;
        File::open(&self.dir)?.sync_all()?;
        tracing::info!(file = %closed.display(), bytes = open.bytes, "closed a spill file; `tracking-server replay-spill` delivers it");
        Ok(())
    }

    /// Bytes in the spill directory.
    pub fn total_bytes(&mut self) -> u64 {
        *self.total.get_or_insert_with(|| dir_bytes(&self.dir))
    }
}

impl Drop for SpillWriter {
    fn drop(&mut self) {
        if let Err(error) = self.close() {
            tracing::error!(%error, dir = %self.dir.display(), "could not close a spill file");
        }
    }
}

/// The log record of a spill line written by [`SpillWriter::write_record`].
pub fn record_of(line: &str) -> Option<&str> {
    line.strip_prefix(RECORD_PREFIX)?.strip_suffix('}')
}

/// Spill lines as replay takes them: the log records (numbered in file order), and
/// the messages earlier versions spilled in the sink's own format.
pub fn split_replay_lines(lines: &[String]) -> (Vec<(u64, Vec<u8>)>, Vec<&str>) {
    let (mut records, mut messages) = (Vec::new(), Vec::new());
    for line in lines {
        match record_of(line) {
            Some(record) => records.push((records.len() as u64, record.as_bytes().to_vec())),
            None => messages.push(line.as_str()),
        }
    }
    (records, messages)
}

fn closed_name(open: &Path) -> PathBuf {
    let name = open.file_name().and_then(|n| n.to_str()).unwrap_or("spill");
    open.with_file_name(format!("{}{CLOSED_SUFFIX}", name.trim_end_matches(OPEN_SUFFIX)))
}

/// Files a crash left open are closed: every line up to the last sync is valid (a torn
/// last line is skipped by replay).
fn close_leftovers(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.to_str().is_some_and(|p| p.ends_with(OPEN_SUFFIX)) {
            fs::rename(&path, closed_name(&path))?;
        }
    }
    Ok(())
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// The closed spill files of a directory, oldest first.
pub fn closed_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.to_str().is_some_and(|s| s.ends_with(CLOSED_SUFFIX)))
            .map(|p| (fs::metadata(&p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), p))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Closes every file a stopped server left open in `dir`, so replay can take them.
pub fn close_all(dir: &Path) -> io::Result<()> {
    match close_leftovers(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn lines_files_and_replay_order() {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("sink");
        let mut w = SpillWriter::new(spill.clone());
        w.write_line(b"{\"a\":1}").unwrap();
        w.sync().unwrap();
        assert!(closed_files(&spill).unwrap().is_empty(), "an open file is not replayed");
        w.close().unwrap();
        w.write_line(b"{\"b\":2}").unwrap();
        drop(w);
        let files = closed_files(&spill).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(fs::read_to_string(&files[0]).unwrap(), "{\"a\":1}\n");
        assert_eq!(fs::metadata(&files[0]).unwrap().mode() & 0o777, 0o640);
        let mut again = SpillWriter::new(spill.clone());
        assert_eq!(again.total_bytes(), 16);
        again.write_record(b"{\"context\":{},\n\"events\":[]}").unwrap();
        drop(again);
        let text = fs::read_to_string(closed_files(&spill).unwrap().last().unwrap()).unwrap();
        assert_eq!(text, "{\"record\":{\"context\":{}, \"events\":[]}}\n");
        assert_eq!(record_of(text.trim_end()), Some("{\"context\":{}, \"events\":[]}"));
        assert_eq!(record_of("{\"a\":1}"), None);
    }

    #[test]
    fn files_left_open_by_a_crash_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(format!("spill-x{OPEN_SUFFIX}")), "{}\n").unwrap();
        close_all(dir.path()).unwrap();
        assert_eq!(closed_files(dir.path()).unwrap().len(), 1);
        close_all(&dir.path().join("missing")).unwrap();
    }
}
