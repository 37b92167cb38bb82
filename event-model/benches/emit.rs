//! Server-side emit: a tracker with two entered contexts → legacy mapping →
//! tracking-log lines into a buffered file, beside the floor of serializing the same
//! prebuilt line alone. Run with `make bench` or `cargo bench -p event-model --bench emit`.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use event_model::processors::LegacyFieldMapping;
use event_model::routing::{Backend, BackendError, Router};
use event_model::{json, legacy, Event, Tracker};

/// Writes each event as a tracking-log line into a buffered file.
struct LineFile(Mutex<(String, BufWriter<File>)>);

impl Backend for LineFile {
    fn send(&self, event: &Event) -> Result<(), BackendError> {
        let mut guard = self.0.lock().unwrap();
        let (line, out) = &mut *guard;
        line.clear();
        legacy::write_line(event, line);
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(|e| BackendError(e.to_string()))
    }
}

fn line_file(path: &std::path::Path) -> LineFile {
    LineFile(Mutex::new((String::with_capacity(1024), BufWriter::with_capacity(1 << 16, File::create(path).unwrap()))))
}

fn main() {
    let events: u32 = std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    let dir = std::env::temp_dir().join(format!("tracking-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let router = Router::builder().processor(LegacyFieldMapping).backend("log", line_file(&dir.join("emit.log"))).build();
    let tracker = Tracker::new(Arc::new(router));
    tracker
        .enter_context(
            "request",
            json!({
                "user_id": 42, "username": "ada", "session": "0123456789abcdef0123456789abcdef",
                "ip": "203.0.113.7", "agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0", "host": "lms.example.com",
                "referer": "https://lms.example.com/dashboard", "accept_language": "en-US,en;q=0.9", "path": "/api/enrollment/v1/",
            }),
        )
        .unwrap();
    tracker.enter_context("course", json!({"course_id": "course-v1:edX+DemoX+Demo_Course", "org_id": "edX"})).unwrap();
    let data = json!({"course_id": "course-v1:edX+DemoX+Demo_Course", "mode": "audit", "user_id": 42});

    let start = Instant::now();
    for _ in 0..events {
        black_box(tracker.emit("edx.course.enrollment.activated", data.clone()).unwrap());
    }
    let emit_secs = start.elapsed().as_secs_f64();

    // The floor: the same line, prebuilt, serialized into the same kind of file.
    let mut prebuilt = Event::new("edx.course.enrollment.activated", data.clone(), tracker.resolve_context().unwrap());
    LegacyFieldMapping::map(&mut prebuilt);
    let floor = line_file(&dir.join("floor.log"));
    let start = Instant::now();
    for _ in 0..events {
        floor.send(black_box(&prebuilt)).unwrap();
    }
    let floor_secs = start.elapsed().as_secs_f64();
    drop(tracker);
    std::fs::remove_dir_all(&dir).ok();

    let per = |secs: f64| secs * 1e9 / f64::from(events);
    println!("server-side emit, {events} events (two contexts, legacy mapping, buffered tracking-log file)");
    println!("  emit → line:        {:>10.0} events/s  {:>7.0} ns/event", f64::from(events) / emit_secs, per(emit_secs));
    println!("  serialize alone:    {:>10.0} events/s  {:>7.0} ns/event  (floor)", f64::from(events) / floor_secs, per(floor_secs));
    println!("  ratio emit / floor: {:.2}", emit_secs / floor_secs);
    println!("  reproduce: cargo bench -p event-model --bench emit   (BENCH_EVENTS=N to change the count)");
}
