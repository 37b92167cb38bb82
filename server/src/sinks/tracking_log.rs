//! The research tracking log: legacy lines, size and time rotation, mode 0640, and
//! exactly-once lines across crashes (the checkpoint records the file length that
//! goes with each log position; a restart cuts the file back to it and writes the
//! rest again). Lines are transcoded from the stored JSON text in Python's format,
//! one record (a request's events) at a time; the file rotates between records.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use event_model::config::Chain;
use event_model::processor::Rejection;
use event_model::{legacy, Event};
use serde::{Deserialize, Serialize};

use super::driver::{Checkpointer, Failure, Records, Sink};
use crate::metrics::Metrics;

/// Options of a `tracking_log` sink in the routing configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    #[serde(default = "default_path")]
    path: PathBuf,
    #[serde(default = "default_max_bytes")]
    max_bytes: u64,
    #[serde(default = "default_rotate_secs")]
    rotate_secs: u64,
    #[serde(default = "default_max_line_chars")]
    max_line_chars: usize,
}

fn default_path() -> PathBuf {
    "tracking.log".into()
}
fn default_max_bytes() -> u64 {
    100 << 20
}
fn default_rotate_secs() -> u64 {
    86_400
}
fn default_max_line_chars() -> usize {
    legacy::MAX_LINE_CHARS
}

/// Resolved options.
#[derive(Debug, Clone)]
pub struct Options {
    /// The live file; rotated files sit beside it with a time suffix.
    pub path: PathBuf,
    /// Rotate when the file reaches this size (0: never).
    pub max_bytes: u64,
    /// Rotate when the file is this old and not empty (0: never).
    pub rotate_secs: u64,
    /// Longer lines are rejected, as the Python writer drops them.
    pub max_line_chars: usize,
}

impl Options {
    /// Reads the sink's table; a relative `path` is under `data_dir`.
    pub fn from_table(table: &toml::Table, data_dir: &Path) -> Result<Self, String> {
        let raw = RawOptions::deserialize(toml::Value::Table(table.clone())).map_err(|e| e.to_string())?;
        let path = if raw.path.is_absolute() { raw.path } else { data_dir.join(raw.path) };
        Ok(Options { path, max_bytes: raw.max_bytes, rotate_secs: raw.rotate_secs, max_line_chars: raw.max_line_chars })
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            path: default_path(),
            max_bytes: default_max_bytes(),
            rotate_secs: default_rotate_secs(),
            max_line_chars: default_max_line_chars(),
        }
    }
}

/// The line the sink writes for an event, or why it writes none.
pub fn render(event: Event, chain: &Chain, max_line_chars: usize) -> Result<String, Rejection> {
    let mut line = String::with_capacity(1024);
    render_into(event, chain, max_line_chars, &mut line)?;
    Ok(line)
}

/// [`render`], appending to `out` (nothing is appended when there is no line).
pub fn render_into(event: Event, chain: &Chain, max_line_chars: usize, out: &mut String) -> Result<(), Rejection> {
    let event = chain.process(event)?;
    legacy::write_line_within(&event, max_line_chars, out)
        .map_err(|len| Rejection::new("line_too_long", format!("line is {len} characters, over the limit of {max_line_chars}")))
}

/// What the checkpoint holds beside the log position: every record before it is in
/// the live file, which is `file_len` bytes long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    pub file_len: u64,
    /// When the live file was started (seconds since the epoch), for time rotation.
    pub opened_at: u64,
}

/// The live file.
struct LiveFile {
    out: BufWriter<File>,
    len: u64,
}

impl LiveFile {
    /// Opens (creating with mode 0640) and cuts the file back to `len` if a crash
    /// left lines after the last checkpoint.
    fn open(path: &Path, len: u64) -> io::Result<LiveFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).mode(0o640).open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        let actual = file.metadata()?.len();
        let len = if actual > len {
            tracing::info!(path = %path.display(), cut = actual - len, "removing lines written after the last checkpoint; they are written again");
            file.set_len(len)?;
            len
        } else {
            actual
        };
        let mut out = BufWriter::with_capacity(1 << 16, file);
        io::Seek::seek(out.get_mut(), io::SeekFrom::Start(len))?;
        Ok(LiveFile { out, len })
    }

    fn write(&mut self, lines: &str) -> io::Result<()> {
        self.out.write_all(lines.as_bytes())?;
        self.len += lines.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The tracking-log sink.
pub struct TrackingLogSink {
    name: String,
    options: Options,
    chain: Chain,
    metrics: Arc<Metrics>,
    file: Option<LiveFile>,
    opened_at: u64,
    /// The lines of the record being written.
    lines: String,
}

impl TrackingLogSink {
    pub fn new(name: String, options: Options, chain: Chain, metrics: Arc<Metrics>) -> Self {
        TrackingLogSink { name, options, chain, metrics, file: None, opened_at: unix_now(), lines: String::with_capacity(1 << 16) }
    }

    fn file(&mut self) -> Result<&mut LiveFile, Failure> {
        self.file.as_mut().ok_or_else(|| Failure::unavailable("the tracking log is not open"))
    }

    /// Closes the live file at log position `seq` (every record before it is in the
    /// file), moves it aside with a time suffix, and starts a new one. A crash at any
    /// step resumes without loss or duplicates: the checkpoint before the rename
    /// names the full file, the one after names the empty new file.
    fn rotate(&mut self, seq: u64, checkpoint: &mut Checkpointer<'_, LogState>) -> Result<(), Failure> {
        let opened_at = self.opened_at;
        let file = self.file()?;
        file.sync()?;
        let len = file.len;
        checkpoint.save(seq, LogState { file_len: len, opened_at })?;
        let rotated = rotated_name(&self.options.path);
        std::fs::rename(&self.options.path, &rotated)?;
        if let Some(dir) = self.options.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        tracing::info!(sink = %self.name, to = %rotated.display(), "rotated the tracking log");
        self.file = Some(LiveFile::open(&self.options.path, 0)?);
        self.opened_at = unix_now();
        checkpoint.save(seq, LogState { file_len: 0, opened_at: self.opened_at })?;
        Ok(())
    }
}

impl Sink for TrackingLogSink {
    type State = LogState;

    fn resume(&mut self, state: Option<LogState>) -> Result<(), Failure> {
        // A new sink appends to whatever file is already there.
        let state = state.unwrap_or_else(|| LogState {
            file_len: std::fs::metadata(&self.options.path).map(|m| m.len()).unwrap_or(0),
            opened_at: unix_now(),
        });
        self.file = Some(LiveFile::open(&self.options.path, state.file_len)?);
        self.opened_at = state.opened_at;
        Ok(())
    }

    fn deliver(&mut self, records: &Records, checkpoint: &mut Checkpointer<'_, LogState>) -> Result<u64, Failure> {
        let metrics = self.metrics.clone();
        let mut written = 0;
        for (seq, record) in records {
            let Some(events) = super::events_of(&self.metrics, &self.name, *seq, record) else { continue };
            let mut lines = std::mem::take(&mut self.lines);
            lines.clear();
            for event in events {
                match render_into(event, &self.chain, self.options.max_line_chars, &mut lines) {
                    Ok(()) => {
                        lines.push('\n');
                        written += 1;
                    }
                    Err(why) if why.reason == "line_too_long" => {
                        tracing::warn!(sink = %self.name, reason = why.reason, "{}", why.detail);
                        metrics.sink_rejected.with_label_values(&[&self.name, why.reason]).inc();
                    }
                    // Routing drops are counted by the routing counters.
                    Err(_) => {}
                }
            }
            let max = self.options.max_bytes;
            let len = self.file()?.len;
            if max > 0 && len > 0 && len + lines.len() as u64 > max {
                // Every record before this one is in the file being rotated.
                self.rotate(*seq, checkpoint)?;
            }
            let result = self.file()?.write(&lines);
            self.lines = lines;
            result?;
        }
        self.file()?.sync()?;
        Ok(written)
    }

    fn state(&self) -> LogState {
        LogState { file_len: self.file.as_ref().map_or(0, |f| f.len), opened_at: self.opened_at }
    }

    /// Rotates by age, when the live file is old enough and not empty (size is
    /// checked before each record).
    fn tick(&mut self, checkpoint: &mut Checkpointer<'_, LogState>) -> Result<(), Failure> {
        let age = unix_now().saturating_sub(self.opened_at);
        if self.options.rotate_secs > 0 && self.file()?.len > 0 && age >= self.options.rotate_secs {
            let seq = checkpoint.seq();
            self.rotate(seq, checkpoint)?;
        }
        Ok(())
    }
}

/// `tracking.log-20261122-100102`, with `.N` added if that name is taken.
fn rotated_name(path: &Path) -> PathBuf {
    let base = format!("{}-{}", path.display(), super::file_stamp());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}
