//! An in-memory backend and a capture helper that waits for events.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::matches::{event_differences, Tolerate};
use crate::routing::{Backend, BackendError};
use crate::Event;

/// Keeps every event it is sent; clones share the same list.
#[derive(Clone, Default)]
pub struct InMemoryBackend {
    inner: Arc<(Mutex<Vec<Event>>, Condvar)>,
}

impl InMemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events so far, in arrival order.
    pub fn events(&self) -> Vec<Event> {
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets the events so far.
    pub fn clear(&self) {
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Waits until the events so far satisfy `ready`, or `timeout` passes; returns
    /// the events either way.
    pub fn wait_until(&self, timeout: Duration, ready: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let (lock, signal) = &*self.inner;
        let mut events = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !ready(&events) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            events = signal.wait_timeout(events, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        events.clone()
    }
}

impl Backend for InMemoryBackend {
    fn send(&self, event: &Event) -> Result<(), BackendError> {
        let (lock, signal) = &*self.inner;
        lock.lock().unwrap_or_else(|p| p.into_inner()).push(event.clone());
        signal.notify_all();
        Ok(())
    }
}

/// Assertions over what a backend captured.
#[derive(Clone, Default)]
pub struct Capture {
    backend: InMemoryBackend,
}

impl Capture {
    pub fn new() -> Self {
        Self::default()
    }

    /// The backend to put in the routing tree.
    pub fn backend(&self) -> InMemoryBackend {
        self.backend.clone()
    }

    /// The events captured so far.
    pub fn events(&self) -> Vec<Event> {
        self.backend.events()
    }

    /// Panics if anything was captured.
    #[track_caller]
    pub fn assert_no_events_emitted(&self) {
        let events = self.events();
        assert!(
            events.is_empty(),
            "expected no events, got {}: {:?}",
            events.len(),
            events.iter().map(|e| e.name().into_owned()).collect::<Vec<_>>()
        );
    }

    /// Waits up to `timeout` for `count` events that satisfy `predicate` and returns
    /// them; panics on timeout.
    #[track_caller]
    pub fn wait_for_events(&self, count: usize, timeout: Duration, predicate: impl Fn(&Event) -> bool) -> Vec<Event> {
        let matching = |events: &[Event]| events.iter().filter(|e| predicate(e)).count() >= count;
        let events = self.backend.wait_until(timeout, matching);
        let found: Vec<Event> = events.into_iter().filter(|e| predicate(e)).collect();
        assert!(found.len() >= count, "waited {timeout:?} for {count} matching events, got {}", found.len());
        found
    }

    /// Asserts that the captured events match `expected`, in order and in number.
    #[track_caller]
    pub fn assert_events_match(&self, expected: &[Value], tolerate: Tolerate) {
        let events = self.events();
        let mut problems = Vec::new();
        if events.len() != expected.len() {
            problems.push(format!("expected {} events, captured {}", expected.len(), events.len()));
        }
        for (i, (e, a)) in expected.iter().zip(&events).enumerate() {
            for d in event_differences(e, &a.to_value(), tolerate) {
                problems.push(format!("event {i}: {d}"));
            }
        }
        assert!(problems.is_empty(), "captured events do not match:\n{}", problems.join("\n"));
    }
}
