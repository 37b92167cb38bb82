//! The research tracking log: legacy lines, size and time rotation, mode 0640, and
//! exactly-once lines across crashes (the checkpoint records the file length that
//! goes with each log position; a restart cuts the file back to it and writes the
//! rest again). Lines are transcoded from the stored JSON text in Python's format,
//! one record (a request's events) at a time; the file rotates between records.
//! A `path` that is not a regular file (`/dev/stdout`, a FIFO) is written as a stream:
//! no rotation, no cutting back, and after a crash the lines since the last checkpoint
//! are written again (at least once; each line carries its event id).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use event_model::config::Chain;
use event_model::processor::Rejection;
use event_model::{legacy, Event};
use serde::{Deserialize, Serialize};

use super::driver::{Checkpointer, Failure, Records, Sink};
use crate::metrics::Metrics;
use crate::record::RecordError;

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
    #[serde(default = "default_checkpoint_ms")]
    checkpoint_ms: u64,
    #[serde(default = "default_linger_ms")]
    linger_ms: u64,
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
fn default_checkpoint_ms() -> u64 {
    200
}
fn default_linger_ms() -> u64 {
    5
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
    /// How often, while delivering, the file is synced and the position saved (0:
    /// after every delivery). A crash in between costs nothing: the restart cuts the
    /// file back to the checkpoint and writes those lines again from the log.
    pub checkpoint_interval: Duration,
    /// How long a delivery waits for more lines once the sink has caught up (0: none).
    /// Lines then go out in one write per wait, not one per request.
    pub linger: Duration,
}

impl Options {
    /// Reads the sink's table; a relative `path` is under `data_dir`.
    pub fn from_table(table: &toml::Table, data_dir: &Path) -> Result<Self, String> {
        let raw = RawOptions::deserialize(toml::Value::Table(table.clone())).map_err(|e| e.to_string())?;
        let path = if raw.path.is_absolute() { raw.path } else { data_dir.join(raw.path) };
        Ok(Options {
            path,
            max_bytes: raw.max_bytes,
            rotate_secs: raw.rotate_secs,
            max_line_chars: raw.max_line_chars,
            checkpoint_interval: Duration::from_millis(raw.checkpoint_ms),
            linger: Duration::from_millis(raw.linger_ms),
        })
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            path: default_path(),
            max_bytes: default_max_bytes(),
            rotate_secs: default_rotate_secs(),
            max_line_chars: default_max_line_chars(),
            checkpoint_interval: Duration::from_millis(default_checkpoint_ms()),
            linger: Duration::from_millis(default_linger_ms()),
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
    legacy::write_line_within(&event, max_line_chars, out).map_err(|len| too_long(len, max_line_chars))
}

/// What [`render_record`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Lines appended.
    pub lines: u64,
    /// Lines left out for their length.
    pub too_long: u64,
}

/// Appends the lines of a log record's events (each ending in a newline); events the
/// chain drops have none (the routing counters count them). When every processor of
/// the chain runs on stored text (the default routing's do), the lines are written
/// from the record's text read in place; otherwise each event is built and processed.
pub fn render_record(record: &[u8], chain: &Chain, max_line_chars: usize, out: &mut String) -> Result<Rendered, RecordError> {
    if chain.runs_on_views() {
        render_views(record, chain, max_line_chars, out)
    } else {
        render_events(record, chain, max_line_chars, out)
    }
}

/// [`render_record`] from the record's text read in place; every processor of `chain`
/// must run on views.
pub fn render_views(record: &[u8], chain: &Chain, max_line_chars: usize, out: &mut String) -> Result<Rendered, RecordError> {
    let mut rendered = Rendered::default();
    for mut view in crate::record::views(record)? {
        let result = chain
            .process_view(&mut view)
            .and_then(|()| legacy::write_view_line_within(&view, max_line_chars, out).map_err(|len| too_long(len, max_line_chars)));
        rendered.tally(result, out);
    }
    Ok(rendered)
}

/// [`render_record`] through events built from the record, for any chain.
pub fn render_events(record: &[u8], chain: &Chain, max_line_chars: usize, out: &mut String) -> Result<Rendered, RecordError> {
    let mut rendered = Rendered::default();
    for event in crate::record::decode(record)? {
        let result = render_into(event, chain, max_line_chars, out);
        rendered.tally(result, out);
    }
    Ok(rendered)
}

impl Rendered {
    fn tally(&mut self, result: Result<(), Rejection>, out: &mut String) {
        match result {
            Ok(()) => {
                out.push('\n');
                self.lines += 1;
            }
            Err(why) if why.reason == LINE_TOO_LONG => self.too_long += 1,
            Err(_) => {}
        }
    }
}

const LINE_TOO_LONG: &str = "line_too_long";

fn too_long(len: usize, max_line_chars: usize) -> Rejection {
    Rejection::new(LINE_TOO_LONG, format!("line is {len} characters, over the limit of {max_line_chars}"))
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
    /// Where the writeback started by [`LiveFile::flush`] has reached.
    written_back: u64,
    /// Not a regular file (a pipe, a terminal): appended to, never cut, synced or rotated.
    stream: bool,
}

/// How much of the file may wait in the page cache before its writeback is started.
/// A checkpoint's sync then has little left to write: one of several megabytes made
/// the write-ahead log's commits on the same disk wait tens of milliseconds behind it.
const WRITEBACK_BYTES: u64 = 1 << 20;

impl LiveFile {
    /// Opens (creating with mode 0640) and cuts the file back to `len` if a crash
    /// left lines after the last checkpoint.
    fn open(path: &Path, len: u64) -> io::Result<LiveFile> {
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            let out = BufWriter::with_capacity(1 << 16, open_stream(path)?);
            return Ok(LiveFile { out, len, written_back: len, stream: true });
        }
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
        Ok(LiveFile { out, len, written_back: len, stream: false })
    }

    fn write(&mut self, lines: &str) -> io::Result<()> {
        self.out.write_all(lines.as_bytes())?;
        self.len += lines.len() as u64;
        Ok(())
    }

    /// Hands the buffered lines to the system: a crash of this process keeps them.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if !self.stream && self.len - self.written_back >= WRITEBACK_BYTES {
            // Linux starts writing the range back without waiting for it (and drops
            // what of it is already clean; dirty pages stay cached for readers). Advice
            // only: where it is refused (not a regular file) the lines are written all
            // the same.
            let range = std::num::NonZeroU64::new(self.len - self.written_back);
            let _ = rustix::fs::fadvise(self.out.get_ref(), self.written_back, range, rustix::fs::Advice::DontNeed);
            self.written_back = self.len;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.stream {
            // A pipe or terminal has nothing to sync (fsync fails with EINVAL).
            return Ok(());
        }
        self.out.get_ref().sync_data()
    }

    /// Whether the file may be rotated: a regular file with lines in it.
    fn rotatable(&self) -> bool {
        !self.stream && self.len > 0
    }
}

/// Opens a stream for appending. `/dev/stdout` and `/dev/stderr` are the process's own
/// descriptors, also when they are sockets (a service manager's journal), which
/// cannot be opened by name.
fn open_stream(path: &Path) -> io::Result<File> {
    let own = match path.to_str() {
        Some("/dev/stdout" | "/proc/self/fd/1") => Some(rustix::io::dup(io::stdout())),
        Some("/dev/stderr" | "/proc/self/fd/2") => Some(rustix::io::dup(io::stderr())),
        _ => None,
    };
    match own {
        Some(fd) => Ok(File::from(fd?)),
        None => OpenOptions::new().append(true).open(path),
    }
}

fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The tracking-log sink.
pub struct TrackingLogSink {
    name: String,
    options: Options,
    chain: Chain,
    metrics: Arc<Metrics>,
    file: Option<LiveFile>,
    /// When the live file was started, in milliseconds since the epoch: whole seconds
    /// would rotate a file started at 10.9 s when it is a tenth of a second old.
    opened_at_ms: u64,
    /// The lines of the record being written.
    lines: String,
}

impl TrackingLogSink {
    pub fn new(name: String, options: Options, chain: Chain, metrics: Arc<Metrics>) -> Self {
        TrackingLogSink { name, options, chain, metrics, file: None, opened_at_ms: unix_now_ms(), lines: String::with_capacity(1 << 16) }
    }

    fn file(&mut self) -> Result<&mut LiveFile, Failure> {
        self.file.as_mut().ok_or_else(|| Failure::unavailable("the tracking log is not open"))
    }

    /// Closes the live file at log position `seq` (every record before it is in the
    /// file), moves it aside with a time suffix, and starts a new one. A crash at any
    /// step resumes without loss or duplicates: the checkpoint before the rename
    /// names the full file, the one after names the empty new file.
    fn rotate(&mut self, seq: u64, checkpoint: &mut Checkpointer<'_, LogState>) -> Result<(), Failure> {
        self.file()?.sync()?;
        checkpoint.save(seq, self.state())?;
        let rotated = rotated_name(&self.options.path);
        std::fs::rename(&self.options.path, &rotated)?;
        if let Some(dir) = self.options.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        tracing::info!(sink = %self.name, to = %rotated.display(), "rotated the tracking log");
        self.file = Some(LiveFile::open(&self.options.path, 0)?);
        self.opened_at_ms = unix_now_ms();
        checkpoint.save(seq, self.state())?;
        Ok(())
    }
}

impl Sink for TrackingLogSink {
    type State = LogState;

    fn batching(&self) -> (usize, Duration) {
        (2048, self.options.linger)
    }

    fn resume(&mut self, state: Option<LogState>) -> Result<(), Failure> {
        let file_len = match state {
            Some(state) => {
                self.opened_at_ms = state.opened_at * 1000;
                state.file_len
            }
            // A new sink appends to whatever file is already there, from now.
            None => std::fs::metadata(&self.options.path).map(|m| m.len()).unwrap_or(0),
        };
        self.file = Some(LiveFile::open(&self.options.path, file_len)?);
        Ok(())
    }

    fn deliver(&mut self, records: &Records, checkpoint: &mut Checkpointer<'_, LogState>) -> Result<u64, Failure> {
        let metrics = self.metrics.clone();
        let mut written = 0;
        for (seq, record) in records {
            let mut lines = std::mem::take(&mut self.lines);
            lines.clear();
            match render_record(record, &self.chain, self.options.max_line_chars, &mut lines) {
                Ok(rendered) => {
                    written += rendered.lines;
                    if rendered.too_long > 0 {
                        tracing::warn!(sink = %self.name, reason = LINE_TOO_LONG, lines = rendered.too_long, "lines over {} characters left out", self.options.max_line_chars);
                        metrics.sink_rejected.with_label_values(&[&self.name, LINE_TOO_LONG]).inc_by(rendered.too_long);
                    }
                }
                Err(error) => {
                    super::count_unreadable(&self.metrics, &self.name, *seq, &error);
                    self.lines = lines;
                    continue;
                }
            }
            let max = self.options.max_bytes;
            let file = self.file()?;
            if max > 0 && file.rotatable() && file.len + lines.len() as u64 > max {
                // Every record before this one is in the file being rotated.
                self.rotate(*seq, checkpoint)?;
            }
            let result = self.file()?.write(&lines);
            self.lines = lines;
            result?;
        }
        self.file()?.flush()?;
        Ok(written)
    }

    fn commit(&mut self) -> Result<(), Failure> {
        Ok(self.file()?.sync()?)
    }

    fn checkpoint_interval(&self) -> Duration {
        self.options.checkpoint_interval
    }

    fn state(&self) -> LogState {
        LogState { file_len: self.file.as_ref().map_or(0, |f| f.len), opened_at: self.opened_at_ms / 1000 }
    }

    /// Rotates by age, when the live file is old enough and not empty (size is
    /// checked before each record).
    fn tick(&mut self, checkpoint: &mut Checkpointer<'_, LogState>) -> Result<(), Failure> {
        let age_ms = unix_now_ms().saturating_sub(self.opened_at_ms);
        if self.options.rotate_secs > 0 && self.file()?.rotatable() && age_ms >= self.options.rotate_secs * 1000 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordBuilder;
    use event_model::config::RoutingConfig;
    use event_model::routing::Counters;

    /// Chains that run on views, from the routing configurations users write.
    const VIEW_CHAINS: [&str; 5] = [
        crate::config::DEFAULT_ROUTING,
        r#"[backends.t]
processors = [{ type = "internal_events", mode = "exclude" }, { type = "legacy_field_mapping" }]
[backends.t.backends.logger]
type = "tracking_log""#,
        r#"[backends.t]
processors = [{ type = "legacy_field_mapping" }, { type = "internal_events", mode = "only" }]
[backends.t.backends.logger]
type = "tracking_log""#,
        r#"[backends.t]
processors = [{ type = "event_types", keep = ["track", "page"] }]
[backends.t.backends.logger]
type = "tracking_log""#,
        r#"[backends.t.backends.logger]
type = "tracking_log""#,
    ];

    /// Shared contexts and events as records hold them, the odd ones included:
    /// repeated keys, escaped keys, a context that is not an object, no context,
    /// members the mapping sets already there, a browser event with quotes and
    /// backslashes in its data, other API types, internal names.
    fn records() -> Vec<Vec<u8>> {
        let contexts = [
            r#"{"session":"s","user_id":7,"username":"ada","ip":"203.0.113.7","host":"lms","agent":"A \"b\"","path":"/v1/batch","referer":"","accept_language":"fr","client_id":null,"course_id":"","org_id":""}"#,
            r#"{}"#,
            r#"{"username":"\u00e9l\u00e8ve","username":"second","user\u005fid":5,"event_source":"server"}"#,
        ];
        let events = [
            r#"{"name":"edx.ui.x","timestamp":"2026-11-22T10:01:02.123Z","data":{"a":"q\"uote","b":"back\\slash","c":[1,2.50,-0,1E5]},"context":{"course_id":"course-v1:a+b+c","event_source":"browser","page":"https://lms/p"},"id":"019a0000-0000-7000-8000-000000000001"}"#,
            r#"{"name":"edx.bi.internal","timestamp":"t","data":{"k":{"r":1,"r":2}},"context":{"event_source":"browser"}}"#,
            r#"{"type":"track","name":"Clicked","data":{"x":1},"context":{"page":null}}"#,
            r#"{"type":"page","name":"edx.ui.page","data":"text","context":"not an object"}"#,
            r#"{"name":"a","name":"b","data":5,"event":"kept","host":"h0","time":"old","id":"x"}"#,
            r#"{"n\u0061me":"escaped.key","data":{"\u00e9":"\ud83d\ude00","lone":"\ud83d"},"context":{"username":"own","extra":{"deep":[{}]}}}"#,
            r#"{"name":"no.context","timestamp":"2026-11-22T10:01:02Z"}"#,
            r#"{"data":{"k":1},"context":{"event_source":"browser","timestamp":"ctx time","event_type":"from.context","client_id":"c"}}"#,
            r#"{}"#,
        ];
        let mut out = Vec::new();
        for context in contexts {
            for (i, _) in events.iter().enumerate() {
                let mut record = RecordBuilder::new(context, 1024);
                for event in events.iter().cycle().skip(i).take(events.len()) {
                    record.push(event);
                }
                out.push(record.finish());
            }
        }
        // Records of earlier versions: one event in the modern shape.
        out.push(br#"{"name":"old.shape","data":{"v":1},"context":{"username":"u","event_source":"browser"},"id":"i"}"#.to_vec());
        out.push(br#"{"name":"old.shape","context":"odd"}"#.to_vec());
        out.push(br#"{"context":{"username":"u"},"events":[1,"x",{"name":"after.odd.items"}]}"#.to_vec());
        out
    }

    fn chain_of(routing: &str) -> (Chain, Arc<Counters>) {
        let counters = Counters::new();
        let routing = RoutingConfig::from_toml(routing).unwrap();
        let chain = routing.pipelines(&counters).unwrap().into_iter().next().unwrap().chain;
        (chain, counters)
    }

    #[test]
    fn lines_written_from_records_read_in_place_are_those_of_built_events() {
        let records = records();
        for routing in VIEW_CHAINS {
            let (chain, view_counters) = chain_of(routing);
            let (same_chain, event_counters) = chain_of(routing);
            assert!(chain.runs_on_views(), "{routing}");
            let mut lines = 0;
            for record in &records {
                for max in [MAX_LINE, 400] {
                    let (mut from_views, mut from_events) = (String::new(), String::new());
                    let a = render_views(record, &chain, max, &mut from_views).unwrap();
                    let b = render_events(record, &same_chain, max, &mut from_events).unwrap();
                    assert_eq!(from_views, from_events, "{routing}\n{}", String::from_utf8_lossy(record));
                    assert_eq!(a, b);
                    lines += a.lines;
                }
            }
            assert!(lines > 0, "{routing}");
            assert_eq!(view_counters.snapshot(), event_counters.snapshot(), "drops are counted the same way");
        }
    }

    const MAX_LINE: usize = legacy::MAX_LINE_CHARS;

    #[test]
    fn a_chain_with_a_processor_that_needs_the_event_is_rendered_from_built_events() {
        let (chain, _) = chain_of(
            r#"[backends.t]
processors = [{ type = "scrubber" }, { type = "legacy_field_mapping" }]
[backends.t.backends.logger]
type = "tracking_log""#,
        );
        assert!(!chain.runs_on_views());
        let mut record = RecordBuilder::new("{}", 64);
        record.push(r#"{"name":"a","data":{"password":"hunter2"},"context":{}}"#);
        let mut out = String::new();
        let rendered = render_record(&record.finish(), &chain, MAX_LINE, &mut out).unwrap();
        assert_eq!(rendered.lines, 1);
        assert!(!out.contains("hunter2"), "the scrubber ran: {out}");
    }

    #[test]
    fn unreadable_records_are_errors_on_both_paths() {
        let (chain, _) = chain_of(crate::config::DEFAULT_ROUTING);
        for bad in [&b"\xff"[..], b"{", b"{\"other\":1}", b"{\"events\":[]} x"] {
            let mut out = String::new();
            assert!(render_views(bad, &chain, MAX_LINE, &mut out).is_err());
            assert!(render_events(bad, &chain, MAX_LINE, &mut out).is_err());
            assert!(out.is_empty());
        }
    }
}
