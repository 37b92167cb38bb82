//! The routing tree: branches of processors feeding named backends, each branch on
//! its own copy of the event, failures isolated, every drop and error counted.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::processor::{ProcessError, Processor, Rejection, Verdict, ViewStep};
use crate::processors::LegacyFieldMapping;
use crate::view::EventView;
use crate::Event;

/// A backend could not take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Where events go: a sink, or a nested [`Router`].
pub trait Backend: Send + Sync {
    /// Takes one event. The event is shared: a backend that changes it works on a copy.
    fn send(&self, event: &Event) -> Result<(), BackendError>;
}

impl<B: Backend + ?Sized> Backend for Arc<B> {
    fn send(&self, event: &Event) -> Result<(), BackendError> {
        (**self).send(event)
    }
}

/// What happened, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A processor dropped the event.
    Dropped,
    /// A processor kept the event with a warning.
    Warned,
    /// A processor failed; the chain went on.
    ProcessorError,
    /// A backend failed; its siblings still got the event.
    BackendError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Dropped => "dropped",
            Outcome::Warned => "warned",
            Outcome::ProcessorError => "processor_error",
            Outcome::BackendError => "backend_error",
        }
    }
}

/// One counter: where (branch path and processor or backend name), what, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterKey {
    /// The branch, e.g. `root/tracking_logs`.
    pub branch: String,
    /// The processor or backend name.
    pub stage: String,
    pub outcome: Outcome,
    /// The rejection reason code, or `error`.
    pub reason: String,
}

/// Counters shared by a whole routing tree; the server exports them as metrics.
#[derive(Debug, Default)]
pub struct Counters(Mutex<BTreeMap<CounterKey, u64>>);

impl Counters {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts one event for `stage` of `branch` (for stages outside a [`Router`]).
    pub fn record(&self, branch: &str, stage: &str, outcome: Outcome, reason: &str) {
        self.add(CounterKey { branch: branch.to_owned(), stage: stage.to_owned(), outcome, reason: reason.to_owned() });
    }

    fn add(&self, key: CounterKey) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(key).or_insert(0) += 1;
    }

    /// Every counter so far, sorted.
    pub fn snapshot(&self) -> Vec<(CounterKey, u64)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The sum of the counters with this outcome.
    pub fn total(&self, outcome: Outcome) -> u64 {
        self.snapshot().iter().filter(|(k, _)| k.outcome == outcome).map(|(_, v)| v).sum()
    }

    /// The count for one stage, outcome and reason, summed over branches.
    pub fn get(&self, stage: &str, outcome: Outcome, reason: &str) -> u64 {
        self.snapshot().iter().filter(|(k, _)| k.stage == stage && k.outcome == outcome && k.reason == reason).map(|(_, v)| v).sum()
    }
}

/// A routing branch: processors, then named backends called in sorted-name order.
pub struct Router {
    path: String,
    processors: Vec<Box<dyn Processor>>,
    backends: BTreeMap<String, Arc<dyn Backend>>,
    counters: Arc<Counters>,
}

impl Router {
    /// Starts a branch called `root`.
    pub fn builder() -> RouterBuilder {
        RouterBuilder { path: "root".into(), processors: Vec::new(), backends: BTreeMap::new(), counters: Counters::new() }
    }

    /// The counters of the tree this router belongs to.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The branch path, e.g. `root/tracking_logs`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Backend names in the order they are called.
    pub fn backend_names(&self) -> impl Iterator<Item = &str> {
        self.backends.keys().map(String::as_str)
    }

    /// Runs this branch's processors on `event`. Drops and errors are counted and
    /// logged (without event data); an error leaves the event as it was.
    pub fn process(&self, mut event: Event) -> Result<Event, Rejection> {
        for processor in &self.processors {
            let result = processor.process(&mut event);
            self.judge(processor.name(), result)?;
        }
        Ok(event)
    }

    /// Whether every processor of this branch runs on an [`EventView`].
    pub fn runs_on_views(&self) -> bool {
        self.processors.iter().all(|p| p.on_view().is_some())
    }

    /// Whether every processor of this branch only keeps or drops, changing nothing.
    pub fn only_filters(&self) -> bool {
        self.processors.iter().all(|p| matches!(p.on_view(), Some(ViewStep::Filter(_))))
    }

    /// [`Router::process`] on an event read in place from stored text, counted and
    /// logged the same way; check [`Router::runs_on_views`] first.
    pub fn process_view(&self, view: &mut EventView<'_>) -> Result<(), Rejection> {
        for processor in &self.processors {
            let result = match processor.on_view() {
                Some(ViewStep::Filter(filter)) => Ok(filter.verdict(view)),
                Some(ViewStep::LegacyFieldMapping) => {
                    LegacyFieldMapping::map_view(view);
                    Ok(Verdict::Keep)
                }
                None => Err(ProcessError("this processor does not run on stored text".into())),
            };
            self.judge(processor.name(), result)?;
        }
        Ok(())
    }

    /// Counts and logs what a processor decided; `Err` when it dropped the event.
    fn judge(&self, processor: &str, result: Result<Verdict, ProcessError>) -> Result<(), Rejection> {
        match result {
            Ok(Verdict::Keep) => {}
            Ok(Verdict::Warn(why)) => {
                tracing::warn!(branch = %self.path, processor, reason = why.reason, "{}", why.detail);
                self.count(processor, Outcome::Warned, why.reason);
            }
            Ok(Verdict::Drop(why)) => {
                tracing::debug!(branch = %self.path, processor, reason = why.reason, "event dropped");
                self.count(processor, Outcome::Dropped, why.reason);
                return Err(why);
            }
            Err(error) => {
                tracing::error!(branch = %self.path, processor, %error, "processor failed; event passed on unchanged");
                self.count(processor, Outcome::ProcessorError, "error");
            }
        }
        Ok(())
    }

    fn count(&self, stage: &str, outcome: Outcome, reason: &str) {
        self.counters.add(CounterKey { branch: self.path.clone(), stage: stage.to_owned(), outcome, reason: reason.to_owned() });
    }
}

impl Backend for Router {
    /// Processes a copy of `event` and gives the result to every backend; a failing
    /// backend is counted and logged and never stops the others.
    fn send(&self, event: &Event) -> Result<(), BackendError> {
        let event = if self.processors.is_empty() {
            Cow::Borrowed(event)
        } else {
            match self.process(event.clone()) {
                Ok(e) => Cow::Owned(e),
                Err(_) => return Ok(()),
            }
        };
        for (name, backend) in &self.backends {
            if let Err(error) = backend.send(&event) {
                tracing::error!(branch = %self.path, backend = %name, %error, "backend failed");
                self.count(name, Outcome::BackendError, "error");
            }
        }
        Ok(())
    }
}

/// Builds a [`Router`].
pub struct RouterBuilder {
    path: String,
    processors: Vec<Box<dyn Processor>>,
    backends: BTreeMap<String, Arc<dyn Backend>>,
    counters: Arc<Counters>,
}

impl RouterBuilder {
    /// Names the branch (its path in counters and logs).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Shares counters with the rest of a tree.
    pub fn counters(mut self, counters: Arc<Counters>) -> Self {
        self.counters = counters;
        self
    }

    /// Appends a processor.
    pub fn processor(mut self, processor: impl Processor + 'static) -> Self {
        self.processors.push(Box::new(processor));
        self
    }

    /// Appends a boxed processor.
    pub fn boxed_processor(mut self, processor: Box<dyn Processor>) -> Self {
        self.processors.push(processor);
        self
    }

    /// Adds a named backend (replacing one of the same name).
    pub fn backend(mut self, name: impl Into<String>, backend: impl Backend + 'static) -> Self {
        self.backends.insert(name.into(), Arc::new(backend));
        self
    }

    /// Adds a shared backend.
    pub fn shared_backend(mut self, name: impl Into<String>, backend: Arc<dyn Backend>) -> Self {
        self.backends.insert(name.into(), backend);
        self
    }

    pub fn build(self) -> Router {
        Router { path: self.path, processors: self.processors, backends: self.backends, counters: self.counters }
    }
}
