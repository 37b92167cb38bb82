//! The Segment sink against a fake Segment API, with the real server binary: routing
//! by API type and allowlist, the message mapping, a minute-long outage, refusals and
//! oversized events in the dead-letter file, `kill -9` mid-delivery, the write key.

mod common;
#[path = "common/fake_segment.rs"]
mod fake_segment;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use fake_segment::{FakeSegment, Mode};
use serde_json::{json, Value};

const KEY: &str = "test-only-segment-write-key-7f3a9c";
const ALLOWED: &str = "edx.course.enrollment.activated";
const SINK: &str = "root/segment/segment";
const COURSE_PAGE: &str = "https://lms.example.com/courses/course-v1:edX+DemoX+Demo_Course/courseware/ch1/?x=1";

/// The default tracking-log branch plus a Segment branch, as the README shows it.
fn config(segment_url: &str, sink_options: &str) -> String {
    let default_routing = tracking_server::config::default_routing_section();
    format!(
        r#"
{default_routing}

[routing.backends.segment]
processors = [{{ type = "segment_filter", allowlist = ["{ALLOWED}"] }}, {{ type = "google_analytics" }}]
[routing.backends.segment.backends.segment]
type = "segment"
endpoint = "{segment_url}"
flush_ms = 200
max_backoff_ms = 2000
{sink_options}
"#
    )
}

fn start(fake: &FakeSegment, sink_options: &str) -> Server {
    Server::start_with_env(&config(&fake.url, sink_options), &[("TRACKING_SEGMENT_WRITE_KEY", KEY)])
}

/// The value of one metric line (`name{labels}`), 0 when absent.
fn metric(server: &Server, series: &str) -> f64 {
    let text = server.get("/metrics").call().unwrap().into_string().unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

fn accepted_ids(reply: &Value) -> Vec<String> {
    reply["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "accepted")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn track(name: &str, data: Value) -> Value {
    json!({"id": id(), "type": "track", "name": name, "anonymous_id": "anon-load", "timestamp": "2026-11-22T10:01:02.123Z", "data": data})
}

fn dead_letters(server: &Server) -> Vec<Value> {
    read_lines(&server.data.join("segment-dead-letter.jsonl")).iter().map(|l| parse(l)).collect()
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn allowlist_routing_and_the_message_mapping() {
    let fake = FakeSegment::start(KEY);
    let server = start(&fake, "");
    let token = jwt(&json!({"user_id": 42, "preferred_username": "ada", "exp": in_an_hour()}), JWT_SECRET);
    let (allowed, not_allowed, tracked, paged, identified, anonymous) = (id(), id(), id(), id(), id(), id());
    let body = json!({"sent_at": "2026-11-22T10:01:03Z", "events": [
        {"id": allowed, "name": ALLOWED, "data": {"mode": "audit"}, "page": COURSE_PAGE},
        {"id": not_allowed, "name": "edx.ui.lms.link_clicked", "data": {"target_url": "https://x"}, "page": COURSE_PAGE},
        {"id": tracked, "type": "track", "name": "edx.ui.lms.outline.selected", "data": {"target_name": "Week 1"},
         "page": COURSE_PAGE, "referrer": "https://lms.example.com/dashboard", "user_id": "999", "anonymous_id": "anon-1",
         "timestamp": "2026-11-22T10:01:02.123Z"},
        {"id": paged, "type": "page", "name": "Course Home", "category": "learning", "page": COURSE_PAGE, "anonymous_id": "anon-1"},
        {"id": identified, "type": "identify", "data": {"email_opt_in": true}, "user_id": "42", "anonymous_id": "anon-1"},
    ]});
    let (status, reply) = reply(
        server
            .post("/v1/batch")
            .set("Authorization", &format!("JWT {token}"))
            .set("User-Agent", "Mozilla/5.0 segment-test")
            .set("Accept-Language", "fr-FR,fr;q=0.9")
            .send_string(&body.to_string()),
    );
    assert_eq!((status, accepted_ids(&reply).len()), (200, 5), "{reply}");
    // No credential: a declared user id must not become userId.
    let (status, reply) = server.batch(&json!({"events": [
        {"id": anonymous, "type": "track", "name": "edx.ui.lms.outline.selected", "user_id": "999", "anonymous_id": "anon-2", "data": {}}
    ]}));
    assert_eq!((status, accepted_ids(&reply).len()), (200, 1), "{reply}");

    let got = fake.wait_for(Duration::from_secs(30), |a| a.len() >= 5);
    std::thread::sleep(Duration::from_millis(1500)); // several flush intervals: nothing else comes
    let by_id = fake.by_id();
    assert_eq!(fake.accepted().len(), 5, "{got:#?}");
    let expected: HashSet<&String> = [&allowed, &tracked, &paged, &identified, &anonymous].into_iter().collect();
    assert_eq!(by_id.keys().collect::<HashSet<_>>(), expected, "the tracking-log event off the allowlist stays out of Segment");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());

    let t = &by_id[&tracked][0];
    assert_eq!(t["type"], "track");
    assert_eq!(t["event"], "edx.ui.lms.outline.selected");
    assert_eq!(t["messageId"], tracked.as_str());
    assert_eq!(t["userId"], "42", "from the verified JWT");
    assert_eq!(t["anonymousId"], "anon-1");
    assert_eq!(t["timestamp"], "2026-11-22T10:01:02.123000+00:00", "the client's clock");
    assert_eq!(t["properties"], json!({"target_name": "Week 1", "label": "course-v1:edX+DemoX+Demo_Course", "nonInteraction": 1}));
    let c = &t["context"];
    assert_eq!(c["ip"], "127.0.0.1");
    assert_eq!(c["userAgent"], "Mozilla/5.0 segment-test");
    assert_eq!(c["locale"], "fr-FR");
    assert_eq!(
        c["page"],
        json!({"path": "/courses/course-v1:edX+DemoX+Demo_Course/courseware/ch1/", "referrer": "https://lms.example.com/dashboard", "url": COURSE_PAGE})
    );
    assert_eq!(c["library"]["name"], "tracking");
    assert!(c["library"]["version"].is_string());

    let a = &by_id[&allowed][0];
    assert_eq!((a["type"].as_str(), a["event"].as_str(), a["userId"].as_str()), (Some("track"), Some(ALLOWED), Some("42")));
    assert_eq!(a["properties"]["mode"], "audit");
    assert!(a["anonymousId"].is_null(), "no anonymous id, session or _ga: userId alone");

    let p = &by_id[&paged][0];
    assert_eq!((p["type"].as_str(), p["name"].as_str(), p["category"].as_str()), (Some("page"), Some("Course Home"), Some("learning")));
    assert_eq!(p["properties"]["url"], COURSE_PAGE);

    let i = &by_id[&identified][0];
    assert_eq!((i["type"].as_str(), i["userId"].as_str()), (Some("identify"), Some("42")));
    assert_eq!(i["traits"], json!({"email_opt_in": true}));

    let anon = &by_id[&anonymous][0];
    assert!(anon.get("userId").is_none(), "a declared user id is never userId: {anon}");
    assert_eq!(anon["anonymousId"], "anon-2");

    // The tracking log has both tracking-log events and none of Segment's own.
    let lines = server.wait_for_lines(2);
    let logged: HashSet<String> = lines.iter().map(|l| parse(l)["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(logged, [allowed.clone(), not_allowed.clone()].into_iter().collect());

    assert_eq!(metric(&server, &format!("tracking_sink_delivered_total{{sink=\"{SINK}\"}}")), 5.0);
    assert!(wait_until(Duration::from_secs(5), || metric(&server, &format!("tracking_sink_lag_records{{sink=\"{SINK}\"}}")) == 0.0));
    assert_eq!(
        metric(&server, "tracking_processor_events_total{branch=\"root/segment\",stage=\"segment_filter\",outcome=\"dropped\",reason=\"not_on_segment_allowlist\"}"),
        1.0
    );
    // One request or a few, all with the write key (checked by the fake).
    assert!(fake.requests().iter().all(|r| r.status == 200));
}

/// Posts a batch every 250 ms: two Segment events, one allowlisted tracking-log
/// event, one tracking-log event for the log only. Records ids and reply times.
struct Load {
    stop: Arc<AtomicBool>,
    segment_ids: Arc<Mutex<Vec<String>>>,
    log_ids: Arc<Mutex<Vec<String>>>,
    slowest: Arc<Mutex<Duration>>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: String) -> Load {
        Load::start_with(url, Duration::from_millis(250), 0)
    }

    /// A batch of four events every `every`, each with `pad` bytes of data.
    fn start_with(url: String, every: Duration, pad: usize) -> Load {
        let load = Load {
            stop: Arc::default(),
            segment_ids: Arc::default(),
            log_ids: Arc::default(),
            slowest: Arc::default(),
            failures: Arc::default(),
            thread: None,
        };
        let (stop, segment_ids, log_ids, slowest, failures) =
            (load.stop.clone(), load.segment_ids.clone(), load.log_ids.clone(), load.slowest.clone(), load.failures.clone());
        // A signed-in learner: the allowlisted tracking-log events carry a userId.
        let token = jwt(&json!({"user_id": 7, "preferred_username": "learner", "exp": in_an_hour()}), JWT_SECRET);
        let thread = std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
            let mut n = 0;
            let padding = "p".repeat(pad);
            while !stop.load(Ordering::SeqCst) {
                let events = vec![
                    track("edx.ui.lms.outline.selected", json!({"n": n, "pad": padding})),
                    json!({"id": id(), "type": "page", "name": "Progress", "anonymous_id": "anon-load", "data": {"n": n, "pad": padding}}),
                    json!({"id": id(), "name": ALLOWED, "data": {"n": n, "pad": padding}, "page": COURSE_PAGE}),
                    json!({"id": id(), "name": "edx.ui.lms.link_clicked", "data": {"n": n, "pad": padding}}),
                ];
                n += 1;
                let started = Instant::now();
                match agent
                    .post(&format!("{url}/v1/batch"))
                    .set("Authorization", &format!("JWT {token}"))
                    .send_string(&json!({ "events": events }).to_string())
                {
                    Ok(response) => {
                        let took = started.elapsed();
                        let mut slowest = slowest.lock().unwrap();
                        *slowest = (*slowest).max(took);
                        let ids = accepted_ids(&response.into_json().unwrap());
                        assert_eq!(ids.len(), 4);
                        segment_ids.lock().unwrap().extend(ids[..3].iter().cloned());
                        log_ids.lock().unwrap().extend(ids[2..].iter().cloned());
                    }
                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                }
                std::thread::sleep(every);
            }
        });
        Load { thread: Some(thread), ..load }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

#[test]
fn a_minute_long_outage_then_recovery_delivers_everything_once() {
    let fake = FakeSegment::start(KEY);
    let server = start(&fake, "");
    let lag = |server: &Server| metric(server, &format!("tracking_sink_lag_records{{sink=\"{SINK}\"}}"));
    let mut load = Load::start(server.url.clone());
    std::thread::sleep(Duration::from_secs(3));

    // 60 seconds: 503s, then nothing listening, then 429s with Retry-After.
    let outage = Instant::now();
    fake.set_mode(Mode::fail(503));
    std::thread::sleep(Duration::from_secs(25));
    let lag_503 = lag(&server);
    fake.set_mode(Mode::Down);
    std::thread::sleep(Duration::from_secs(20));
    // The tracking log keeps up while Segment is away.
    let logged_so_far = load.log_ids.lock().unwrap().clone();
    let lines = server.wait_for_lines(logged_so_far.len());
    let in_log: HashSet<String> = lines.iter().map(|l| parse(l)["id"].as_str().unwrap().to_owned()).collect();
    assert!(logged_so_far.iter().all(|id| in_log.contains(id)), "the tracking log fell behind during the outage");
    let lag_down = lag(&server);
    let phase_429 = Instant::now();
    fake.set_mode(Mode::Fail { status: 429, retry_after: Some("3".into()), body: "{\"error\": \"slow down\"}".into() });
    std::thread::sleep(Duration::from_secs(60).saturating_sub(outage.elapsed()));
    let lag_end = lag(&server);
    fake.set_mode(Mode::Accept);
    let recovery = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    load.stop();

    assert!(load.failures.lock().unwrap().is_empty(), "ingest failed: {:?}", load.failures.lock().unwrap());
    let slowest = *load.slowest.lock().unwrap();
    assert!(slowest < Duration::from_secs(5), "ingest answered in up to {slowest:?} while Segment was out");
    assert!(lag_503 > 0.0 && lag_down > lag_503 && lag_end > lag_down, "lag grows during the outage: {lag_503} {lag_down} {lag_end}");

    let expected: HashSet<String> = load.segment_ids.lock().unwrap().iter().cloned().collect();
    assert!(expected.len() > 300, "the load made {} Segment events", expected.len());
    fake.wait_for(Duration::from_secs(60), |accepted| {
        let seen: HashSet<&str> = accepted.iter().filter_map(|m| m["messageId"].as_str()).collect();
        expected.iter().all(|id| seen.contains(id.as_str()))
    });
    let caught_up = recovery.elapsed();
    let by_id = fake.by_id();
    let missing = expected.iter().filter(|id| !by_id.contains_key(*id)).count();
    assert_eq!(missing, 0, "{missing} of {} events never reached Segment", expected.len());
    let doubled: Vec<_> = by_id.iter().filter(|(_, m)| m.len() > 1).map(|(id, _)| id).collect();
    assert!(doubled.is_empty(), "delivered more than once: {doubled:?}");
    assert_eq!(by_id.len(), expected.len(), "only the events sent reach Segment");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());

    // Retry-After was honoured: 429s at least 3 seconds apart.
    let requests = fake.requests();
    let throttled: Vec<Instant> = requests.iter().filter(|r| r.status == 429 && r.at >= phase_429).map(|r| r.at).collect();
    assert!(throttled.len() >= 2, "{} requests during the 429s", throttled.len());
    for pair in throttled.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(2900), "retried {gap:?} after a Retry-After of 3 s");
    }
    // Backoff, not a busy loop: 25 s of 503 with a 2 s cap is tens of tries, not thousands.
    let failed_503 = requests.iter().filter(|r| r.status == 503).count();
    assert!((5..=100).contains(&failed_503), "{failed_503} tries during the 503s");
    assert!(metric(&server, &format!("tracking_sink_retried_total{{sink=\"{SINK}\"}}")) >= failed_503 as f64);
    assert!(wait_until(Duration::from_secs(10), || lag(&server) == 0.0));
    assert_eq!(metric(&server, &format!("tracking_sink_delivered_total{{sink=\"{SINK}\"}}")), expected.len() as f64);
    eprintln!(
        "outage: {} Segment events; lag {lag_503} after 25 s of 503, {lag_down} after 20 s down, {lag_end} at the end; \
         {failed_503} tries during the 503s, {} during the 429s; slowest ingest reply {slowest:?}; all delivered {caught_up:?} after recovery",
        expected.len(),
        throttled.len()
    );

    // And the tracking log has every tracking-log event exactly once.
    let log_ids = load.log_ids.lock().unwrap().clone();
    let lines = server.wait_for_lines(log_ids.len());
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        *counts.entry(parse(line)["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert!(log_ids.iter().all(|id| counts.get(id) == Some(&1)));
    assert_eq!(lines.len(), log_ids.len());
}

#[test]
fn a_revoked_key_spills_instead_of_holding_the_log_back_and_replay_delivers_each_once() {
    let fake = FakeSegment::start(KEY);
    fake.set_mode(Mode::fail(401));
    // A 4 MiB log: the load writes that much in seconds, so a sink holding it back would
    // bring 503s at once.
    let config = format!("[wal]\nmax_bytes = 4194304\n{}", config(&fake.url, "max_lag_secs = 10"));
    let server = Server::start_with_env(&config, &[("TRACKING_SEGMENT_WRITE_KEY", KEY)]);
    let mut load = Load::start_with(server.url.clone(), Duration::from_millis(15), 1500);
    let status = |server: &Server| -> Value { parse(&server.get("/status?format=json").call().unwrap().into_string().unwrap()) };
    let mut states = HashSet::new();
    let revoked = Instant::now();
    while revoked.elapsed() < Duration::from_secs(60) {
        let s = status(&server);
        let sink = s["sinks"].as_array().unwrap().iter().find(|x| x["sink"] == SINK).unwrap().clone();
        states.insert(sink["state"].as_str().unwrap().to_owned());
        assert!(s["wal"]["bytes"].as_u64().unwrap() < 4 << 20);
        std::thread::sleep(Duration::from_millis(500));
    }
    let spilled_during = metric(&server, &format!("tracking_sink_spilled_total{{sink=\"{SINK}\"}}"));
    let credentials = metric(&server, &format!("tracking_sink_state{{sink=\"{SINK}\",state=\"failing: credentials\"}}"))
        + metric(&server, &format!("tracking_sink_state{{sink=\"{SINK}\",state=\"spilling\"}}"));
    fake.set_mode(Mode::Accept);
    std::thread::sleep(Duration::from_secs(4));
    load.stop();

    let failures = load.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} requests failed (503?): {:?}", failures.len(), failures.first());
    assert!(states.contains("failing: credentials") && states.contains("spilling"), "states seen: {states:?}");
    assert!(spilled_during > 100.0, "{spilled_during} events spilled");
    assert_eq!(credentials, 1.0, "the state metric named the state");
    assert!(metric(&server, &format!("tracking_sink_spill_bytes{{sink=\"{SINK}\"}}")) > 0.0);
    // Every tracking-log event is in tracking.log, once, whatever Segment did.
    let log_ids = load.log_ids.lock().unwrap().clone();
    let lines = server.wait_for_lines(log_ids.len());
    let logged: HashSet<String> = lines.iter().map(|l| parse(l)["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(lines.len(), log_ids.len());
    assert!(log_ids.iter().all(|id| logged.contains(id)));
    assert!(wait_until(Duration::from_secs(20), || metric(&server, &format!("tracking_sink_lag_records{{sink=\"{SINK}\"}}")) == 0.0));
    let spill_dir = server.data.join("spill").join(SINK.replace('/', "."));
    let files: Vec<_> = std::fs::read_dir(&spill_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!files.is_empty());
    for file in &files {
        assert_eq!(std::fs::metadata(file).unwrap().permissions().mode() & 0o777, 0o640, "{}", file.display());
    }

    // The key works again: replay-spill, beside the running server, delivers the spill.
    let before = fake.by_id();
    let output = Command::new(env!("CARGO_BIN_EXE_tracking-server"))
        .args(["--config"])
        .arg(server.config_path())
        .args(["replay-spill", "--sink", SINK])
        .env("TRACKING_SEGMENT_WRITE_KEY", KEY)
        .env("TRACKING_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let by_id = fake.by_id();
    let expected: HashSet<String> = load.segment_ids.lock().unwrap().iter().cloned().collect();
    let missing = expected.iter().filter(|id| !by_id.contains_key(*id)).count();
    assert_eq!(missing, 0, "{missing} of {} Segment events never arrived", expected.len());
    let doubled = by_id.values().filter(|m| m.len() > 1).count();
    assert_eq!(doubled, 0, "events delivered twice");
    assert!(by_id.len() > before.len(), "the replay delivered what was spilled ({stdout})");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    assert!(std::fs::read_dir(&spill_dir).unwrap().next().is_none(), "replayed files are removed");
    eprintln!("revoked key: {} Segment events, {spilled_during} spilled, {} delivered live; {stdout}", expected.len(), before.len());
}

#[test]
fn a_refused_batch_lands_in_the_dead_letter_file_with_the_response() {
    let fake = FakeSegment::start(KEY);
    fake.set_mode(Mode::Fail { status: 400, retry_after: None, body: "{\"error\": \"invalid payload from the fake\"}".into() });
    let server = start(&fake, "");
    let refused: Vec<Value> = (0..3).map(|n| track("edx.ui.lms.outline.selected", json!({"n": n}))).collect();
    let (status, reply) = server.batch(&json!({ "events": refused }));
    assert_eq!((status, accepted_ids(&reply).len()), (200, 3));
    assert!(wait_until(Duration::from_secs(30), || dead_letters(&server).len() >= 3), "{:?}", dead_letters(&server));

    // Moved on: later events are delivered.
    fake.set_mode(Mode::Accept);
    let later: Vec<Value> = (0..2).map(|n| track("edx.ui.lms.outline.selected", json!({"later": n}))).collect();
    server.batch(&json!({ "events": later }));
    let got = fake.wait_for(Duration::from_secs(30), |a| a.len() >= 2);
    let got_ids: HashSet<&str> = got.iter().map(|m| m["messageId"].as_str().unwrap()).collect();
    let later_ids: HashSet<&str> = later.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(got_ids, later_ids, "the refused batch is not sent again");

    let letters = dead_letters(&server);
    assert_eq!(letters.len(), 3);
    let refused_ids: HashSet<&str> = refused.iter().map(|e| e["id"].as_str().unwrap()).collect();
    for letter in &letters {
        assert_eq!(letter["reason"], "refused");
        assert_eq!(letter["status"], 400);
        assert_eq!(letter["response"], "{\"error\": \"invalid payload from the fake\"}");
        assert_eq!(letter["sink"], SINK);
        assert!(refused_ids.contains(letter["id"].as_str().unwrap()));
        assert_eq!(letter["event"]["messageId"], letter["id"], "the message as it was sent");
        assert_eq!(letter["event"]["type"], "track");
    }
    let mode = std::fs::metadata(server.data.join("segment-dead-letter.jsonl")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(metric(&server, &format!("tracking_sink_dead_lettered_total{{reason=\"refused\",sink=\"{SINK}\"}}")), 3.0);
    // A 400 is not retried.
    assert_eq!(fake.requests().iter().filter(|r| r.status == 400).count(), 1);
}

#[test]
fn an_oversized_event_is_dead_lettered_and_batches_stay_under_500_kb() {
    let fake = FakeSegment::start(KEY);
    let server = start(&fake, "");
    // 40 KB: under the ingest limit (50,000), over Segment's 32 KB per event.
    let big = track("edx.ui.lms.outline.selected", json!({"blob": "b".repeat(40_000)}));
    let small = [track("edx.ui.lms.outline.selected", json!({"n": 1})), track("edx.ui.lms.outline.selected", json!({"n": 2}))];
    let (status, reply) = server.batch(&json!({"events": [small[0], big, small[1]]}));
    assert_eq!((status, accepted_ids(&reply).len()), (200, 3), "{reply}");
    // 60 events of 20 KB: 1.2 MB that must go in several requests.
    let mut bulk = Vec::new();
    for _ in 0..6 {
        let events: Vec<Value> =
            (0..10).map(|n| track("edx.ui.lms.outline.selected", json!({"n": n, "text": "t".repeat(20_000)}))).collect();
        let (status, reply) = server.batch(&json!({ "events": events }));
        assert_eq!((status, accepted_ids(&reply).len()), (200, 10), "{reply}");
        bulk.extend(events);
    }
    let expected: HashSet<String> = small.iter().chain(&bulk).map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    fake.wait_for(Duration::from_secs(30), |a| a.len() >= expected.len());
    std::thread::sleep(Duration::from_millis(500));
    let by_id = fake.by_id();
    assert_eq!(by_id.keys().cloned().collect::<HashSet<_>>(), expected, "everything but the oversized event, once");
    assert!(by_id.values().all(|m| m.len() == 1));
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let requests = fake.requests();
    assert!(requests.len() >= 3, "1.2 MB went in {} requests", requests.len());
    assert!(requests.iter().all(|r| r.bytes <= 500_000), "{:?}", requests.iter().map(|r| r.bytes).collect::<Vec<_>>());

    let letters = dead_letters(&server);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["id"], big["id"]);
    assert_eq!(letters[0]["reason"], "event_too_large");
    assert!(letters[0]["detail"].as_str().unwrap().contains("over Segment's limit of 32000"));
    assert_eq!(letters[0]["event"]["properties"]["blob"].as_str().unwrap().len(), 40_000, "the whole event is kept");
    assert_eq!(metric(&server, &format!("tracking_sink_dead_lettered_total{{reason=\"event_too_large\",sink=\"{SINK}\"}}")), 1.0);
}

#[test]
fn kill_9_mid_delivery_then_restart_loses_nothing() {
    let fake = FakeSegment::start(KEY);
    // A slow Segment and small batches: requests are in flight when the server dies.
    fake.set_mode(Mode::Slow(Duration::from_millis(300)));
    let mut server = start(&fake, "max_batch_events = 20");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|t| {
            let (url, stop, acked) = (server.url.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let events: Vec<Value> =
                        (0..10).map(|i| track("edx.ui.lms.outline.selected", json!({"t": t, "n": n, "i": i}))).collect();
                    n += 1;
                    if let Ok(response) = agent.post(&format!("{url}/v1/batch")).send_string(&json!({ "events": events }).to_string()) {
                        acked.lock().unwrap().extend(accepted_ids(&response.into_json().unwrap()));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    assert!(!fake.accepted().is_empty(), "delivery had started");
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let before_restart = fake.accepted().len();
    assert!(acked.len() > before_restart + 100, "a backlog was left: {} acknowledged, {before_restart} delivered", acked.len());
    std::thread::sleep(Duration::from_millis(500)); // requests in flight at the kill land at the fake
    server.restart();

    fake.wait_for(Duration::from_secs(120), |accepted| {
        let seen: HashSet<&str> = accepted.iter().filter_map(|m| m["messageId"].as_str()).collect();
        acked.iter().all(|id| seen.contains(id.as_str()))
    });
    let by_id = fake.by_id();
    let missing = acked.iter().filter(|id| !by_id.contains_key(*id)).count();
    assert_eq!(missing, 0, "{missing} of {} acknowledged events never reached Segment", acked.len());
    // Duplicates are allowed (at least once) but only as the same message again.
    let mut duplicates = 0;
    for (id, messages) in &by_id {
        for m in &messages[1..] {
            assert_eq!(m, &messages[0], "message {id} differs on redelivery");
            duplicates += 1;
        }
    }
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    eprintln!(
        "kill -9: {} events acknowledged, {} delivered before the kill, {duplicates} redelivered after the restart",
        acked.len(),
        before_restart
    );
}

/// The server binary with captured stderr, for what its logs say.
struct Child {
    child: std::process::Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

fn spawn(config_path: &Path, env: &[(&str, &str)]) -> Result<Child, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tracking-server"));
    dies_with_the_test(&mut command).arg("--config").arg(config_path).env_remove("TRACKING_SEGMENT_WRITE_KEY").env("TRACKING_LOG", "debug");
    command.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    match lines.next() {
        Some(Ok(line)) if line.starts_with("listening on ") => {
            std::thread::spawn(move || for _ in lines {});
            Ok(Child { url: line["listening on ".len()..].trim().to_owned(), child, stderr })
        }
        _ => {
            let status = child.wait().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            let text = stderr.lock().unwrap().clone();
            Err(format!("{status}: {text}"))
        }
    }
}

fn write_config(dir: &Path, segment_url: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("server.toml");
    let text =
        format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nworkers = 2\n{}", dir.join("data").display(), config(segment_url, extra));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn without_the_write_key_the_server_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", "");
    let error = spawn(&config, &[]).err().expect("the server must refuse to start");
    assert!(error.contains("TRACKING_SEGMENT_WRITE_KEY"), "{error}");
    assert!(error.contains("root/segment/segment"), "{error}");
    let error = spawn(&config, &[("TRACKING_SEGMENT_WRITE_KEY", "  ")]).err().expect("an empty key is no key");
    assert!(error.contains("TRACKING_SEGMENT_WRITE_KEY"), "{error}");
}

#[test]
fn logs_hold_neither_the_key_nor_events_and_sigterm_with_segment_down_is_bounded() {
    let fake = FakeSegment::start(KEY);
    fake.set_mode(Mode::fail(503));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.url, "shutdown_grace_ms = 1500");
    let mut child = spawn(&config, &[("TRACKING_SEGMENT_WRITE_KEY", KEY)]).unwrap();
    let marker = "PAYLOAD-MARKER-d41d8cd9";
    let events =
        vec![track("edx.ui.lms.outline.selected", json!({"secret": marker})), track("edx.ui.lms.outline.selected", json!({"n": 2}))];
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    agent.post(&format!("{}/v1/batch", child.url)).send_string(&json!({ "events": events }).to_string()).unwrap();
    assert!(wait_until(Duration::from_secs(20), || fake.requests().len() >= 3), "the sink retries");
    fake.set_mode(Mode::Fail { status: 400, retry_after: None, body: format!("{{\"echo\": \"{marker}\"}}") });
    assert!(wait_until(Duration::from_secs(20), || read_lines(&dir.path().join("data/segment-dead-letter.jsonl")).len() == 2));

    // Segment down at shutdown: the server still stops, after the grace period.
    fake.set_mode(Mode::Down);
    let pending = vec![track("edx.ui.lms.outline.selected", json!({"after": 1}))];
    agent.post(&format!("{}/v1/batch", child.url)).send_string(&json!({ "events": pending }).to_string()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let stopping = Instant::now();
    unsafe { libc::kill(child.child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = child.child.try_wait().unwrap() {
            break status;
        }
        assert!(stopping.elapsed() < Duration::from_secs(20), "SIGTERM hangs while Segment is down");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(200));
    let logs = child.stderr.lock().unwrap().clone();
    assert!(logs.contains("retrying"), "the logs were captured: {logs}");
    assert!(!logs.contains(KEY), "the write key is in the logs");
    assert!(!logs.contains("dGVzdC1vbmx5LXNlZ21lbnQtd3JpdGUta2V5LTdmM2E5Yzo"), "the encoded key is in the logs");
    assert!(!logs.contains(marker), "an event or response body is in the logs");

    // The event Segment did not get before the stop is sent after the restart.
    fake.set_mode(Mode::Accept);
    let child = spawn(&config, &[("TRACKING_SEGMENT_WRITE_KEY", KEY)]).unwrap();
    let got = fake.wait_for(Duration::from_secs(30), |a| !a.is_empty());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["messageId"], pending[0]["id"]);
    let mut c = child.child;
    let _ = c.kill();
    let _ = c.wait();
}
