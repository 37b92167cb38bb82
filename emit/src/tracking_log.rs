//! The in-process backend: tracking-log lines, as the Python LMS writes them, appended
//! to a file by the service itself.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

use event_model::processors::LegacyFieldMapping;
use event_model::routing::{Backend, BackendError, Router};
use event_model::{legacy, Event};

pub use event_model::legacy::MAX_LINE_CHARS;

/// Appends one tracking-log line per event to a file (created with mode 0640). Each
/// line is one `write` to a file opened for appending, as Python's `FileHandler`
/// flushes each record: a crash of the service loses no line it returned `Ok` for.
pub struct TrackingLogFile {
    out: Mutex<(File, String)>,
}

impl TrackingLogFile {
    pub fn open(path: &Path) -> io::Result<TrackingLogFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).mode(0o640).open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        Ok(TrackingLogFile { out: Mutex::new((file, String::with_capacity(1024))) })
    }
}

impl Backend for TrackingLogFile {
    /// Writes the event as it is; [`in_process`] maps it to the legacy shape first.
    fn send(&self, event: &Event) -> Result<(), BackendError> {
        let mut guard = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let (file, line) = &mut *guard;
        line.clear();
        legacy::write_line_within(event, MAX_LINE_CHARS, line)
            .map_err(|len| BackendError(format!("line is {len} characters, over the limit of {MAX_LINE_CHARS}")))?;
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(|e| BackendError(format!("writing the tracking log: {e}")))
    }
}

/// What the LMS's default routing does with a server event: the legacy field mapping,
/// then a line in `path`.
pub fn in_process(path: &Path) -> io::Result<Router> {
    Ok(Router::builder().processor(LegacyFieldMapping).backend("tracking_log", TrackingLogFile::open(path)?).build())
}

/// [`in_process`] as a tracker backend.
pub fn in_process_backend(path: &Path) -> io::Result<Arc<dyn Backend>> {
    Ok(Arc::new(in_process(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_model::{json, Tracker};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn lines_as_the_lms_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/tracking.log");
        let tracker = Tracker::new(in_process_backend(&path).unwrap());
        let _request = tracker
            .context(
                "edx.request",
                json!({"user_id": 5, "username": "learner", "ip": "10.1.2.3", "agent": "svc", "host": "h", "path": "/p"}),
            )
            .unwrap();
        tracker.emit("edx.course.enrollment.activated", json!({"mode": "audit", "name": "é"})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["event_type"], "edx.course.enrollment.activated");
        assert_eq!(line["username"], "learner");
        assert_eq!(line["context"]["user_id"], 5);
        assert_eq!(line["event"]["mode"], "audit");
        assert!(text.contains(r#""name": "\u00e9""#), "Python's separators and ensure_ascii: {text}");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o640);

        // An over-long line is refused by the file (the router counts and logs it, as
        // the LMS's logger backend drops it) and nothing of it is written.
        let huge = tracker.emit("edx.big", json!({ "value": "x".repeat(MAX_LINE_CHARS) })).unwrap();
        assert!(TrackingLogFile::open(&path).unwrap().send(&huge).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }
}
