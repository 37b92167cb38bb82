//! `/event` against the Open edX LMS, request for request: each request of the golden
//! file (written by the Python stack itself, see
//! `event-model/tests/fixtures/lms_requests.py`) is sent as raw bytes over a real
//! socket, and the tracking-log line written here is compared byte for byte with the
//! line the LMS writes. Only the time differs (each stack's own clock), and the event
//! id, which this server adds as the line's last member.
//!
//! Where the LMS answers 500 or loses the event (a line over its limit, a body type
//! it does not read), the fixture names the deliberate answer given here instead.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use base64::Engine as _;
use common::{jwt, Server, JWT_SECRET};
use serde_json::{json, Value};

/// The LMS's `SECRET_KEY` in the fixtures: with it as the session key, session ids match.
const LMS_SECRET_KEY: &str = "lms-secret-key-of-the-parity-fixtures";

#[test]
fn event_lines_match_the_lms_request_for_request() {
    let fixtures = include_str!("../../event-model/tests/fixtures/lms_requests.jsonl");
    let server =
        Server::start_with_env("[security]\nallowed_origins = [\"https://lms.example.com\"]", &[("TRACKING_SESSION_KEY", LMS_SECRET_KEY)]);
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut written = 0;
    let mut classes = std::collections::BTreeMap::<u64, usize>::new();
    for line in fixtures.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let name = case["case"].as_str().unwrap();
        *classes.entry(case["class"].as_u64().unwrap()).or_default() += 1;
        let (status, body) = send(&address, &case);
        let lms_line = case["line"].as_str();
        let ours = &case["ours"];
        if !ours.is_null() {
            // A deliberate difference: our answer, and no line unless we accept it.
            assert_eq!(status, ours["status"].as_u64().unwrap() as u16, "{name}: {body}");
            if let Some(error) = ours["error"].as_str() {
                assert_eq!(serde_json::from_str::<Value>(&body).map(|b| b["error"].clone()).ok(), Some(json!(error)), "{name}: {body}");
            }
            if status == 200 {
                written += 1;
                assert_eq!(server.wait_for_lines(written).len(), written, "{name}");
            }
            continue;
        }
        match lms_line {
            Some(want) => {
                assert_eq!(status, 200, "{name}: {body}");
                written += 1;
                let lines = server.wait_for_lines(written);
                assert_eq!(lines.len(), written, "{name}: no line written");
                assert_eq!(comparable(&lines[written - 1], true), comparable(want, false), "{name}");
            }
            None => {
                assert_eq!(case["status"], 400, "{name}: the fixture expects a line or a 400");
                assert_eq!(status, 400, "{name}: {body}");
            }
        }
    }
    // Nothing was written for the refused requests: one more line closes the file.
    let (status, _) =
        send(&address, &json!({"request": {"method": "GET", "target": "/event?event_type=last", "headers": [["Host", "x"]], "body": ""}}));
    assert_eq!(status, 200);
    let lines = server.wait_for_lines(written + 1);
    assert_eq!(lines.len(), written + 1);
    assert!(lines[written].contains("\"event_type\": \"last\""));
    assert!((1..=9).all(|c| classes.get(&c).is_some_and(|n| *n > 0)), "every class has cases: {classes:?}");
}

/// Sends a fixture's request over its own connection; the status and the body.
fn send(address: &str, case: &Value) -> (u16, String) {
    let request = &case["request"];
    let body = base64::engine::general_purpose::STANDARD.decode(request["body"].as_str().unwrap()).unwrap();
    let mut raw = format!("{} {} HTTP/1.1\r\n", request["method"].as_str().unwrap(), request["target"].as_str().unwrap()).into_bytes();
    for header in request["headers"].as_array().unwrap() {
        raw.extend(latin1_bytes(header[0].as_str().unwrap()));
        raw.extend(b": ");
        raw.extend(latin1_bytes(header[1].as_str().unwrap()));
        raw.extend(b"\r\n");
    }
    if let Some(user) = case.get("user").filter(|u| !u.is_null()) {
        let claims = json!({"user_id": user["id"], "preferred_username": user["username"], "exp": common::in_an_hour()});
        raw.extend(format!("Authorization: JWT {}\r\n", jwt(&claims, JWT_SECRET)).bytes());
    }
    raw.extend(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()).bytes());
    raw.extend(&body);
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    stream.write_all(&raw).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

fn latin1_bytes(s: &str) -> Vec<u8> {
    s.chars().map(|c| u8::try_from(u32::from(c)).expect("a header value of one byte per character")).collect()
}

/// The line with its `time` value replaced (checked to be what Python's `isoformat`
/// writes) and, for ours, the trailing event id removed (checked to be a UUID).
fn comparable(line: &str, ours: bool) -> String {
    let key = "\"time\": \"";
    let at = line.find(key).expect("a time member") + key.len();
    let end = at + line[at..].find('"').unwrap();
    let time = &line[at..end];
    assert!(
        time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).is_ok() && time.ends_with("+00:00"),
        "{time}"
    );
    let mut out = format!("{}<time>{}", &line[..at], &line[end..]);
    if ours {
        let id_key = ", \"id\": \"";
        let id_at = out.rfind(id_key).expect("the event id, last");
        let id = out[id_at + id_key.len()..].trim_end_matches("\"}");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        out = format!("{}}}", &out[..id_at]);
    }
    out
}
