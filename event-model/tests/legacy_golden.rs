//! Tracking-log lines compared byte for byte with lines written by Python's json.dumps
//! (fixtures/legacy_golden.py generates them).

use event_model::processors::LegacyFieldMapping;
use event_model::{legacy, Event, Value};

#[test]
fn lines_match_the_python_writer() {
    let fixtures = include_str!("fixtures/legacy_golden.jsonl");
    let mut checked = 0;
    for (n, line) in fixtures.lines().enumerate() {
        let case: Value = serde_json::from_str(line).unwrap();
        let mut event = Event::from_value(case["input"].clone()).unwrap();
        LegacyFieldMapping::map(&mut event);
        assert_eq!(legacy::to_line(&event), case["line"].as_str().unwrap(), "case {n}");
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn legacy_key_order() {
    let mut event = Event::from_value(serde_json::json!({
        "name": "a.b.c", "timestamp": "2026-11-22T10:01:02Z", "data": {"x": 1},
        "context": {"page": "/p", "username": "u", "event_source": "browser"},
        "id": "0192f3a0-7b1c-7d2e-8f3a-0123456789ab"
    }))
    .unwrap();
    LegacyFieldMapping::map(&mut event);
    let keys: Vec<_> = event.fields().keys().collect();
    assert_eq!(
        keys,
        [
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
            "id"
        ]
    );
    // Browser data becomes a JSON string written the Python way.
    assert_eq!(event.to_value()["event"], Value::String(r#"{"x": 1}"#.into()));
    assert_eq!(event.to_value()["context"], serde_json::json!({}));
}

#[test]
fn server_event_keeps_object_payload_and_context_overrides() {
    let mut event = Event::from_value(serde_json::json!({
        "name": "edx.grades.problem.submitted", "timestamp": "2026-11-22T10:01:02.5Z", "data": {"x": 1},
        "context": {"timestamp": "2020-01-01T00:00:00+00:00", "event_type": "legacy_type", "client_id": "GA1.2"}
    }))
    .unwrap();
    LegacyFieldMapping::map(&mut event);
    let map = event.to_value();
    assert_eq!(map["event"], serde_json::json!({"x": 1}));
    assert_eq!(map["time"], "2020-01-01T00:00:00+00:00");
    assert_eq!(map["event_type"], "legacy_type");
    assert_eq!(map["event_source"], "server");
    assert_eq!(map["page"], Value::Null);
    assert_eq!(map["username"], "");
    assert_eq!(map["context"], serde_json::json!({}), "client_id, timestamp and event_type leave the context");
}
