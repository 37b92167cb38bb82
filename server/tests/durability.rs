//! Crashes, shutdowns and rotation: every acknowledged event is in the tracking log
//! exactly once.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Posts batches of 20 from `threads` clients until `stop`; records acknowledged ids.
fn load(url: String, threads: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|t| {
            let (url, stop, acked) = (url.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let ids: Vec<String> = (0..20).map(|_| uuid::Uuid::now_v7().to_string()).collect();
                    let events: Vec<_> =
                        ids.iter().map(|id| json!({"id": id, "name": "edx.test.load.sent", "data": {"thread": t, "n": n}})).collect();
                    n += 1;
                    let result = agent.post(&format!("{url}/v1/batch")).send_string(&json!({ "events": events }).to_string());
                    if let Ok(response) = result {
                        let reply: serde_json::Value = response.into_json().unwrap();
                        let mut acked = acked.lock().unwrap();
                        for r in reply["results"].as_array().unwrap() {
                            if r["status"] == "accepted" {
                                acked.push(r["id"].as_str().unwrap().to_owned());
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

fn ids_in(lines: &[String]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for line in lines {
        let id = parse(line)["id"].as_str().unwrap().to_owned();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

#[test]
fn sigkill_under_load_then_restart_keeps_every_acknowledged_event_once() {
    sigkill_under_load_keeps_every_event_once("");
}

/// Segments of 64 KiB: under load the log rotates, and writes over consumed segments,
/// many times a second while it is killed.
#[test]
fn sigkill_while_the_log_writes_over_consumed_segments_keeps_every_event_once() {
    sigkill_under_load_keeps_every_event_once("[wal]\nsegment_bytes = 65536");
}

fn sigkill_under_load_keeps_every_event_once(config: &str) {
    let mut server = Server::start(config);
    let acked = Arc::new(Mutex::new(Vec::new()));
    for round in 0..2 {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = load(server.url.clone(), 4, stop.clone(), acked.clone());
        std::thread::sleep(Duration::from_millis(1500));
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        assert!(acked.lock().unwrap().len() > 100 * (round + 1), "the load generator made too little load");
        server.restart();
    }
    let acked = acked.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let seen = ids_in(&server.lines());
        if acked.iter().all(|id| seen.contains_key(id)) || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let missing = acked.iter().filter(|id| !seen.contains_key(*id)).count();
    assert_eq!(missing, 0, "{missing} of {} acknowledged events are not in the tracking log", acked.len());
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "lines written twice: {doubled:?}");
    // Every line is whole JSON (no torn line from the crash), the last one too.
    for line in server.lines() {
        parse(&line);
    }
    // A line being written ends within moments; a torn one never does.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read(server.log_path()).unwrap().ends_with(b"\n") {
        assert!(Instant::now() < deadline, "the tracking log ends inside a line");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_drains_everything_acknowledged() {
    let mut server = Server::start("");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(server.url.clone(), 3, stop.clone(), acked.clone());
    std::thread::sleep(Duration::from_millis(800));
    let status = server.terminate();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert!(status.success(), "exit status {status:?}");
    // Read right after exit: no restart, nothing left to catch up.
    let seen = ids_in(&server.lines());
    let acked = acked.lock().unwrap();
    assert!(!acked.is_empty());
    assert!(acked.iter().all(|id| seen.get(id) == Some(&1)), "after SIGTERM the log holds every acknowledged event once");
}

#[test]
fn rotation_by_size_keeps_mode_0640_and_every_line() {
    let server = Server::start(
        "[routing.backends.tracking_logs]\nprocessors = [{ type = \"legacy_field_mapping\" }]\n[routing.backends.tracking_logs.backends.logger]\ntype = \"tracking_log\"\npath = \"tracking.log\"\nmax_bytes = 4000",
    );
    for batch in 0..10 {
        let events: Vec<_> = (0..5).map(|n| json!({"name": "edx.test.rotate.sent", "data": {"batch": batch, "n": n}})).collect();
        assert_eq!(server.batch(&json!({ "events": events })).0, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut total;
    let mut files;
    loop {
        files = server.log_files();
        total = files.iter().map(|f| read_lines(f).len()).sum::<usize>();
        if total >= 50 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(total, 50);
    assert!(files.len() >= 3, "rotated into {} files", files.len());
    for file in &files {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", file.display());
        assert!(std::fs::metadata(file).unwrap().len() <= 4000 + 400);
    }
}

#[test]
fn convert_writes_what_the_sink_writes() {
    let server = Server::start("");
    // An internal `edx.bi.` event among them: written by the sink and by convert, as by the LMS.
    let name = |n| if n == 2 { "edx.bi.course.upgrade.clicked" } else { "edx.test.convert.sent" };
    let events: Vec<_> =
        (0..5).map(|n| json!({"name": name(n), "data": {"n": n, "text": "é😀"}, "page": "/courses/course-v1:A+B+C/x"})).collect();
    server.batch(&json!({ "events": events }));
    let lines = server.wait_for_lines(5);
    // The modern events the server stored, read back from its log records.
    let modern: Vec<String> = lines
        .iter()
        .map(|line| {
            let l = parse(line);
            let mut context = l["context"].as_object().unwrap().clone();
            for key in ["username", "session", "ip", "agent", "host", "referer", "accept_language", "event_source", "page"] {
                context.insert(key.into(), l[key].clone());
            }
            let data: serde_json::Value = serde_json::from_str(l["event"].as_str().unwrap()).unwrap();
            json!({"name": l["name"], "timestamp": l["time"], "data": data, "context": context, "id": l["id"]}).to_string()
        })
        .collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tracking-server"))
        .args(["convert", "--to", "legacy"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input =
        format!("{}\n{{\"name\": \"too.big.event\", \"data\": {{\"t\": \"{}\"}}}}\nnot json\n", modern.join("\n"), "x".repeat(60_000));
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let converted: Vec<String> = String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(converted, lines, "convert must write byte-identical lines");
    assert!(converted[2].contains("\"name\": \"edx.bi.course.upgrade.clicked\""), "{}", converted[2]);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("line 6: rejected: line_too_long"), "{stderr}");
    assert!(stderr.contains("line 7: rejected: invalid_json"), "{stderr}");
}

#[test]
fn rotation_by_age() {
    let server = Server::start(
        "[routing.backends.tracking_logs]\nprocessors = [{ type = \"legacy_field_mapping\" }]\n[routing.backends.tracking_logs.backends.logger]\ntype = \"tracking_log\"\npath = \"tracking.log\"\nrotate_secs = 1",
    );
    server.batch(&json!({"events": [{"name": "edx.test.rotate.first"}]}));
    server.wait_for_lines(1);
    // The live file turns one second old with a line in it: the idle sink moves it aside.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rotated = loop {
        let rotated: Vec<_> = server.log_files().into_iter().filter(|p| *p != server.log_path()).collect();
        if !rotated.is_empty() || Instant::now() > deadline {
            break rotated;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(rotated.len(), 1, "the first file was rotated by age");
    assert_eq!(read_lines(&rotated[0]).len(), 1);
    server.batch(&json!({"events": [{"name": "edx.test.rotate.second"}]}));
    // The new file takes the next line. It may itself be rotated by the time it is
    // read (it is a second old by then on a busy machine), so look in every file.
    let every_line = || -> Vec<String> { server.log_files().iter().flat_map(|f| read_lines(f)).collect() };
    let deadline = Instant::now() + Duration::from_secs(30);
    while every_line().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    let types: Vec<_> = every_line().iter().map(|l| parse(l)["event_type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(types.iter().filter(|t| *t == "edx.test.rotate.second").count(), 1, "{types:?}");
    assert_eq!(types.len(), 2, "{types:?}");
    assert!(!read_lines(&rotated[0]).iter().any(|l| l.contains("edx.test.rotate.second")), "the second line went to a new file");
    let mode = std::fs::metadata(server.log_path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

/// Reads lines from a FIFO, opening it again after each writer closes it.
fn fifo_lines(path: std::path::PathBuf) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || loop {
        let Ok(file) = std::fs::File::open(&path) else { return };
        for line in std::io::BufReader::new(file).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn receive(lines: &std::sync::mpsc::Receiver<String>, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => got.push(line),
            Err(_) => break,
        }
    }
    got
}

#[test]
fn a_path_that_is_not_a_regular_file_is_written_as_a_stream() {
    // `/dev/stdout` in a container, or a FIFO: it cannot be cut back, synced or rotated,
    // which used to fail the sink at open ("Illegal seek"), again at every restart.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("tracking.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let lines = fifo_lines(fifo.clone());
    let mut server = Server::start(&format!(
        "[routing.backends.tracking_logs]\nprocessors = [{{ type = \"legacy_field_mapping\" }}]\n[routing.backends.tracking_logs.backends.logger]\ntype = \"tracking_log\"\npath = \"{}\"\nmax_bytes = 2000\nrotate_secs = 1\ncheckpoint_ms = 0",
        fifo.display()
    ));
    let post = |server: &Server, batch: usize| {
        let events: Vec<_> = (0..10).map(|n| json!({"name": "edx.test.stream.sent", "data": {"batch": batch, "n": n}})).collect();
        assert_eq!(server.batch(&json!({ "events": events })).0, 200);
    };
    for batch in 0..3 {
        post(&server, batch);
    }
    let mut got = receive(&lines, 30);
    assert_eq!(got.len(), 30, "lines on the stream");
    // Over max_bytes and older than rotate_secs: still one stream, nothing moved aside.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(server.terminate().success());
    server.restart();
    post(&server, 3);
    got.extend(receive(&lines, 10));
    let ids = ids_in(&got);
    assert_eq!(ids.len(), 40, "every event once after a clean restart");
    assert!(ids.values().all(|n| *n == 1));
    assert!(got.iter().all(|l| parse(l)["event_type"] == "edx.test.stream.sent"));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["tracking.fifo"], "no rotated file");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

/// A sink that panics (the `fault-injection` feature's hook) is restarted from its
/// checkpoint: nothing is lost or written twice, and the restart is counted.
#[cfg(feature = "fault-injection")]
#[test]
fn a_sink_that_panics_is_restarted_from_its_checkpoint() {
    const SINK: &str = "root/tracking_logs/logger";
    let server = Server::start_with_env("", &[("TRACKING_FAULT_SINK_PANIC", &format!("{SINK}=5"))]);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(server.url.clone(), 2, stop.clone(), acked.clone());
    let restarted = |server: &Server| {
        let text = server.get("/metrics").call().unwrap().into_string().unwrap();
        text.lines().any(|l| l == format!("tracking_sink_restarts_total{{sink=\"{SINK}\"}} 1"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !restarted(&server) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert!(restarted(&server), "the panic was counted as a restart");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 200, "{} events", acked.len());
    let lines = server.wait_for_lines(acked.len());
    let seen = ids_in(&lines);
    assert!(acked.iter().all(|id| seen.get(id) == Some(&1)), "every acknowledged event once");
    assert_eq!(lines.len(), acked.len());
    let status = parse(&server.get("/status?format=json").call().unwrap().into_string().unwrap());
    let sink = &status["sinks"][0];
    assert_eq!((sink["state"].as_str(), sink["restarts"].as_u64()), (Some("ok"), Some(1)), "{sink}");
    assert!(sink["last_error"].as_str().unwrap().contains("injected fault"));
}
