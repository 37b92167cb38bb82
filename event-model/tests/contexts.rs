//! Trackers and their context stores.

use std::sync::Arc;
use std::time::Duration;

use event_model::context::{task_scope, ContextError, TaskStore, TrackerStore};
use event_model::testing::InMemoryBackend;
use event_model::{json, register_tracker, Tracker, Value};

fn tracker_with(store: Arc<dyn event_model::context::ContextStore>) -> (Tracker, InMemoryBackend) {
    let memory = InMemoryBackend::new();
    (Tracker::with_store(Arc::new(memory.clone()), store), memory)
}

#[test]
fn resolved_context_merges_in_entry_order() {
    let (tracker, memory) = tracker_with(Arc::new(TrackerStore::new()));
    tracker.enter_context("outer", json!({"a": 1, "shared": "outer"})).unwrap();
    {
        let _inner = tracker.context("inner", json!({"b": 2, "shared": "inner"})).unwrap();
        tracker.emit("edx.test.event.emitted", json!({"n": 1})).unwrap();
    }
    tracker.emit("edx.test.event.emitted", Value::Null).unwrap();
    let events = memory.events();
    assert_eq!(events[0].context().to_value(), json!({"a": 1, "shared": "inner", "b": 2}));
    assert_eq!(events[1].context().to_value(), json!({"a": 1, "shared": "outer"}), "guard exited `inner`");
    assert_eq!(events[1].data().unwrap(), &json!({}));
}

#[test]
fn reentering_keeps_position_and_unknown_exit_fails() {
    let (tracker, _) = tracker_with(Arc::new(TrackerStore::new()));
    tracker.enter_context("first", json!({"k": "first"})).unwrap();
    tracker.enter_context("second", json!({"k": "second"})).unwrap();
    tracker.enter_context("first", json!({"k": "first again"})).unwrap();
    assert_eq!(tracker.resolve_context().unwrap()["k"], json!("second"));
    tracker.exit_context("second").unwrap();
    assert_eq!(tracker.resolve_context().unwrap()["k"], json!("first again"));
    assert_eq!(tracker.exit_context("never"), Err(ContextError::UnknownContext("never".into())));
    assert_eq!(tracker.enter_context("bad", json!([1])), Err(ContextError::NotAnObject));
}

#[test]
fn default_tracker_and_module_level_emit() {
    let memory = InMemoryBackend::new();
    register_tracker("default", Arc::new(Tracker::new(Arc::new(memory.clone()))));
    let sent = event_model::emit("edx.test.default.emitted", json!({"x": true})).unwrap();
    assert_eq!(memory.events(), vec![sent]);
    assert!(event_model::get_tracker("nope").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_local_contexts_do_not_leak_between_tasks() {
    let (tracker, memory) = tracker_with(Arc::new(TaskStore::new()));
    let tracker = Arc::new(tracker);
    let mut handles = Vec::new();
    for task in 0..20 {
        let tracker = tracker.clone();
        handles.push(tokio::spawn(task_scope(async move {
            tracker.enter_context("request", json!({"task": task})).unwrap();
            // Yield so that tasks interleave on the same worker threads.
            tokio::time::sleep(Duration::from_millis(5)).await;
            tracker.emit("edx.test.task.emitted", json!({"task": task})).unwrap();
            tokio::task::yield_now().await;
            tracker.emit("edx.test.task.emitted", json!({"task": task})).unwrap();
        })));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let events = memory.events();
    assert_eq!(events.len(), 40);
    for event in &events {
        assert_eq!(event.context()["task"], event.data().unwrap().to_value()["task"], "context of another task leaked in");
        assert_eq!(event.context().len(), 1);
    }
    // Outside any task scope there is no context to use.
    assert_eq!(tracker.enter_context("x", json!({})), Err(ContextError::NoTaskScope));
    let spawned = tokio::spawn({
        let tracker = tracker.clone();
        async move { tracker.resolve_context() }
    });
    assert_eq!(spawned.await.unwrap(), Err(ContextError::NoTaskScope));
}
