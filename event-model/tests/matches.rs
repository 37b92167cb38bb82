//! `assert_event_matches`: tolerances, nested strictness, lists, message format.

use event_model::testing::{assert_event_matches, event_differences, Capture, Tolerate};
use event_model::{json, Tracker};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn string_payload_is_decoded_on_both_sides() {
    let expected = json!({"event_type": "a", "event": {"x": 1, "y": [1, 2]}});
    let actual = json!({"event_type": "a", "event": "{\"y\": [1, 2], \"x\": 1}"});
    assert!(event_differences(&expected, &actual, Tolerate::default()).is_empty());
    let strict = event_differences(&expected, &actual, Tolerate { string_payload: false, ..Tolerate::lenient() });
    assert_eq!(strict, [r#"event: {"x":1,"y":[1,2]} != "{\"y\": [1, 2], \"x\": 1}" (expected != actual)"#]);
    // `data` is decoded when there is no `event`.
    assert!(event_differences(&json!({"data": {"a": 1}}), &json!({"data": "{\"a\": 1}"}), Tolerate::default()).is_empty());
}

#[test]
fn each_extra_fields_tolerance_applies_at_exactly_its_level() {
    let expected = json!({"name": "n", "context": {"c": 1, "deep": {"k": 1}}, "event": {"p": 1, "deep": {"k": 1}}});
    let actual = json!({
        "name": "n", "root_extra": 1,
        "context": {"c": 1, "context_extra": 1, "deep": {"k": 1, "deep_extra": 1}},
        "event": {"p": 1, "payload_extra": 1, "deep": {"k": 1, "deep_extra": 1}}
    });
    let deep = ["context.deep.deep_extra: only defined in actual", "event.deep.deep_extra: only defined in actual"];
    let diff = |t| event_differences(&expected, &actual, t);
    assert_eq!(diff(Tolerate::lenient()), deep);
    assert_eq!(diff(Tolerate::default()), [deep[0], deep[1], "event.payload_extra: only defined in actual"]);
    assert_eq!(
        diff(Tolerate::strict()),
        [
            "context.context_extra: only defined in actual",
            deep[0],
            deep[1],
            "event.payload_extra: only defined in actual",
            "root_extra: only defined in actual"
        ]
    );
    assert_eq!(
        diff(Tolerate { root_extra_fields: false, ..Tolerate::lenient() }),
        [deep[0], deep[1], "root_extra: only defined in actual"]
    );
    assert_eq!(
        diff(Tolerate { context_extra_fields: false, ..Tolerate::lenient() }),
        ["context.context_extra: only defined in actual", deep[0], deep[1]]
    );
}

#[test]
fn missing_values_and_lists_compared_whole() {
    let expected = json!({"context": {"course_id": "a"}, "event": {"list": [1, 2], "gone": true}});
    let actual = json!({"context": {"course_id": "b"}, "event": {"list": [1, 2, 3]}});
    assert_eq!(
        event_differences(&expected, &actual, Tolerate::default()),
        [
            r#"context.course_id: "a" != "b" (expected != actual)"#,
            "event.gone: not found in actual",
            "event.list: [1,2] != [1,2,3] (expected != actual)",
        ]
    );
    // A list holding an object with extra keys is still a different list.
    assert!(!event_differences(&json!({"event": {"l": [{"a": 1}]}}), &json!({"event": {"l": [{"a": 1, "b": 2}]}}), Tolerate::lenient())
        .is_empty());
}

#[test]
fn failure_message_format() {
    let result = std::panic::catch_unwind(|| {
        assert_event_matches(&json!({"context": {"course_id": "a"}, "z": 1}), &json!({"context": {"course_id": "b"}}), Tolerate::default())
    });
    let message = *result.unwrap_err().downcast::<String>().unwrap();
    assert!(message.starts_with(
        "Unexpected differences found in structs:\n\n* context.course_id: \"a\" != \"b\" (expected != actual)\n* z: not found in actual\n\nExpected:\n    {\n"
    ), "{message}");
    assert!(message.contains("\nActual:\n"));
    assert!(
        message
            .contains("Tolerating:\n    [\n      \"string_payload\",\n      \"root_extra_fields\",\n      \"context_extra_fields\"\n    ]"),
        "{message}"
    );
}

#[test]
fn capture_helpers() {
    let capture = Capture::new();
    let tracker = Arc::new(Tracker::new(Arc::new(capture.backend())));
    capture.assert_no_events_emitted();
    let emitter = tracker.clone();
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        emitter.emit("edx.test.one.happened", json!({"n": 1})).unwrap();
        emitter.emit("edx.test.two.happened", json!({"n": 2})).unwrap();
    });
    let found = capture.wait_for_events(1, Duration::from_secs(5), |e| e.name() == "edx.test.two.happened");
    handle.join().unwrap();
    assert_eq!(found[0].data().unwrap(), &json!({"n": 2}));
    capture.assert_events_match(
        &[json!({"name": "edx.test.one.happened", "data": {"n": 1}}), json!({"name": "edx.test.two.happened", "data": {"n": 2}})],
        Tolerate::default(),
    );
    let wrong = std::panic::catch_unwind(|| capture.assert_events_match(&[json!({"name": "x"})], Tolerate::default()));
    let message = *wrong.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("expected 1 events, captured 2"));
    assert!(message.contains(r#"event 0: name: "x" != "edx.test.one.happened" (expected != actual)"#));
    let timeout = std::panic::catch_unwind(|| capture.wait_for_events(3, Duration::from_millis(20), |_| true));
    assert!(timeout.is_err());
}
