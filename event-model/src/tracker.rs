//! Trackers: build events from the resolved context and send them to a backend;
//! a registry of named trackers with a default.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::Value;

use crate::context::{self, ContextError, ContextStack, ContextStore, DeferredContext, ThreadStore};
use crate::routing::{Backend, BackendError};
use crate::text::{Fields, Json};
use crate::Event;

/// The name of the default tracker.
pub const DEFAULT_TRACKER_NAME: &str = "default";

/// Why an event could not be emitted.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("no tracker named `{0}` is registered")]
    NoTracker(String),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Builds events from its contexts and sends them to its backend.
pub struct Tracker {
    backend: Arc<dyn Backend>,
    store: Arc<dyn ContextStore>,
}

impl Tracker {
    /// A tracker with per-thread contexts, as in the Python original.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self::with_store(backend, Arc::new(ThreadStore::new()))
    }

    /// A tracker keeping its contexts in `store` (see [`context`](crate::context)).
    pub fn with_store(backend: Arc<dyn Backend>, store: Arc<dyn ContextStore>) -> Self {
        Tracker { backend, store }
    }

    /// The backend events go to.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Emits an event named `name` (or `unknown`) with `data` (`Null` becomes `{}`),
    /// the resolved context and a fresh id; returns the event as sent. Outside a task
    /// scope a task-local tracker emits with an empty context (a background job).
    pub fn emit(&self, name: &str, data: Value) -> Result<Event, EmitError> {
        let context = match self.resolve_context() {
            Err(ContextError::NoTaskScope) => Fields::new(),
            other => other?,
        };
        let event = Event::new(name, Json::from_value(&data), context);
        self.backend.send(&event)?;
        Ok(event)
    }

    /// Sends an event built elsewhere (e.g. received from a browser).
    pub fn send(&self, event: &Event) -> Result<(), EmitError> {
        Ok(self.backend.send(event)?)
    }

    /// All entered contexts merged in entry order.
    pub fn resolve_context(&self) -> Result<Fields, ContextError> {
        self.with_stack(|s| s.resolve())
    }

    /// Enters a named context (a JSON object); re-entering replaces it in place.
    pub fn enter_context(&self, name: &str, context: Value) -> Result<(), ContextError> {
        let Value::Object(map) = context else { return Err(ContextError::NotAnObject) };
        let fields = Fields::from_map(&map);
        self.with_stack(|s| s.enter(name, fields))
    }

    /// Exits a named context; an unknown name is an error.
    pub fn exit_context(&self, name: &str) -> Result<(), ContextError> {
        self.with_stack(|s| s.exit(name))?
    }

    /// Enters a context until the returned guard is dropped.
    pub fn context(&self, name: &str, context: Value) -> Result<ContextGuard<'_>, ContextError> {
        self.enter_context(name, context)?;
        Ok(ContextGuard { tracker: self, name: name.to_owned() })
    }

    /// Enters a context given as members (already JSON text) until the guard is dropped.
    pub fn context_fields(&self, name: &str, context: Fields) -> Result<ContextGuard<'_>, ContextError> {
        self.with_stack(|s| s.enter(name, context))?;
        Ok(ContextGuard { tracker: self, name: name.to_owned() })
    }

    /// Enters a context whose members `build` makes when an event first needs them
    /// (once), until the guard is dropped: a middleware can enter a request's context
    /// on every request at no cost to the requests that emit nothing.
    pub fn context_deferred(&self, name: &str, build: DeferredContext) -> Result<ContextGuard<'_>, ContextError> {
        self.with_stack(|s| s.enter_deferred(name, build))?;
        Ok(ContextGuard { tracker: self, name: name.to_owned() })
    }

    fn with_stack<R>(&self, f: impl FnOnce(&mut ContextStack) -> R) -> Result<R, ContextError> {
        context::with_stack(&*self.store, f)
    }
}

/// Exits its context when dropped.
#[must_use = "the context is exited as soon as the guard is dropped"]
pub struct ContextGuard<'a> {
    tracker: &'a Tracker,
    name: String,
}

impl Drop for ContextGuard<'_> {
    fn drop(&mut self) {
        // The context may already have been exited by hand; nothing else can fail.
        let _ = self.tracker.exit_context(&self.name);
    }
}

fn registry() -> &'static RwLock<HashMap<String, Arc<Tracker>>> {
    static TRACKERS: OnceLock<RwLock<HashMap<String, Arc<Tracker>>>> = OnceLock::new();
    TRACKERS.get_or_init(Default::default)
}

/// Registers a tracker under `name` ([`DEFAULT_TRACKER_NAME`] for the default),
/// replacing any tracker of that name.
pub fn register_tracker(name: &str, tracker: Arc<Tracker>) {
    registry().write().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), tracker);
}

/// The tracker registered under `name`.
pub fn get_tracker(name: &str) -> Option<Arc<Tracker>> {
    registry().read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
}

/// The default tracker.
pub fn default_tracker() -> Option<Arc<Tracker>> {
    get_tracker(DEFAULT_TRACKER_NAME)
}

/// Emits on the default tracker.
pub fn emit(name: &str, data: Value) -> Result<Event, EmitError> {
    default_tracker().ok_or_else(|| EmitError::NoTracker(DEFAULT_TRACKER_NAME.to_owned()))?.emit(name, data)
}
