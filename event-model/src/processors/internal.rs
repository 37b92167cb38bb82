//! Internal BI events (`edx.bi.` by default): kept out of, or alone in, a branch.

use std::borrow::Cow;

use crate::processor::{Filter, ProcessError, Processor, Rejection, StrMembers, Verdict, ViewStep};
use crate::rules::name::has_internal_prefix;
use crate::{Event, UNKNOWN_EVENT_NAME};

/// The default prefix of internal business-intelligence events.
pub const DEFAULT_INTERNAL_PREFIX: &str = "edx.bi.";

/// What a branch does with internal events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InternalMode {
    /// Drop internal events (the research tracking log).
    #[default]
    Exclude,
    /// Keep only internal events (a BI branch).
    Only,
}

/// Recognizes internal events by name prefix and keeps them out of (or alone in) a branch.
#[derive(Debug, Clone)]
pub struct InternalEvents {
    pub prefix: String,
    pub mode: InternalMode,
}

impl Default for InternalEvents {
    fn default() -> Self {
        InternalEvents { prefix: DEFAULT_INTERNAL_PREFIX.to_owned(), mode: InternalMode::Exclude }
    }
}

impl InternalEvents {
    pub fn is_internal(&self, name: &str) -> bool {
        has_internal_prefix(name, &self.prefix)
    }
}

impl Processor for InternalEvents {
    fn name(&self) -> &str {
        "internal_events"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        Ok(self.verdict(event))
    }

    fn on_view(&self) -> Option<ViewStep<'_>> {
        Some(ViewStep::Filter(self))
    }
}

impl Filter for InternalEvents {
    fn verdict(&self, event: &dyn StrMembers) -> Verdict {
        let internal = self.is_internal(&event.str_member("name").unwrap_or(Cow::Borrowed(UNKNOWN_EVENT_NAME)));
        match (self.mode, internal) {
            (InternalMode::Exclude, true) => {
                Verdict::Drop(Rejection::new("internal_event", "internal events are excluded from this branch"))
            }
            (InternalMode::Only, false) => Verdict::Drop(Rejection::new("not_internal", "this branch takes internal events only")),
            _ => Verdict::Keep,
        }
    }
}
