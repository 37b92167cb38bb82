//! The limits of one event, defined once: the browser SDK applies them before it
//! queues an event and the server applies them before it accepts one, so the browser
//! never queues what the server would refuse.
//!
//! * **type**: [`EventType`];
//! * **name**: required for tracking-log and track events; tracking-log events take
//!   `namespace.object.action` or a legacy name, track events the former
//!   ([`name_problem`]; what happens to a bad name is each side's name-validation
//!   mode);
//! * **data**: one JSON object, at most [`json::MAX_DEPTH`](super::json::MAX_DEPTH)
//!   deep, strings as JSON allows them (lone surrogates included), checked and scrubbed
//!   by [`json::rewrite`](super::json::rewrite);
//! * **size**: the event's JSON object, as sent in the batch, at most
//!   [`MAX_EVENT_BYTES`] bytes ([`size_problem`]).

use super::name::{check_name, is_legacy_name, NameProblem};

/// The default size limit of one event: bytes of its JSON object as sent.
pub const MAX_EVENT_BYTES: usize = 50_000;

/// The API type of an event, as the batch's `type` field names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `sendTrackingLogEvent`, `Logger.log`, server events: the research tracking log.
    TrackingLog,
    /// `sendTrackEvent`: Segment.
    Track,
    /// `sendPageEvent`: Segment.
    Page,
    /// `identifyAuthenticatedUser` / `identifyAnonymousUser`: Segment.
    Identify,
}

impl EventType {
    /// The `type` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::TrackingLog => "tracking_log",
            EventType::Track => "track",
            EventType::Page => "page",
            EventType::Identify => "identify",
        }
    }

    /// The type a `type` field names, if any.
    pub fn parse(text: &str) -> Option<EventType> {
        Some(match text {
            "tracking_log" => EventType::TrackingLog,
            "track" => EventType::Track,
            "page" => EventType::Page,
            "identify" => EventType::Identify,
            _ => return None,
        })
    }

    /// Whether events of this type must have a name.
    pub fn needs_name(self) -> bool {
        matches!(self, EventType::TrackingLog | EventType::Track)
    }
}

/// What is wrong with an event's name, if anything: [`NameProblem::Empty`] when a
/// type that needs a name has none; for tracking-log events anything that is neither
/// `namespace.object.action` nor a legacy name; for track events anything that is not
/// `namespace.object.action`. Page and identify names are free text.
pub fn name_problem(kind: EventType, name: Option<&str>) -> Option<NameProblem> {
    let name = name.filter(|n| !n.is_empty());
    match (kind, name) {
        (EventType::Page | EventType::Identify, _) => None,
        (_, None) => Some(NameProblem::Empty),
        (EventType::TrackingLog, Some(n)) => check_name(n).err().filter(|_| !is_legacy_name(n)),
        (EventType::Track, Some(n)) => check_name(n).err(),
    }
}

/// Why an event of `len` bytes is refused under the limit `max`, if it is.
pub fn size_problem(len: usize, max: usize) -> Option<TooLarge> {
    (len > max).then_some(TooLarge { len, max })
}

/// An event over the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub len: usize,
    pub max: usize,
}

impl TooLarge {
    pub const CODE: &'static str = "size_limit";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        for t in [EventType::TrackingLog, EventType::Track, EventType::Page, EventType::Identify] {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("screen"), None);
        assert!(EventType::Track.needs_name() && !EventType::Page.needs_name());
    }

    #[test]
    fn names_by_type() {
        assert_eq!(name_problem(EventType::TrackingLog, Some("seq_goto")), None);
        assert_eq!(name_problem(EventType::TrackingLog, Some("edx.ui.lms.link_clicked")), None);
        assert_eq!(name_problem(EventType::Track, Some("seq_goto")), Some(NameProblem::TooFewParts));
        assert_eq!(name_problem(EventType::TrackingLog, None), Some(NameProblem::Empty));
        assert_eq!(name_problem(EventType::Track, Some("")), Some(NameProblem::Empty));
        assert_eq!(name_problem(EventType::TrackingLog, Some("has space")), Some(NameProblem::BadPart));
        assert_eq!(name_problem(EventType::Page, None), None);
        assert_eq!(name_problem(EventType::Identify, Some("anything at all")), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(size_problem(MAX_EVENT_BYTES, MAX_EVENT_BYTES), None);
        assert_eq!(size_problem(MAX_EVENT_BYTES + 1, MAX_EVENT_BYTES), Some(TooLarge { len: 50_001, max: 50_000 }));
    }
}
