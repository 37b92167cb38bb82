//! The processor contract: keep, change, drop, or fail.

use std::borrow::Cow;
use std::fmt;

use crate::view::EventView;
use crate::Event;

/// What a processor decided about an event it may have changed in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the (possibly changed) event on.
    Keep,
    /// Pass it on, but count and log a warning (e.g. a name in `warn` mode).
    Warn(Rejection),
    /// Stop the event in this branch (Python's `EventEmissionExit`); counted by reason.
    Drop(Rejection),
}

/// Why an event was dropped or flagged: a stable reason code for metrics and API
/// replies, and a sentence for people. Neither may hold event data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// A short code, e.g. `size_limit`, `name_not_allowed`.
    pub reason: &'static str,
    /// A human-readable explanation.
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Rejection { reason, detail: detail.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// A processor failed; the error is logged and counted, and the chain goes on with
/// the event as it was. Processors must not leave half-made changes when failing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProcessError(pub String);

/// A step of a routing branch.
pub trait Processor: Send + Sync {
    /// The name used in metrics and logs, e.g. `size_limit`.
    fn name(&self) -> &str;

    /// Looks at the event, may change it in place, and decides its fate.
    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError>;

    /// What this processor does in terms that run on an event read in place from
    /// stored text, when it can (a sink whose processors all can writes its lines
    /// without building events); `None` by default.
    fn on_view(&self) -> Option<ViewStep<'_>> {
        None
    }
}

/// A processor's work on an [`EventView`].
pub enum ViewStep<'a> {
    /// Keeps or drops by the event's top-level members, changing nothing.
    Filter(&'a dyn Filter),
    /// The legacy field mapping ([`LegacyFieldMapping::map_view`](crate::processors::LegacyFieldMapping::map_view)).
    LegacyFieldMapping,
}

/// A processor that only keeps or drops, reading top-level string members: it is the
/// same code for an [`Event`] and an [`EventView`].
pub trait Filter: Sync {
    fn verdict(&self, event: &dyn StrMembers) -> Verdict;
}

/// An event's top-level members that are strings.
pub trait StrMembers {
    fn str_member(&self, key: &str) -> Option<Cow<'_, str>>;
}

impl StrMembers for Event {
    fn str_member(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get_str(key)
    }
}

impl StrMembers for EventView<'_> {
    fn str_member(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get_str(key)
    }
}

/// A processor made of a closure.
pub struct FnProcessor<F> {
    name: String,
    f: F,
}

/// Wraps `f` as a processor called `name`.
pub fn processor_fn<F>(name: impl Into<String>, f: F) -> FnProcessor<F>
where
    F: Fn(&mut Event) -> Result<Verdict, ProcessError> + Send + Sync,
{
    FnProcessor { name: name.into(), f }
}

impl<F> Processor for FnProcessor<F>
where
    F: Fn(&mut Event) -> Result<Verdict, ProcessError> + Send + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        (self.f)(event)
    }
}
