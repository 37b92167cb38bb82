//! Named nested contexts and where they are stored: per tracker, per thread, or per
//! tokio task.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::text::Fields;

/// A context operation that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("no context named `{0}` has been entered")]
    UnknownContext(String),
    #[error("a context must be a JSON object")]
    NotAnObject,
    #[error("task-local contexts are used outside a task scope (wrap the task in `context::task_scope`)")]
    NoTaskScope,
}

/// Builds a context's members when an event first needs them.
pub type DeferredContext = Arc<dyn Fn() -> Fields + Send + Sync>;

/// One entered context: its members, or how to build them.
#[derive(Clone)]
enum Entry {
    Ready(Fields),
    // Entered on every request by a middleware, but needed only when a handler emits.
    Deferred(DeferredContext),
}

impl Entry {
    fn fields(&mut self) -> &Fields {
        if let Entry::Deferred(build) = self {
            *self = Entry::Ready(build());
        }
        match self {
            Entry::Ready(fields) => fields,
            Entry::Deferred(_) => unreachable!("a deferred context was just built"),
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Ready(fields) => fields.fmt(f),
            Entry::Deferred(_) => f.write_str("<deferred>"),
        }
    }
}

/// The named contexts entered so far, in entry order, and their merge (kept until
/// the next enter or exit: events are emitted far more often than contexts change).
#[derive(Debug, Clone, Default)]
pub struct ContextStack {
    entries: Vec<(String, Entry)>,
    resolved: Option<Fields>,
}

impl ContextStack {
    /// An empty stack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Enters `name`. Re-entering a name replaces its value and keeps its position.
    pub fn enter(&mut self, name: &str, context: Fields) {
        self.put(name, Entry::Ready(context));
    }

    /// Enters `name` with members that `build` makes at the first [`resolve`](Self::resolve)
    /// that needs them, once; nothing is built if no event is emitted meanwhile.
    pub fn enter_deferred(&mut self, name: &str, build: DeferredContext) {
        self.put(name, Entry::Deferred(build));
    }

    fn put(&mut self, name: &str, entry: Entry) {
        self.resolved = None;
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some((_, slot)) => *slot = entry,
            None => self.entries.push((name.to_owned(), entry)),
        }
    }

    /// Exits `name`; exiting a name that was never entered is an error. A deferred
    /// context that nothing resolved is dropped unbuilt.
    pub fn exit(&mut self, name: &str) -> Result<(), ContextError> {
        let at = self.entries.iter().position(|(n, _)| n == name).ok_or_else(|| ContextError::UnknownContext(name.to_owned()))?;
        self.resolved = None;
        self.entries.remove(at);
        Ok(())
    }

    /// All entered contexts merged in entry order; later keys win (keeping the place
    /// where a key first appeared, as Python's `dict.update` does).
    pub fn resolve(&mut self) -> Fields {
        if let Some(resolved) = &self.resolved {
            return resolved.clone();
        }
        let mut capacity = 0;
        for (_, context) in &mut self.entries {
            capacity += context.fields().len();
        }
        let mut merged = Fields::with_capacity(capacity);
        for (_, context) in &mut self.entries {
            merged.update(context.fields());
        }
        self.resolved = Some(merged.clone());
        merged
    }

    /// The names entered, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// Whether nothing is entered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Where a tracker keeps its contexts.
pub trait ContextStore: Send + Sync {
    /// Runs `f` on this store's stack for the current thread or task.
    fn with_stack(&self, f: &mut dyn FnMut(&mut ContextStack)) -> Result<(), ContextError>;
}

/// Runs `f` on a store's stack and returns its result.
pub(crate) fn with_stack<R>(store: &dyn ContextStore, f: impl FnOnce(&mut ContextStack) -> R) -> Result<R, ContextError> {
    let mut f = Some(f);
    let mut out = None;
    store.with_stack(&mut |stack| out = f.take().map(|f| f(stack)))?;
    Ok(out.expect("ContextStore::with_stack must call its closure"))
}

/// One stack shared by every thread and task using the tracker.
#[derive(Debug, Default)]
pub struct TrackerStore(Mutex<ContextStack>);

impl TrackerStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl ContextStore for TrackerStore {
    fn with_stack(&self, f: &mut dyn FnMut(&mut ContextStack)) -> Result<(), ContextError> {
        let mut stack = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut stack);
        Ok(())
    }
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

fn next_store_id() -> u64 {
    NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    static THREAD_STACKS: RefCell<HashMap<u64, ContextStack>> = RefCell::new(HashMap::new());
}

/// A stack per thread, as the Python original keeps it.
#[derive(Debug)]
pub struct ThreadStore {
    id: u64,
}

impl ThreadStore {
    pub fn new() -> Self {
        ThreadStore { id: next_store_id() }
    }
}

impl Default for ThreadStore {
    fn default() -> Self {
        Self::new()
    }
}

impl ContextStore for ThreadStore {
    fn with_stack(&self, f: &mut dyn FnMut(&mut ContextStack)) -> Result<(), ContextError> {
        THREAD_STACKS.with(|stacks| f(stacks.borrow_mut().entry(self.id).or_default()));
        Ok(())
    }
}

#[cfg(feature = "task-local")]
pub use task::{task_scope, TaskStore};

#[cfg(feature = "task-local")]
mod task {
    use super::*;
    use std::future::Future;

    tokio::task_local! {
        static TASK_STACKS: RefCell<HashMap<u64, ContextStack>>;
    }

    /// Runs `future` with its own, empty, task-local contexts. An actix or tokio
    /// server wraps each request in it so that concurrent requests never see each
    /// other's contexts (a spawned task starts outside any scope).
    pub async fn task_scope<F: Future>(future: F) -> F::Output {
        TASK_STACKS.scope(RefCell::new(HashMap::new()), future).await
    }

    /// A stack per tokio task, inside [`task_scope`].
    #[derive(Debug)]
    pub struct TaskStore {
        id: u64,
    }

    impl TaskStore {
        pub fn new() -> Self {
            TaskStore { id: next_store_id() }
        }
    }

    impl Default for TaskStore {
        fn default() -> Self {
            Self::new()
        }
    }

    impl ContextStore for TaskStore {
        fn with_stack(&self, f: &mut dyn FnMut(&mut ContextStack)) -> Result<(), ContextError> {
            TASK_STACKS.try_with(|stacks| f(stacks.borrow_mut().entry(self.id).or_default())).map_err(|_| ContextError::NoTaskScope)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn obj(v: Value) -> Fields {
        Fields::from_map(v.as_object().unwrap())
    }

    #[test]
    fn merge_order_later_wins() {
        let mut s = ContextStack::new();
        s.enter("a", obj(json!({"x": 1, "y": 1})));
        s.enter("b", obj(json!({"y": 2, "z": 2})));
        assert_eq!(s.resolve().to_value(), json!({"x": 1, "y": 2, "z": 2}));
        assert_eq!(s.resolve().keys().collect::<Vec<_>>(), ["x", "y", "z"]);
        s.exit("b").unwrap();
        assert_eq!(s.resolve().to_value(), json!({"x": 1, "y": 1}), "the merge is made again after an exit");
    }

    #[test]
    fn reentry_keeps_position() {
        let mut s = ContextStack::new();
        s.enter("a", obj(json!({"k": "a"})));
        s.enter("b", obj(json!({"k": "b"})));
        s.enter("a", obj(json!({"k": "a2", "only_a": true})));
        assert_eq!(s.names().collect::<Vec<_>>(), ["a", "b"]);
        // `b` was entered after `a`, so it still wins.
        assert_eq!(s.resolve()["k"], json!("b"));
        assert_eq!(s.resolve()["only_a"], json!(true));
    }

    #[test]
    fn a_deferred_context_is_built_once_when_resolved_and_never_if_not() {
        use std::sync::atomic::AtomicUsize;
        let builds = Arc::new(AtomicUsize::new(0));
        let deferred = |builds: &Arc<AtomicUsize>| -> DeferredContext {
            let builds = builds.clone();
            Arc::new(move || {
                builds.fetch_add(1, Ordering::SeqCst);
                obj(json!({"k": "deferred", "d": 1}))
            })
        };
        let mut s = ContextStack::new();
        s.enter("a", obj(json!({"k": "a", "a": 1})));
        s.enter_deferred("d", deferred(&builds));
        s.enter("z", obj(json!({"z": 1})));
        assert_eq!(builds.load(Ordering::SeqCst), 0, "entering builds nothing");
        assert_eq!(s.resolve().to_value(), json!({"k": "deferred", "a": 1, "d": 1, "z": 1}), "merged in entry order");
        s.enter("y", obj(json!({"y": 1})));
        assert_eq!(s.resolve()["d"], json!(1));
        assert_eq!(builds.load(Ordering::SeqCst), 1, "built once, though resolved twice with a change between");

        let unused = Arc::new(AtomicUsize::new(0));
        let mut s = ContextStack::new();
        s.enter_deferred("d", deferred(&unused));
        s.exit("d").unwrap();
        assert!(s.resolve().is_empty());
        assert_eq!(unused.load(Ordering::SeqCst), 0, "exited unresolved: never built");
    }

    #[test]
    fn exit_unknown_fails() {
        let mut s = ContextStack::new();
        assert_eq!(s.exit("nope"), Err(ContextError::UnknownContext("nope".into())));
        s.enter("a", Fields::new());
        assert!(s.exit("a").is_ok());
        assert!(s.exit("a").is_err());
    }

    #[test]
    fn thread_store_is_per_thread() {
        let store = Arc::new(ThreadStore::new());
        with_stack(&*store, |s| s.enter("main", obj(json!({"t": "main"})))).unwrap();
        let other = store.clone();
        let seen = std::thread::spawn(move || with_stack(&*other, |s| s.resolve()).unwrap()).join().unwrap();
        assert!(seen.is_empty());
        assert_eq!(with_stack(&*store, |s| s.resolve()).unwrap()["t"], json!("main"));
    }
}
