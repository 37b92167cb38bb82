//! Keeps events of some API types: tracking-log events apart from Segment's
//! `track`, `page` and `identify`.

use std::collections::HashSet;

use crate::processor::{Filter, ProcessError, Processor, Rejection, StrMembers, Verdict, ViewStep};
use crate::Event;

/// The type of events without a top-level `type`: `sendTrackingLogEvent` and
/// server-side events, bound for the research tracking log.
pub const TRACKING_LOG_TYPE: &str = "tracking_log";

/// The API type of an event: its top-level `type` (`track`, `page`, `identify`), or
/// [`TRACKING_LOG_TYPE`] when it has none.
pub fn event_type(event: &dyn StrMembers) -> std::borrow::Cow<'_, str> {
    event.str_member("type").unwrap_or(std::borrow::Cow::Borrowed(TRACKING_LOG_TYPE))
}

/// Keeps only events whose [`event_type`] is listed.
#[derive(Debug, Clone)]
pub struct EventTypes {
    keep: HashSet<String>,
}

impl EventTypes {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(keep: I) -> Self {
        EventTypes { keep: keep.into_iter().map(Into::into).collect() }
    }
}

impl Processor for EventTypes {
    fn name(&self) -> &str {
        "event_types"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        Ok(self.verdict(event))
    }

    fn on_view(&self) -> Option<ViewStep<'_>> {
        Some(ViewStep::Filter(self))
    }
}

impl Filter for EventTypes {
    fn verdict(&self, event: &dyn StrMembers) -> Verdict {
        if self.keep.contains(event_type(event).as_ref()) {
            Verdict::Keep
        } else {
            Verdict::Drop(Rejection::new("event_type_not_routed", "this branch does not take events of this type"))
        }
    }
}
