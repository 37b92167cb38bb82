//! Each built-in processor, and that every drop is counted.

use event_model::processor::Verdict;
use event_model::processors::*;
use event_model::routing::{Outcome, Router};
use event_model::testing::InMemoryBackend;
use event_model::{json, Event, Json, Value};

fn event(name: &str, data: Value, context: Value) -> Event {
    Event::new(name, data, context.as_object().cloned().unwrap_or_default())
}

/// Routes `events` through `processor` and returns what came out, and the router.
fn run(processor: impl event_model::processor::Processor + 'static, events: &[Event]) -> (Vec<Event>, Router) {
    let out = InMemoryBackend::new();
    let router = Router::builder().processor(processor).backend("out", out.clone()).build();
    for e in events {
        use event_model::routing::Backend;
        router.send(e).unwrap();
    }
    (out.events(), router)
}

#[test]
fn name_validator_modes() {
    let names = ["edx.course.enrollment.activated", "seq_goto", "Bad Name"];
    let events: Vec<_> = names.iter().map(|n| event(n, Value::Null, json!({}))).collect();

    let (kept, router) = run(NameValidator::new(NameMode::Reject, false), &events);
    assert_eq!(kept.iter().map(Event::name).collect::<Vec<_>>(), ["edx.course.enrollment.activated"]);
    assert_eq!(router.counters().get("name_validator", Outcome::Dropped, "name_too_few_parts"), 1);
    assert_eq!(router.counters().get("name_validator", Outcome::Dropped, "name_bad_part"), 1);
    assert_eq!(router.counters().total(Outcome::Dropped), 2);

    let (kept, _) = run(NameValidator::new(NameMode::Reject, true), &events);
    assert_eq!(kept.len(), 2, "legacy names pass when accepted");

    let (kept, router) = run(NameValidator::new(NameMode::Warn, false), &events);
    assert_eq!(kept.len(), 3);
    assert_eq!(router.counters().total(Outcome::Warned), 2);

    let (kept, router) = run(NameValidator::new(NameMode::Off, false), &events);
    assert_eq!(kept.len(), 3);
    assert!(router.counters().snapshot().is_empty());
}

#[test]
fn allowlist_and_regex_filters() {
    let events: Vec<_> =
        ["edx.bi.user.registered", "edx.video.played", "xedx.bi.thing"].iter().map(|n| event(n, Value::Null, json!({}))).collect();
    let (kept, router) = run(NameAllowlist::new(["edx.video.played"]), &events);
    assert_eq!(kept.iter().map(Event::name).collect::<Vec<_>>(), ["edx.video.played"]);
    assert_eq!(router.counters().get("name_allowlist", Outcome::Dropped, "name_not_allowed"), 2);

    // Anchored at the start: `xedx.bi.thing` does not match `edx\.bi\.`.
    let (kept, router) = run(RegexFilter::new(FilterMode::Block, [r"edx\.bi\."]).unwrap(), &events);
    assert_eq!(kept.iter().map(Event::name).collect::<Vec<_>>(), ["edx.video.played", "xedx.bi.thing"]);
    assert_eq!(router.counters().get("regex_filter", Outcome::Dropped, "name_blocked"), 1);

    let (kept, _) = run(RegexFilter::new(FilterMode::Allow, [r"edx\.video\.", "nomatch"]).unwrap(), &events);
    assert_eq!(kept.iter().map(Event::name).collect::<Vec<_>>(), ["edx.video.played"]);

    let err = RegexFilter::new(FilterMode::Allow, ["ok", "(unclosed"]).unwrap_err();
    assert_eq!(err.pattern, "(unclosed");
}

#[test]
fn internal_events() {
    let events: Vec<_> = ["edx.bi.user.account.registered", "edx.video.played"].iter().map(|n| event(n, Value::Null, json!({}))).collect();
    let (kept, router) = run(InternalEvents::default(), &events);
    assert_eq!(kept.iter().map(Event::name).collect::<Vec<_>>(), ["edx.video.played"]);
    assert_eq!(router.counters().get("internal_events", Outcome::Dropped, "internal_event"), 1);
    let (kept, _) = run(InternalEvents { prefix: "edx.bi.".into(), mode: InternalMode::Only }, &events);
    assert_eq!(kept.iter().map(Event::name).collect::<Vec<_>>(), ["edx.bi.user.account.registered"]);
}

#[test]
fn size_limit_rejects_with_reason_and_never_truncates() {
    let small = event("a.b.c", json!({"text": "x".repeat(100)}), json!({}));
    let exact_len = event_model::legacy::serialized_len(&small);
    let (kept, router) = run(SizeLimit::new(exact_len), std::slice::from_ref(&small));
    assert_eq!(kept, vec![small.clone()], "an event exactly at the limit passes untouched");
    assert!(router.counters().snapshot().is_empty());

    let big = event("a.b.c", json!({"text": "é".repeat(10_000)}), json!({}));
    // Non-ASCII is escaped as \u00e9: 6 bytes a character once serialized.
    assert!(event_model::legacy::serialized_len(&big) > 60_000);
    let (kept, router) = run(SizeLimit::default(), &[big.clone(), small]);
    assert_eq!(kept.len(), 1);
    assert_eq!(router.counters().get("size_limit", Outcome::Dropped, "size_limit"), 1);
    let mut copy = big;
    match SizeLimit::default().process(&mut copy).unwrap() {
        Verdict::Drop(why) => assert!(why.detail.contains("over the limit of 50000"), "{}", why.detail),
        other => panic!("expected a drop, got {other:?}"),
    }
    use event_model::processor::Processor;
}

#[test]
fn scrubber_masks_passwords_and_cards_at_every_depth() {
    let e = event(
        "edx.user.settings.changed",
        json!({
            "password": "hunter2", "Old_Password": "x", "new_password2": null,
            "form": {"fields": [{"newpassword": "y", "card": "4111 1111 1111 1111", "note": "pay with 5555555555554444 now"}]},
            "amount": 4111111111111111u64, "timestamp_ms": 1700000000004u64, "order": "4111111111111112",
            "pin": "1234"
        }),
        json!({}),
    );
    let (kept, _) = run(Scrubber::new(vec!["pin".into()]), &[e]);
    assert_eq!(
        kept[0].data().unwrap(),
        &json!({
            "password": "********", "Old_Password": "********", "new_password2": null,
            "form": {"fields": [{"newpassword": "********", "card": "********", "note": "pay with ******** now"}]},
            "amount": "********", "timestamp_ms": 1700000000004u64, "order": "4111111111111112",
            "pin": "********"
        })
    );
}

#[test]
fn google_analytics_adds_label_and_non_interaction() {
    let with_course = event("a.b.c", Value::Null, json!({"course_id": "course-v1:edX+DemoX+Demo"}));
    let without = event("a.b.c", Value::Null, json!({}));
    let (kept, _) = run(GoogleAnalytics, &[with_course, without]);
    assert_eq!(kept[0].to_value()["label"], json!("course-v1:edX+DemoX+Demo"));
    assert_eq!(kept[0].to_value()["nonInteraction"], json!(1));
    assert!(kept[1].get("label").is_none());
    assert_eq!(kept[1].to_value()["nonInteraction"], json!(1));
}

#[test]
fn course_context_from_page_url() {
    let lms = event("a.b.c", Value::Null, json!({"page": "https://lms.example.com/courses/course-v1:MITx+6.002x+2026/courseware"}));
    let mfe = event("a.b.c", Value::Null, json!({"page": "https://apps.example.com/learning/course/course-v1:edX+DemoX+Demo/home"}));
    let set = event("a.b.c", Value::Null, json!({"page": "/courses/course-v1:A+B+C/", "course_id": "course-v1:X+Y+Z"}));
    let none = event("a.b.c", Value::Null, json!({"page": "/dashboard"}));
    let (kept, _) = run(CourseContextFromUrl::default(), &[lms, mfe, set, none]);
    let pick = |e: &Event| (e.context().get("course_id").map(Json::to_value), e.context().get("org_id").map(Json::to_value));
    assert_eq!(pick(&kept[0]), (Some(json!("course-v1:MITx+6.002x+2026")), Some(json!("MITx"))));
    assert_eq!(pick(&kept[1]), (Some(json!("course-v1:edX+DemoX+Demo")), Some(json!("edX"))));
    assert_eq!(pick(&kept[2]), (Some(json!("course-v1:X+Y+Z")), None), "an existing course_id wins");
    assert_eq!(pick(&kept[3]), (None, None));
}

#[test]
fn legacy_mapping_as_a_processor() {
    let e = event("edx.test.a.b", json!({"k": "v"}), json!({"username": "u", "event_source": "browser", "page": "/p"}));
    let (kept, _) = run(LegacyFieldMapping, &[e]);
    let map = kept[0].to_value();
    assert_eq!(map["event"], json!(r#"{"k": "v"}"#));
    assert_eq!(map["page"], json!("/p"));
    assert_eq!(map["username"], json!("u"));
}
