//! The NATS JetStream sink and the relay, against real `nats-server -js` processes on
//! loopback: subjects and message ids, de-duplication across ingest nodes, a NATS
//! restart, a cluster node killed under load or missing at start, and the relay's
//! tracking log.

mod common;
#[path = "common/nats.rs"]
mod nats;

use std::time::Duration;

use common::*;
use nats::*;
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

fn id(n: u32) -> String {
    format!("0192f3a0-7b1c-7d2e-8f3a-{n:012x}")
}

#[test]
fn events_arrive_on_their_subjects_with_the_event_id_as_msg_id() {
    let nats = Nats::start();
    let server = Server::start(&ingest_config(&nats.url(), ""));
    // (name, type, expected subject)
    let cases = [
        ("edx.course.enrollment.activated", "tracking_log", "tracking.edx.course.enrollment.activated"),
        ("seq_goto", "tracking_log", "tracking.seq_goto"),
        ("/courses/course-v1:edX+DemoX+Demo/courseware", "tracking_log", "tracking._courses_course-v1_edX_DemoX_Demo_courseware"),
        ("edx.bi.user.account.registered", "tracking_log", "tracking.edx.bi.user.account.registered"),
        ("odd name..with *>", "tracking_log", "tracking.odd_name._.with___"),
        ("édx.ñame", "tracking_log", "tracking._dx._ame"),
        ("edx.ui.lms.link_clicked", "track", "tracking.edx.ui.lms.link_clicked"),
    ];
    let events: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, (name, kind, _))| json!({"id": id(i as u32), "type": kind, "name": name, "data": {"i": i}}))
        .collect();
    let (status, reply) = server.batch(&json!({ "events": events }));
    assert_eq!(status, 200, "{reply}");
    assert!(reply["results"].as_array().unwrap().iter().all(|r| r["status"] == "accepted"), "{reply}");

    let messages = wait_for_messages(&nats.url(), "TRACKING", cases.len(), MINUTE);
    assert_eq!(messages.len(), cases.len());
    for (i, (message, (name, _, subject))) in messages.iter().zip(&cases).enumerate() {
        assert_eq!(message.subject, *subject, "subject of {name}");
        assert_eq!(message.msg_id.as_deref(), Some(id(i as u32).as_str()), "Nats-Msg-Id of {name}");
        assert_eq!(message.payload["id"], json!(id(i as u32)));
        assert_eq!(message.payload["name"], json!(name), "the exact name travels in the payload");
        assert_eq!(message.payload["data"], json!({"i": i}));
        assert!(message.payload["timestamp"].is_string() && message.payload["context"].is_object(), "modern shape: {}", message.payload);
    }
    assert_eq!(messages[6].payload["type"], json!("track"), "Segment fields travel too");

    let info = stream_info(&nats.url(), "TRACKING").unwrap();
    assert_eq!(info.config.subjects, ["tracking.>"]);
    assert_eq!(info.config.num_replicas, 1);
    assert_eq!(info.config.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    // The messages can be in the stream before their acknowledgements reach the sink,
    // which counts the delivery then.
    let delivered = format!("tracking_sink_delivered_total{{sink=\"{JETSTREAM_SINK}\"}}");
    assert_eq!(wait_for_metric(&server.url, &delivered, cases.len() as f64, MINUTE), cases.len() as f64);
    // The checkpoint moves just after the acknowledgements are counted.
    assert_eq!(wait_for_metric_zero(&server.url), 0.0);
}

#[test]
fn a_stream_with_other_subjects_or_replicas_is_refused_at_start() {
    let nats = Nats::start();
    create_stream(
        &nats.url(),
        async_nats::jetstream::stream::Config { name: "TRACKING".into(), subjects: vec!["other.>".into()], ..Default::default() },
    );
    let (ok, stderr) = run_to_exit(&ingest_config(&nats.url(), ""), &[]);
    assert!(!ok);
    assert!(stderr.contains("stream TRACKING exists with subjects [\"other.>\"]"), "{stderr}");

    create_stream(
        &nats.url(),
        async_nats::jetstream::stream::Config { name: "EVENTS".into(), subjects: vec!["tracking.>".into()], ..Default::default() },
    );
    let (ok, stderr) = run_to_exit(&ingest_config(&nats.url(), "stream = \"EVENTS\"\nreplicas = 3"), &[]);
    assert!(!ok);
    assert!(stderr.contains("stream EVENTS exists with 1 replicas, but this sink is configured for 3"), "{stderr}");

    let (ok, stderr) = run_to_exit(&ingest_config(&nats.url(), "subjects = [\"tracking.edx.>\"]"), &[]);
    assert!(!ok);
    assert!(stderr.contains("do not capture every event subject"), "{stderr}");
}

#[test]
fn the_same_event_sent_to_two_ingest_nodes_is_stored_once() {
    let nats = Nats::start();
    let a = Server::start(&ingest_config(&nats.url(), ""));
    let b = Server::start(&ingest_config(&nats.url(), ""));
    let shared: Vec<Value> = (0..50).map(|i| json!({"id": id(i), "name": "edx.test.shared.sent", "data": {"i": i}})).collect();
    let only_b: Vec<Value> = (100..110).map(|i| json!({"id": id(i), "name": "edx.test.only_b.sent", "data": {"i": i}})).collect();
    assert_eq!(a.batch(&json!({ "events": shared })).0, 200);
    assert_eq!(b.batch(&json!({ "events": shared })).0, 200);
    assert_eq!(b.batch(&json!({ "events": only_b })).0, 200);

    // Both nodes have published (and had acknowledged) everything they took.
    let delivered = format!("tracking_sink_delivered_total{{sink=\"{JETSTREAM_SINK}\"}}");
    assert_eq!(wait_for_metric(&a.url, &delivered, 50.0, MINUTE), 50.0);
    assert_eq!(wait_for_metric(&b.url, &delivered, 60.0, MINUTE), 60.0);
    let messages = stream_messages(&nats.url(), "TRACKING");
    assert_eq!(messages.len(), 60, "each event once, whichever node published it");
    let expected: Vec<String> = (0..50).chain(100..110).map(id).collect();
    assert_each_once(&expected, &messages);
    // Each node's own tracking log has every event it took.
    assert_eq!(a.wait_for_lines(50).len(), 50);
    assert_eq!(b.wait_for_lines(60).len(), 60);
}

#[test]
fn nats_stopped_and_restarted_mid_load_loses_no_acknowledged_event() {
    // Stopped with SIGTERM, then killed with SIGKILL, restarted on the same store each time.
    let mut nats = Nats::start();
    let server = Server::start(&ingest_config(&nats.url(), "ack_timeout_secs = 2"));
    let load = Load::start(&server.url, 3);
    std::thread::sleep(Duration::from_millis(1500));
    let before = load.count();
    nats.stop();
    std::thread::sleep(Duration::from_millis(2500));
    let during = load.count() - before;
    assert!(during > 100, "ingest must go on while NATS is down ({during} events acknowledged)");
    let lag = metric(&server.url, &format!("tracking_sink_lag_records{{sink=\"{JETSTREAM_SINK}\"}}"));
    assert!(lag > 0.0, "the lag shows what waits for NATS");
    nats.restart();
    std::thread::sleep(Duration::from_millis(1500));
    let after = load.count();
    assert!(after > before + during + 100, "load after the restart");
    // Once more, without a chance to flush: SIGKILL.
    nats.kill9();
    std::thread::sleep(Duration::from_millis(1500));
    nats.restart();
    std::thread::sleep(Duration::from_millis(1500));
    let acked = load.finish();
    assert!(acked.len() > after + 100, "load after the second restart");

    let messages = wait_for_messages(&nats.url(), "TRACKING", acked.len(), MINUTE);
    assert_each_once(&acked, &messages);
    assert!(
        metric(&server.url, &format!("tracking_sink_errors_total{{sink=\"{JETSTREAM_SINK}\"}}")) > 0.0,
        "the outage was seen and retried"
    );
    assert_eq!(wait_for_metric_zero(&server.url), 0.0, "caught up");
}

/// Waits until the JetStream sink's lag is 0 (the last value is returned either way).
fn wait_for_metric_zero(url: &str) -> f64 {
    let sample = format!("tracking_sink_lag_records{{sink=\"{JETSTREAM_SINK}\"}}");
    let deadline = std::time::Instant::now() + MINUTE;
    loop {
        let v = metric(url, &sample);
        if v == 0.0 || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_three_node_cluster_with_the_stream_leader_killed_under_load_loses_no_acknowledged_event() {
    let mut nodes = Nats::cluster(3);
    let all = urls(&nodes);
    wait_for_jetstream(&all);
    let server = Server::start(&ingest_config(&all, "replicas = 3\nack_timeout_secs = 2"));
    let load = Load::start(&server.url, 3);
    let deadline = std::time::Instant::now() + MINUTE;
    let info = loop {
        match stream_info(&all, "TRACKING") {
            Some(info) if info.cluster.as_ref().and_then(|c| c.leader.clone()).is_some() && info.state.messages > 0 => break info,
            _ => assert!(std::time::Instant::now() < deadline, "the sink did not create the replicated stream"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(info.config.num_replicas, 3);
    std::thread::sleep(Duration::from_millis(1000));
    let leader = info.cluster.unwrap().leader.unwrap();
    let before = load.count();
    nodes.iter_mut().find(|n| n.name == leader).expect("the leader is one of ours").kill9();
    std::thread::sleep(Duration::from_millis(3000));
    let acked = load.finish();
    assert!(acked.len() > before + 100, "load went on after the kill");

    let survivors = urls(&nodes);
    let messages = wait_for_messages(&survivors, "TRACKING", acked.len(), MINUTE);
    assert_each_once(&acked, &messages);
    let info = stream_info(&survivors, "TRACKING").unwrap();
    assert_ne!(info.cluster.unwrap().leader.as_deref(), Some(leader.as_str()), "a new leader took over");
    assert_eq!(wait_for_metric_zero(&server.url), 0.0, "caught up");
}

#[test]
fn a_replicated_stream_waits_for_a_missing_cluster_peer() {
    // Three replicas need three peers: with one of them down, JetStream cannot place
    // the stream. The node starts anyway, stores what it is sent, and publishes once
    // the peer is back.
    let mut nodes = Nats::cluster(3);
    wait_for_jetstream(&urls(&nodes));
    nodes[2].stop();
    let up = urls(&nodes[..2]);
    let server = Server::start(&ingest_config(&up, "replicas = 3\nack_timeout_secs = 2"));
    let events: Vec<Value> = (0..20).map(|n| json!({"name": "edx.test.peer", "id": id(n)})).collect();
    assert_eq!(server.batch(&json!({ "events": events })).0, 200);
    let lag = format!("tracking_sink_lag_records{{sink=\"{JETSTREAM_SINK}\"}}");
    assert!(wait_for_metric(&server.url, &lag, 1.0, MINUTE) >= 1.0, "the batch waits for the stream");
    assert!(stream_info(&up, "TRACKING").is_none());
    nodes[2].restart();
    let all = urls(&nodes);
    let messages = wait_for_messages(&all, "TRACKING", 20, MINUTE);
    assert_each_once(&(0..20).map(id).collect::<Vec<_>>(), &messages);
    assert_eq!(stream_info(&all, "TRACKING").unwrap().config.num_replicas, 3);
    assert_eq!(wait_for_metric_zero(&server.url), 0.0, "caught up");
}

/// Events of every kind the tracking log routing treats differently.
fn varied_events(from: u32, n: u32) -> Vec<Value> {
    (from..from + n)
        .map(|i| match i % 6 {
            0 => json!({"id": id(i), "name": "edx.ui.lms.sequence.next_selected", "data": {"current_tab": i, "big": 12345678901234567890u64, "f": 0.1}, "page": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo_Course/courseware/"}),
            1 => json!({"id": id(i), "name": "seq_goto", "data": {"old": 1, "new": 2, "text": "naïve café \u{1F600}"}}),
            2 => json!({"id": id(i), "name": "edx.bi.course.upgrade.clicked", "data": {"i": i}}),
            3 => json!({"id": id(i), "type": "track", "name": "edx.ui.lms.link_clicked", "data": {"i": i}}),
            4 => json!({"id": id(i), "name": "edx.video.played", "data": {"nested": {"list": [1, "two", null, true]}, "password": "hunter2"}}),
            _ => json!({"id": id(i), "name": "edx.test.relay.sent", "data": {}}),
        })
        .collect()
}

/// Lines of the tracking log these events produce: the tracking-log events
/// (all types of [`varied_events`] but 3, `edx.bi.` ones included as in the LMS).
fn logged(from: u32, n: u32) -> usize {
    (from..from + n).filter(|i| i % 6 != 3).count()
}

#[test]
fn the_relay_writes_the_tracking_log_of_a_single_node() {
    let nats = Nats::start();
    let server = Server::start(&ingest_config(&nats.url(), ""));
    let mut relay = Relay::start(&nats.url(), "");
    for round in 0..4 {
        let (status, reply) = server.batch(&json!({ "events": varied_events(round * 30, 30) }));
        assert_eq!(status, 200, "{reply}");
    }
    // The legacy endpoint too (ids minted by the server).
    let status = server.get("/event?event_type=problem_check&event=%7B%22answer%22%3A%2042%7D&page=https%3A%2F%2Flms.example.com%2Fcourses%2Fcourse-v1%3AedX%2BDemoX%2BDemo%2F").call().unwrap().status();
    assert_eq!(status, 200);
    let expected = logged(0, 120) + 1;
    let single = server.wait_for_lines(expected);
    assert_eq!(single.len(), expected);
    let relayed = wait_for_lines(&relay.log_path(), expected, MINUTE);
    assert_eq!(relayed.len(), expected);
    assert_eq!(
        std::fs::read(relay.log_path()).unwrap(),
        std::fs::read(server.log_path()).unwrap(),
        "the relay's tracking log is the ingest node's, byte for byte"
    );
    assert!(relayed.iter().all(|l| !l.contains("link_clicked")), "the relay's routing applies");
    assert_eq!(
        relayed.iter().filter(|l| l.contains("\"edx.bi.course.upgrade.clicked\"")).count(),
        20,
        "internal events are written, as in the LMS"
    );
    assert_eq!(
        metric(&relay.url, "tracking_relay_messages_total{outcome=\"stored\"}"),
        121.0,
        "every event of the stream is stored, Segment-bound ones included"
    );

    // SIGTERM drains; what arrives while the relay is down is relayed after its restart.
    assert!(relay.terminate().success());
    for round in 4..6 {
        assert_eq!(server.batch(&json!({ "events": varied_events(round * 30, 30) })).0, 200);
    }
    let expected = expected + logged(120, 60);
    assert_eq!(server.wait_for_lines(expected).len(), expected);
    relay.restart();
    assert_eq!(wait_for_lines(&relay.log_path(), expected, MINUTE).len(), expected);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read(relay.log_path()).unwrap(),
        std::fs::read(server.log_path()).unwrap(),
        "identical after a restart of the relay"
    );
    assert_eq!(metric(&relay.url, "tracking_relay_pending_messages"), 0.0);
}

#[test]
fn a_relay_killed_under_load_stores_every_event_once() {
    let nats = Nats::start();
    let server = Server::start(&ingest_config(&nats.url(), ""));
    let mut relay = Relay::start(&nats.url(), "ack_wait_secs = 2\nbatch = 50");
    let load = Load::start(&server.url, 2);
    std::thread::sleep(Duration::from_millis(1500));
    relay.kill9();
    std::thread::sleep(Duration::from_millis(500));
    relay.restart();
    std::thread::sleep(Duration::from_millis(1000));
    let acked = load.finish();
    assert!(acked.len() > 500, "too little load: {}", acked.len());
    let single = server.wait_for_lines(acked.len());
    let relayed = wait_for_lines(&relay.log_path(), single.len(), MINUTE);
    // Redeliveries after the crash may come after later messages: the same lines,
    // each once, not necessarily in the same order.
    std::thread::sleep(Duration::from_millis(3000));
    let relayed_now = relay.lines();
    assert_eq!(relayed_now.len(), relayed.len(), "no line written twice after redelivery");
    let (mut a, mut b) = (single.clone(), relayed_now);
    a.sort();
    b.sort();
    assert_eq!(a.len(), b.len());
    assert!(a == b, "the relay's log holds each line of the ingest node's log exactly once");
    let ids: std::collections::HashSet<String> = single.iter().map(|l| parse(l)["id"].as_str().unwrap().to_owned()).collect();
    assert!(acked.iter().all(|id| ids.contains(id)));
}

#[test]
fn a_relay_refuses_to_publish_to_the_stream_it_consumes() {
    let (ok, stderr) = run_to_exit("[routing.backends.js]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:1\"\n", &["relay"]);
    assert!(!ok);
    assert!(stderr.contains("round in circles"), "{stderr}");
}

#[test]
fn a_retry_after_the_duplicate_window_is_dropped_by_the_relay() {
    let nats = Nats::start();
    let options = "duplicate_window_secs = 1";
    let a = Server::start(&ingest_config(&nats.url(), options));
    let b = Server::start(&ingest_config(&nats.url(), options));
    let relay = Relay::start(&nats.url(), "");
    let events: Vec<Value> = (0..20).map(|i| json!({"id": id(i), "name": "edx.test.retry.sent", "data": {"i": i}})).collect();
    assert_eq!(a.batch(&json!({ "events": events })).0, 200);
    assert_eq!(wait_for_messages(&nats.url(), "TRACKING", 20, MINUTE).len(), 20);
    // Past JetStream's window the same events are stored again...
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(b.batch(&json!({ "events": events })).0, 200);
    let messages = wait_for_messages(&nats.url(), "TRACKING", 40, MINUTE);
    assert_eq!(messages.len(), 40);
    // ...and the relay's id de-duplication keeps one of each.
    assert_eq!(wait_for_metric(&relay.url, "tracking_relay_messages_total{outcome=\"duplicate\"}", 20.0, MINUTE), 20.0);
    assert_eq!(metric(&relay.url, "tracking_relay_messages_total{outcome=\"stored\"}"), 20.0);
    let relayed = wait_for_lines(&relay.log_path(), 20, MINUTE);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(relay.lines(), relayed);
    assert_eq!(relayed, a.lines(), "the relay's lines are node A's (the first copy of each event)");
}

#[test]
fn a_stream_deleted_under_a_running_node_is_created_again() {
    let nats = Nats::start();
    let server = Server::start(&ingest_config(&nats.url(), "ack_timeout_secs = 1"));
    assert_eq!(server.batch(&json!({"events": [{"id": id(1), "name": "edx.test.before.sent"}]})).0, 200);
    assert_eq!(wait_for_messages(&nats.url(), "TRACKING", 1, MINUTE).len(), 1);
    delete_stream(&nats.url(), "TRACKING");
    assert_eq!(server.batch(&json!({"events": [{"id": id(2), "name": "edx.test.after.sent"}]})).0, 200);
    let messages = wait_for_messages(&nats.url(), "TRACKING", 1, MINUTE);
    assert_eq!(messages.iter().map(|m| m.msg_id.clone().unwrap()).collect::<Vec<_>>(), [id(2)], "the new stream holds what came after");
    assert_eq!(stream_info(&nats.url(), "TRACKING").unwrap().config.subjects, ["tracking.>"]);
}
