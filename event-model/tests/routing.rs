//! The routing tree: copies per branch, failure isolation, counters, TOML configuration.

use std::sync::{Arc, Mutex};

use event_model::config::{ConfigError, RoutingConfig};
use event_model::processor::{processor_fn, ProcessError, Verdict};
use event_model::routing::{Backend, BackendError, Outcome, Router};
use event_model::testing::InMemoryBackend;
use event_model::{json, Event};

struct Failing;
impl Backend for Failing {
    fn send(&self, _: &Event) -> Result<(), BackendError> {
        Err(BackendError("disk on fire".into()))
    }
}

/// Records the order backends are called in.
struct Recorder(&'static str, Arc<Mutex<Vec<&'static str>>>);
impl Backend for Recorder {
    fn send(&self, _: &Event) -> Result<(), BackendError> {
        self.1.lock().unwrap().push(self.0);
        Ok(())
    }
}

fn sample() -> Event {
    Event::new("edx.test.routing.checked", json!({"v": 1}), json!({"course_id": "c"}).as_object().unwrap().clone())
}

#[test]
fn each_branch_gets_its_own_copy() {
    let changed = InMemoryBackend::new();
    let untouched = InMemoryBackend::new();
    let mutate = processor_fn("mutate", |e: &mut Event| {
        e.fields_mut().insert("data", event_model::Json::from_value(&json!({"v": "changed"})));
        e.context_mut().clear();
        Ok(Verdict::Keep)
    });
    let router = Router::builder()
        .backend("a_changes", Router::builder().path("root/a").processor(mutate).backend("out", changed.clone()).build())
        .backend("b_plain", Router::builder().path("root/b").backend("out", untouched.clone()).build())
        .build();
    let original = sample();
    router.send(&original).unwrap();
    assert_eq!(changed.events()[0].data().unwrap(), &json!({"v": "changed"}));
    assert_eq!(untouched.events(), vec![original.clone()], "a processor in one branch changed another branch's event");
}

#[test]
fn a_failing_backend_does_not_stop_its_siblings() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let router = Router::builder()
        .backend("c_last", Recorder("c", calls.clone()))
        .backend("a_first", Recorder("a", calls.clone()))
        .backend("b_failing", Failing)
        .build();
    router.send(&sample()).unwrap();
    router.send(&sample()).unwrap();
    assert_eq!(*calls.lock().unwrap(), ["a", "c", "a", "c"], "backends run in sorted-name order, past the failure");
    assert_eq!(router.counters().get("b_failing", Outcome::BackendError, "error"), 2);
}

#[test]
fn a_failing_processor_is_counted_and_the_chain_goes_on() {
    let out = InMemoryBackend::new();
    let router = Router::builder()
        .processor(processor_fn("broken", |_e: &mut Event| Err(ProcessError("bug".into()))))
        .processor(processor_fn("tag", |e: &mut Event| {
            e.context_mut().insert("tagged", event_model::Json::TRUE);
            Ok(Verdict::Keep)
        }))
        .backend("out", out.clone())
        .build();
    router.send(&sample()).unwrap();
    assert_eq!(out.events()[0].context()["tagged"], json!(true));
    assert_eq!(router.counters().get("broken", Outcome::ProcessorError, "error"), 1);
}

const CONFIG: &str = r#"
processors = [{ type = "scrubber" }]

[backends.tracking_logs]
processors = [
  { type = "internal_events" },
  { type = "name_validator", mode = "reject", accept_legacy = true },
  { type = "legacy_field_mapping" },
]
[backends.tracking_logs.backends.logger]
type = "memory"
label = "research"

[backends.segment]
processors = [{ type = "name_whitelist", names = ["edx.bi.user.account.registered"] }, { type = "google_analytics" }]
[backends.segment.backends.segment]
type = "memory"
"#;

#[test]
fn routing_tree_from_toml() {
    let config = RoutingConfig::from_toml(CONFIG).unwrap();
    let sinks: Vec<_> = config.sinks().iter().map(|s| s.path.clone()).collect();
    assert_eq!(sinks, ["root/segment/segment", "root/tracking_logs/logger"]);

    let mut built = std::collections::BTreeMap::new();
    let router = config
        .build(&mut |spec| {
            assert_eq!(spec.kind, "memory");
            let sink = InMemoryBackend::new();
            built.insert(spec.path.clone(), sink.clone());
            Ok(Arc::new(sink) as Arc<dyn Backend>)
        })
        .unwrap();
    for name in ["edx.bi.user.account.registered", "edx.video.played", "Bad Name!"] {
        router.send(&Event::new(name, json!({"password": "p"}), event_model::Fields::new())).unwrap();
    }
    let log = built["root/tracking_logs/logger"].events();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].to_value()["event_type"], json!("edx.video.played"));
    assert_eq!(log[0].to_value()["event"], json!({"password": "********"}));
    let segment = built["root/segment/segment"].events();
    assert_eq!(segment.len(), 1);
    assert_eq!(segment[0].name(), "edx.bi.user.account.registered");
    assert_eq!(segment[0].to_value()["nonInteraction"], json!(1));
    let counters = router.counters();
    assert_eq!(counters.get("internal_events", Outcome::Dropped, "internal_event"), 1);
    assert_eq!(counters.get("name_validator", Outcome::Dropped, "name_bad_part"), 1);
    assert_eq!(counters.get("name_allowlist", Outcome::Dropped, "name_not_allowed"), 2);
}

#[test]
fn bad_configurations_have_clear_errors() {
    let err = |text: &str| match RoutingConfig::from_toml(text)
        .and_then(|c| c.build(&mut |_| Ok(Arc::new(InMemoryBackend::new()) as Arc<dyn Backend>)))
    {
        Err(e) => e.to_string(),
        Ok(_) => panic!("configuration accepted: {text}"),
    };
    assert!(err(r#"processors = [{ type = "teleport" }]"#).contains("unknown variant `teleport`"));
    assert!(err(r#"processors = [{ type = "size_limit", max_bytez = 3 }]"#).contains("unknown field `max_bytez`"));
    assert!(err(r#"processors = [{ type = "regex_filter", mode = "allow", patterns = ["("] }]"#).contains("invalid regular expression `(`"));
    assert!(err(r#"processors = [{ type = "regex_filter", mode = "maybe", patterns = [] }]"#).contains("unknown variant `maybe`"));
    assert!(err("[backends.a]\nprocesors = []").contains("unknown keys [\"procesors\"]"));
    assert!(err("[backends.a]\ntype = \"x\"\nprocessors = [{ type = \"scrubber\" }]").contains("a sink has no `processors`"));
    let unknown_sink = RoutingConfig::from_toml("[backends.a]\ntype = \"nowhere\"")
        .unwrap()
        .build(&mut |spec| Err(ConfigError::UnknownSink { branch: spec.path.clone(), kind: spec.kind.to_owned() }))
        .err()
        .unwrap();
    assert_eq!(unknown_sink.to_string(), "backend `root/a`: unknown sink type `nowhere`");
}

#[test]
fn pipelines_carry_the_processors_of_every_branch_on_the_path() {
    let config = RoutingConfig::from_toml(
        r#"
processors = [{ type = "scrubber" }]
[backends.logs]
processors = [{ type = "event_types", keep = ["tracking_log"] }, { type = "legacy_field_mapping" }]
[backends.logs.backends.file]
type = "tracking_log"
[backends.everything]
type = "memory"
"#,
    )
    .unwrap();
    let counters = event_model::routing::Counters::new();
    let pipelines = config.pipelines(&counters).unwrap();
    let paths: Vec<_> = pipelines.iter().map(|p| p.spec.path.as_str()).collect();
    assert_eq!(paths, ["root/everything", "root/logs/file"]);
    let mut tracked = Event::new("edx.ui.button.clicked", json!({"password": "x"}), event_model::Fields::new());
    tracked.fields_mut().insert("type", event_model::Json::str("track"));
    let server = Event::new("edx.course.enrollment.activated", json!({"password": "x"}), event_model::Fields::new());

    let everything = &pipelines[0].chain;
    assert_eq!(everything.process(tracked.clone()).unwrap().data().unwrap(), &json!({"password": "********"}));
    let file = &pipelines[1].chain;
    assert_eq!(file.process(tracked).unwrap_err().reason, "event_type_not_routed");
    let line = event_model::legacy::to_line(&file.process(server).unwrap());
    assert!(line.contains(r#""event": {"password": "********"}"#), "{line}");
    assert_eq!(counters.get("event_types", Outcome::Dropped, "event_type_not_routed"), 1);
}
