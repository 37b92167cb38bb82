//! The research tracking log: legacy lines, size and time rotation, mode 0640, and
//! exactly-once lines across crashes (the checkpoint records the file length that
//! goes with each log position; a restart truncates back to it and replays).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use event_model::config::Chain;
use event_model::processor::Rejection;
use event_model::{legacy, Event};
use serde::{Deserialize, Serialize};

use super::{SinkContext, SinkError};

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
    50_000
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
        Options { path: default_path(), max_bytes: default_max_bytes(), rotate_secs: default_rotate_secs(), max_line_chars: default_max_line_chars() }
    }
}

/// The line the sink writes for an event, or why it writes none.
pub fn render(event: Event, chain: &Chain, max_line_chars: usize) -> Result<String, Rejection> {
    let event = chain.process(event)?;
    let line = legacy::to_line(&event);
    if line.len() > max_line_chars {
        return Err(Rejection::new("line_too_long", format!("line is {} characters, over the limit of {max_line_chars}", line.len())));
    }
    Ok(line)
}

/// What is durable: every log record before `seq` is in the file, which is
/// `file_len` bytes long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    seq: u64,
    file_len: u64,
    /// When the live file was started (seconds since the epoch), for time rotation.
    opened_at: u64,
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

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.len += line.len() as u64 + 1;
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
    context: SinkContext,
    checkpoint: Checkpoint,
}

impl TrackingLogSink {
    /// Loads the sink's checkpoint (a new sink starts at the oldest record in the log).
    pub fn open(name: String, options: Options, chain: Chain, context: SinkContext) -> Result<Self, SinkError> {
        let stored: Option<Checkpoint> = context.load_checkpoint(&name)?;
        let mut checkpoint = stored.unwrap_or_else(|| {
            // A new sink appends to whatever file is already there.
            let len = std::fs::metadata(&options.path).map(|m| m.len()).unwrap_or(0);
            Checkpoint { seq: 0, file_len: len, opened_at: unix_now() }
        });
        checkpoint.seq = context.resume_at(&name, stored.map(|c| c.seq));
        Ok(TrackingLogSink { name, options, chain, context, checkpoint })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Consumes the log until asked to stop and caught up. I/O failures (a full
    /// disk) are retried from the last checkpoint: nothing is skipped.
    pub fn run(mut self) {
        loop {
            match self.run_until_error() {
                Ok(()) => return,
                Err(error) => {
                    tracing::error!(sink = %self.name, %error, "tracking log write failed; retrying from the last checkpoint");
                    self.context.metrics.sink_errors.with_label_values(&[&self.name]).inc();
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    fn run_until_error(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let mut file = LiveFile::open(&self.options.path, self.checkpoint.file_len)?;
        self.checkpoint.file_len = file.len;
        let mut reader = self.context.wal.reader(self.checkpoint.seq)?;
        let metrics = self.context.metrics.clone();
        let delivered = metrics.sink_delivered.with_label_values(&[&self.name]);
        let lag = metrics.sink_lag.with_label_values(&[&self.name]);
        loop {
            let stopping = self.context.stop.load(Ordering::SeqCst);
            if stopping && reader.next_seq() >= self.context.wal.committed_seq() {
                file.sync()?;
                return Ok(());
            }
            let batch = reader.read_batch_blocking(2048, Duration::from_millis(100))?;
            let Some(&(last_seq, _)) = batch.last() else {
                self.rotate_if_due(&mut file)?;
                continue;
            };
            let mut written = 0;
            for (seq, record) in &batch {
                match serde_json::from_slice::<event_model::Map<String, event_model::Value>>(record) {
                    Ok(map) => match render(Event::from_stored(map), &self.chain, self.options.max_line_chars) {
                        Ok(line) => {
                            let max = self.options.max_bytes;
                            if max > 0 && file.len > 0 && file.len + line.len() as u64 + 1 > max {
                                // Every record before `seq` is in the file being rotated.
                                self.rotate(&mut file, *seq)?;
                            }
                            file.write_line(&line)?;
                            written += 1;
                        }
                        Err(why) if why.reason == "line_too_long" => {
                            tracing::warn!(sink = %self.name, reason = why.reason, "{}", why.detail);
                            metrics.sink_rejected.with_label_values(&[&self.name, why.reason]).inc();
                        }
                        // Routing drops are counted by the routing counters.
                        Err(_) => {}
                    },
                    Err(error) => {
                        tracing::error!(sink = %self.name, %error, "unreadable record in the log");
                        metrics.sink_rejected.with_label_values(&[&self.name, "unreadable_record"]).inc();
                    }
                }
            }
            file.sync()?;
            self.save(last_seq + 1, file.len)?;
            delivered.inc_by(written);
            lag.set(self.context.wal.committed_seq().saturating_sub(last_seq + 1) as i64);
            self.rotate_if_due(&mut file)?;
        }
    }

    fn save(&mut self, seq: u64, file_len: u64) -> Result<(), Box<dyn std::error::Error>> {
        self.checkpoint.seq = seq;
        self.checkpoint.file_len = file_len;
        self.context.save_checkpoint(&self.name, &self.checkpoint)?;
        self.context.passed(&self.name, seq);
        Ok(())
    }

    /// Rotates by age, when the live file is old enough and not empty (size is
    /// checked before each line).
    fn rotate_if_due(&mut self, file: &mut LiveFile) -> Result<(), Box<dyn std::error::Error>> {
        let age = unix_now().saturating_sub(self.checkpoint.opened_at);
        if self.options.rotate_secs > 0 && file.len > 0 && age >= self.options.rotate_secs {
            let seq = self.checkpoint.seq;
            self.rotate(file, seq)?;
        }
        Ok(())
    }

    /// Closes the live file at log position `seq` (every record before it is in the
    /// file), moves it aside with a time suffix, and starts a new one. A crash at any
    /// step resumes without loss or duplicates: the checkpoint before the rename
    /// names the full file, the one after names the empty new file.
    fn rotate(&mut self, file: &mut LiveFile, seq: u64) -> Result<(), Box<dyn std::error::Error>> {
        file.sync()?;
        self.save(seq, file.len)?;
        let rotated = rotated_name(&self.options.path);
        std::fs::rename(&self.options.path, &rotated)?;
        if let Some(dir) = self.options.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        tracing::info!(sink = %self.name, to = %rotated.display(), "rotated the tracking log");
        *file = LiveFile::open(&self.options.path, 0)?;
        self.checkpoint.opened_at = unix_now();
        self.save(seq, 0)?;
        Ok(())
    }
}

/// `tracking.log-20261122-100102`, with `.N` added if that name is taken.
fn rotated_name(path: &Path) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let base = format!("{}-{stamp}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}
