//! The ingest server as clients use it: real sockets, a real child process.

mod common;

use std::io::Write;

use common::*;
use event_model::testing::{assert_event_matches, Tolerate};
use serde_json::{json, Value};

const LEGACY_KEYS: [&str; 15] = [
    "name",
    "context",
    "username",
    "session",
    "ip",
    "agent",
    "host",
    "referer",
    "accept_language",
    "event",
    "time",
    "event_type",
    "event_source",
    "page",
    "id",
];

fn keys(line: &str) -> Vec<String> {
    // serde_json keeps insertion order (preserve_order), so this is the line's order.
    parse(line).as_object().unwrap().keys().cloned().collect()
}

#[test]
fn batch_events_become_legacy_lines_with_request_context() {
    // The page is on the LMS; its Referer names that origin, which must be allowed.
    let server = Server::start("[security]\nallowed_origins = [\"https://lms.example.com\"]");
    let token = jwt(&json!({"user_id": 42, "preferred_username": "ada", "exp": in_an_hour()}), JWT_SECRET);
    let id = "0192f3a0-7b1c-7d2e-8f3a-0123456789ab";
    let body = json!({"sent_at": "2026-11-22T10:01:02.123Z", "events": [{
        "id": id, "type": "tracking_log", "name": "edx.ui.lms.outline.selected",
        "timestamp": "2026-11-22T10:01:02.100Z", "data": {"target_name": "Café 日本", "widget_placement": "accordion"},
        "page": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo_Course/courseware/ch1/"
    }]});
    let (status, reply) = reply(
        server
            .post("/v1/batch")
            .set("Content-Type", "text/plain;charset=UTF-8")
            .set("Cookie", &format!("{}; sessionid=abc123session; _ga=GA1.2.1111.2222", jwt_cookies(&token)))
            .set("User-Agent", "Mozilla/5.0 test")
            .set("Referer", "https://lms.example.com/courses/course-v1:edX+DemoX+Demo_Course/courseware/ch1/")
            .set("Accept-Language", "fr-FR,fr;q=0.9")
            .send_string(&body.to_string()),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply, json!({"results": [{"id": id, "status": "accepted"}]}));
    let lines = server.wait_for_lines(1);
    assert_eq!(lines.len(), 1);
    assert_eq!(keys(&lines[0]), LEGACY_KEYS);
    let line = parse(&lines[0]);
    let host = server.url.trim_start_matches("http://");
    assert_event_matches(
        &json!({
            "name": "edx.ui.lms.outline.selected",
            "context": {"user_id": 42, "path": "/v1/batch", "course_id": "course-v1:edX+DemoX+Demo_Course", "org_id": "edX", "enterprise_uuid": ""},
            "username": "ada",
            "session": tracking_server::context::session_hash(SESSION_KEY.as_bytes(), "abc123session"),
            "ip": "127.0.0.1", "agent": "Mozilla/5.0 test", "host": host,
            "referer": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo_Course/courseware/ch1/",
            "accept_language": "fr-FR,fr;q=0.9",
            "event": {"target_name": "Café 日本", "widget_placement": "accordion"},
            "event_type": "edx.ui.lms.outline.selected", "event_source": "browser",
            "page": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo_Course/courseware/ch1/",
            "id": id,
        }),
        &line,
        Tolerate { string_payload: true, root_extra_fields: true, context_extra_fields: false, payload_extra_fields: false },
    );
    // Browser payloads are JSON strings written as Python writes them.
    assert!(
        lines[0].contains(r#""event": "{\"target_name\": \"Caf\\u00e9 \\u65e5\\u672c\", \"widget_placement\": \"accordion\"}""#),
        "{}",
        lines[0]
    );
    assert!(line["time"].as_str().unwrap().ends_with("+00:00"));
    // client_id is for Segment only; it leaves the research log.
    assert!(!lines[0].contains("1111.2222"));
}

#[test]
fn the_form_post_of_frontend_platform() {
    let server = Server::start("[security]\nallowed_origins = [\"http://apps.local.openedx.io:2000\"]");
    let token = jwt(&json!({"user_id": 7, "preferred_username": "staff", "exp": in_an_hour()}), JWT_SECRET);
    // What sendTrackingLogEvent posts: snake_cased keys, JSON.stringify'd, form-encoded.
    let event = r#"{"course_id":"course-v1:edX+DemoX+Demo_Course","target_url":"https://x.test/a?b=1","is_expanded":true}"#;
    let page = "http://apps.local.openedx.io:2000/learning/course/course-v1:edX+DemoX+Demo_Course/home";
    let form = [("event_type", "edx.ui.lms.sequence.tab_selected"), ("event", event), ("page", page)];
    let body = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
    let (status, reply) = reply(
        server
            .post("/event")
            .set("Content-Type", "application/x-www-form-urlencoded")
            .set("Origin", "http://apps.local.openedx.io:2000")
            .set("Cookie", &jwt_cookies(&token))
            .send_string(&body),
    );
    assert_eq!((status, reply), (200, json!({"text": "success"})));
    let lines = server.wait_for_lines(1);
    assert_eq!(keys(&lines[0]), LEGACY_KEYS);
    assert_event_matches(
        &json!({
            "name": "edx.ui.lms.sequence.tab_selected",
            "context": {"user_id": 7, "path": "/event", "course_id": "course-v1:edX+DemoX+Demo_Course", "org_id": "edX", "enterprise_uuid": ""},
            "username": "staff", "session": "",
            "event": {"course_id": "course-v1:edX+DemoX+Demo_Course", "target_url": "https://x.test/a?b=1", "is_expanded": true},
            "event_type": "edx.ui.lms.sequence.tab_selected", "event_source": "browser", "page": page,
        }),
        &parse(&lines[0]),
        Tolerate::default(),
    );
    assert!(lines[0].contains(r#""event": "{\"course_id\": \"course-v1:edX+DemoX+Demo_Course\", \"target_url\": \"https://x.test/a?b=1\", \"is_expanded\": true}""#));

    // The same endpoint by GET, with a raw (non-JSON) payload and a courserun_key.
    let (status, _) = common::reply(
        server
            .get("/event")
            .query("event_type", "seq_goto")
            .query("event", "not json")
            .query("page", "/dashboard")
            .query("courserun_key", "course-v1:A+B+C")
            .call(),
    );
    assert_eq!(status, 200);
    let lines = server.wait_for_lines(2);
    let get = parse(&lines[1]);
    assert_eq!(get["event"], json!("not json"));
    assert_eq!(get["context"]["course_id"], json!("course-v1:A+B+C"));
    assert_eq!(get["context"]["org_id"], json!("A"));
    assert_eq!(get["context"]["user_id"], Value::Null);
    assert_eq!(get["username"], json!(""));
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn one_bad_event_never_costs_its_batch() {
    let server = Server::start("[ingest]\nname_validation = \"reject\"\n[limits]\nevent_bytes = 2000");
    let (status, reply) = server.batch(&json!({"events": [
        {"name": "edx.test.good.one", "data": {"n": 1}},
        {"name": "edx.test.bad.data", "data": [1, 2]},
        {"name": "Not A Name", "data": {}},
        {"name": "edx.test.too.big", "data": {"text": "x".repeat(3000)}},
        {"data": {"no": "name"}},
        "not an object",
        {"name": "edx.test.bad.id", "id": "123"},
        {"name": "edx.test.good.two", "data": {"n": 2}},
    ]}));
    assert_eq!(status, 200);
    let statuses: Vec<_> =
        reply["results"].as_array().unwrap().iter().map(|r| (r["status"].as_str().unwrap(), r["reason"].as_str())).collect();
    assert_eq!(
        statuses,
        [
            ("accepted", None),
            ("rejected", Some("invalid_data")),
            ("rejected", Some("name_bad_part")),
            ("rejected", Some("size_limit")),
            ("rejected", Some("missing_name")),
            ("rejected", Some("invalid_event")),
            ("rejected", Some("invalid_id")),
            ("accepted", None),
        ]
    );
    let lines = server.wait_for_lines(2);
    let names: Vec<_> = lines.iter().map(|l| parse(l)["event_type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["edx.test.good.one", "edx.test.good.two"]);
    let metrics = server.get("/metrics").call().unwrap().into_string().unwrap();
    assert!(metrics.contains("tracking_events_rejected_total{reason=\"size_limit\"} 1"), "{metrics}");
    assert!(metrics.contains("tracking_events_accepted_total 2"));
    assert!(
        metrics.contains(
            r#"tracking_processor_events_total{branch="ingest",stage="name_validator",outcome="dropped",reason="name_bad_part"} 1"#
        ),
        "{metrics}"
    );
}

#[test]
fn bad_requests_get_a_4xx_with_a_reason() {
    let server = Server::start("[limits]\nbody_bytes = 20000\nevents_per_batch = 3");
    let raw = |content_type: &str, body: &[u8]| reply(server.post("/v1/batch").set("Content-Type", content_type).send_bytes(body));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("application/json", b"{not json".to_vec(), 400, "invalid_json"),
        ("application/json", b"{\"events\": \"\xff\xfe\"}".to_vec(), 400, "invalid_utf8"),
        ("application/json", b"[1, 2]".to_vec(), 400, "invalid_batch"),
        ("application/json", b"{\"events\": 5}".to_vec(), 400, "invalid_batch"),
        ("application/json", b"{}".to_vec(), 400, "invalid_batch"),
        ("application/json", br#"{"events": [{}, {}, {}, {}]}"#.to_vec(), 413, "too_many_events"),
        ("application/xml", b"<events/>".to_vec(), 415, "unsupported_media_type"),
    ];
    for (content_type, body, want_status, want_code) in cases {
        let (status, reply) = raw(content_type, &body);
        assert_eq!((status, reply["error"].as_str()), (want_status, Some(want_code)), "{}", String::from_utf8_lossy(&body));
        assert!(!reply["detail"].as_str().unwrap().is_empty());
    }
    let (status, _) = raw("application/json", &vec![b' '; 30_000]);
    assert_eq!(status, 413, "oversize body");
    let (status, reply) = reply(server.post("/v1/batch").set("Content-Encoding", "gzip").send_bytes(b"not gzip"));
    assert_eq!((status, reply["error"].as_str()), (400, Some("invalid_gzip")));
    // `/event` reads what Django reads (lms_parity.rs); a body it cannot read is refused.
    let (status, reply) = common::reply(server.post("/event").set("Content-Type", "text/plain").send_bytes(b"event_type=a"));
    assert_eq!((status, reply["error"].as_str()), (415, Some("unsupported_media_type")));
    let (status, reply) = common::reply(server.post("/event").set("Content-Type", "multipart/form-data").send_bytes(b"x"));
    assert_eq!((status, reply["error"].as_str()), (400, Some("invalid_form")));
    assert!(server.lines().is_empty());
    // Another method is a 405 naming the ones accepted (the LMS's view would log an
    // empty event for a HEAD or a PUT); nothing is logged.
    for (method, path, allow) in
        [("HEAD", "/event", "GET, POST"), ("PUT", "/event", "GET, POST"), ("DELETE", "/v1/batch", "POST"), ("GET", "/v1/batch", "POST")]
    {
        let result = ureq::request(method, &format!("{}{path}", server.url)).query("event_type", "edx.test.method.sent").call();
        let response = match result {
            Err(ureq::Error::Status(_, response)) => response,
            other => panic!("{method} {path}: {other:?}"),
        };
        assert_eq!((response.status(), response.header("Allow")), (405, Some(allow)), "{method} {path}");
    }
    let (status, _) = common::reply(server.get("/event").query("event_type", "edx.test.method.sent").call());
    assert_eq!(status, 200);
    assert_eq!(server.wait_for_lines(1).len(), 1, "only the GET is logged");
}

#[test]
fn gzip_bodies_are_accepted() {
    let server = Server::start("");
    let body = json!({"events": [{"name": "edx.test.gzip.sent", "data": {"k": "v"}}]}).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let (status, reply) = reply(
        server.post("/v1/batch").set("Content-Type", "application/json").set("Content-Encoding", "gzip").send_bytes(&gz.finish().unwrap()),
    );
    assert_eq!(status, 200);
    assert_eq!(reply["results"][0]["status"], "accepted");
    assert_eq!(parse(&server.wait_for_lines(1)[0])["event_type"], "edx.test.gzip.sent");
}

#[test]
fn forged_credentials_and_declared_ids_never_become_user_id() {
    let server = Server::start("");
    let forged = jwt(&json!({"user_id": 1, "preferred_username": "admin", "exp": in_an_hour()}), "not-the-secret");
    let expired = jwt(&json!({"user_id": 2, "preferred_username": "old", "exp": 1_000_000}), JWT_SECRET);
    for (n, (header, value)) in
        [("Cookie", jwt_cookies(&forged)), ("Authorization", format!("JWT {expired}")), ("Authorization", format!("Bearer {forged}"))]
            .into_iter()
            .enumerate()
    {
        let body = json!({"events": [{"name": "edx.test.forged.sent", "user_id": 1, "data": {"n": n}}]});
        let (status, _) = reply(server.post("/v1/batch").set(header, &value).send_string(&body.to_string()));
        assert_eq!(status, 200);
    }
    let lines = server.wait_for_lines(3);
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let line = parse(line);
        assert_eq!(line["context"]["user_id"], Value::Null, "{line}");
        assert_eq!(line["username"], json!(""));
    }
}

#[test]
fn duplicates_by_id_are_written_once_even_across_restarts() {
    let mut server = Server::start("");
    let id = "0192f3a0-7b1c-7d2e-8f3a-000000000001";
    let body = json!({"events": [{"id": id, "name": "edx.test.dup.sent"}, {"id": id, "name": "edx.test.dup.sent"}]});
    let (_, first) = server.batch(&body);
    assert_eq!(first["results"][0]["status"], "accepted");
    assert_eq!(first["results"][1]["status"], "duplicate");
    let (_, again) = server.batch(&body);
    assert_eq!(again["results"][0]["status"], "duplicate");
    server.wait_for_lines(1);
    server.terminate();
    server.restart();
    let (_, after_restart) = server.batch(&body);
    assert_eq!(after_restart["results"][0]["status"], "duplicate", "the window survives a restart");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.lines().len(), 1);
}

/// Ids the server mints (every `/event` post, a batch event without one) are not
/// remembered: a window of a few ids still holds the client's id after many of them.
#[test]
fn minted_ids_do_not_push_client_ids_out_of_the_window() {
    let server = Server::start("[dedupe]\nmax_ids = 4");
    let id = "0192f3a0-7b1c-7d2e-8f3a-000000000002";
    let body = json!({"events": [{"id": id, "name": "edx.test.kept.sent"}]});
    assert_eq!(server.batch(&body).1["results"][0]["status"], "accepted");
    for n in 0..8 {
        let posted =
            server.post("/event").send_form(&[("event_type", "edx.test.minted"), ("event", &format!("{{\"n\": {n}}}")), ("page", "x")]);
        assert_eq!(posted.unwrap().status(), 200);
        let (_, reply) = server.batch(&json!({"events": [{"name": "edx.test.minted.too"}]}));
        assert_eq!(reply["results"][0]["status"], "accepted");
    }
    let (_, retry) = server.batch(&body);
    assert_eq!(retry["results"][0]["status"], "duplicate", "sixteen minted ids did not evict the client's");
    let lines = server.wait_for_lines(17);
    assert_eq!(lines.len(), 17);
    assert_eq!(lines.iter().filter(|l| l.contains(id)).count(), 1);
}

#[test]
fn health_readiness_and_metrics() {
    let server = Server::start("");
    assert_eq!(server.get("/healthz").call().unwrap().into_string().unwrap(), "ok");
    assert_eq!(server.get("/readyz").call().unwrap().status(), 200);
    server.batch(&json!({"events": [{"name": "edx.test.metrics.seen"}]}));
    server.wait_for_lines(1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let metrics = server.get("/metrics").call().unwrap().into_string().unwrap();
    for needle in [
        "tracking_events_received_total 1",
        "tracking_events_accepted_total 1",
        "tracking_sink_delivered_total{sink=\"root/tracking_logs/logger\"} 1",
        "tracking_sink_lag_records{sink=\"root/tracking_logs/logger\"} 0",
        "tracking_wal_bytes ",
        "tracking_http_request_duration_seconds_bucket{route=\"/v1/batch\",status=\"200\"",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
}

#[test]
fn security_origin_check_cors_and_rate_limit() {
    let server =
        Server::start("[security]\nallowed_origins = [\"https://apps.example.com\"]\n[limits]\nrate_per_second = 1\nrate_burst = 3");
    let body = json!({"events": [{"name": "edx.test.origin.checked"}]}).to_string();
    let (status, reply) =
        reply(server.post("/v1/batch").set("Cookie", "sessionid=s").set("Origin", "https://evil.example.com").send_string(&body));
    assert_eq!((status, reply["error"].as_str()), (403, Some("origin_not_allowed")));
    let ok = server.post("/v1/batch").set("Cookie", "sessionid=s").set("Origin", "https://apps.example.com").send_string(&body).unwrap();
    assert_eq!(ok.header("Access-Control-Allow-Origin"), Some("https://apps.example.com"));
    assert_eq!(ok.header("Access-Control-Allow-Credentials"), Some("true"));
    let preflight = ureq::request("OPTIONS", &format!("{}/v1/batch", server.url))
        .set("Origin", "https://apps.example.com")
        .set("Access-Control-Request-Method", "POST")
        .set("Access-Control-Request-Headers", "content-type")
        .call()
        .unwrap();
    assert_eq!(preflight.header("Access-Control-Allow-Origin"), Some("https://apps.example.com"));
    // The burst of 3 is spent by the requests above (1 refused + 1 accepted + this one).
    let mut limited = None;
    for _ in 0..5 {
        let (status, reply) = server.batch(&json!({"events": []}));
        if status == 429 {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.expect("the rate limit was never applied");
    assert_eq!(limited["error"], "rate_limited");
    let response = server.post("/v1/batch").send_string("{\"events\": []}");
    match response {
        Err(ureq::Error::Status(429, r)) => assert_eq!(r.header("Retry-After"), Some("1")),
        other => panic!("expected 429, got {other:?}"),
    }
}

#[test]
fn a_full_log_answers_503_with_retry_after_and_loses_nothing() {
    let server = Server::start("[wal]\nmax_bytes = 1");
    let id = "0192f3a0-7b1c-7d2e-8f3a-000000000002";
    let response = server.post("/v1/batch").send_string(&json!({"events": [{"id": id, "name": "edx.test.full.sent"}]}).to_string());
    match response {
        Err(ureq::Error::Status(503, r)) => {
            assert!(r.header("Retry-After").is_some());
            assert_eq!(r.into_json::<Value>().unwrap()["error"], "unavailable");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    let metrics = server.get("/metrics").call().unwrap().into_string().unwrap();
    assert!(metrics.contains("tracking_requests_unavailable_total 1"));
}

/// The rate limiter is the first thing a request meets, and its memory is a fixed
/// table: 100,000 distinct client addresses (through a trusted proxy) leave the
/// server's memory within the table's documented bound, and it still limits.
#[test]
fn a_hundred_thousand_client_addresses_stay_within_the_limiters_bound() {
    let server =
        Server::start("[security]\ntrusted_proxies = [\"127.0.0.1\"]\n[limits]\nrate_per_second = 1\nrate_burst = 1\nrate_clients = 16384");
    // Warm up allocator pools and worker buffers first.
    let send = |agent: &ureq::Agent, client: &str| {
        let r = agent
            .post(&format!("{}/v1/batch", server.url))
            .set("X-Forwarded-For", client)
            .set("Content-Type", "text/plain")
            .send_string("[]");
        match r {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        }
    };
    let agent = ureq::AgentBuilder::new().build();
    for n in 0..2000u32 {
        send(&agent, &std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string());
    }
    let before = server.rss_kib();
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let url = server.url.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let mut answered = [0u32; 2];
                for n in 0..25_000u32 {
                    // Distinct IPv6 /64s and IPv4 addresses, each seen once.
                    let client = if n % 2 == 0 {
                        format!("2001:db8:{t:x}:{n:x}::1")
                    } else {
                        std::net::Ipv4Addr::from(0x6400_0000 + t * 100_000 + n).to_string()
                    };
                    let r = agent
                        .post(&format!("{url}/v1/batch"))
                        .set("X-Forwarded-For", &client)
                        .set("Content-Type", "text/plain")
                        .send_string("[]");
                    let status = match r {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(code, _)) => code,
                        Err(e) => panic!("{e}"),
                    };
                    answered[usize::from(status == 429)] += 1;
                }
                answered
            })
        })
        .collect();
    let mut limited = 0;
    for t in threads {
        let [_, l] = t.join().unwrap();
        limited += l;
    }
    let after = server.rss_kib();
    assert_eq!(limited, 0, "every new client gets its burst");
    // The table (16,384 slots of 32 bytes) is allocated at start; allocator noise aside,
    // nothing grows with the number of clients.
    let growth = after.saturating_sub(before);
    assert!(growth < 8 * 1024, "resident memory grew {growth} KiB for 100,000 clients ({before} → {after} KiB)");
    // And it still limits a client that comes back at once.
    assert_eq!(send(&agent, "198.51.100.1"), 400, "first request: past the limiter, refused for its body");
    assert_eq!(send(&agent, "198.51.100.1"), 429);
    eprintln!("100,000 clients: resident memory {before} → {after} KiB");
}
