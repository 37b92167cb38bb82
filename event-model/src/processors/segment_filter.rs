//! What goes to Segment: the browser's `track`, `page` and `identify` events, and
//! tracking-log or server events only when their name is on an allowlist (Open edX's
//! `EVENT_TRACKING_SEGMENTIO_EMIT_WHITELIST`, empty by default).

use std::collections::HashSet;

use crate::processor::{ProcessError, Processor, Rejection, Verdict};
use crate::processors::{event_type, TRACKING_LOG_TYPE};
use crate::Event;

/// The API types that are Segment's own.
pub const SEGMENT_TYPES: [&str; 3] = ["track", "page", "identify"];

/// Keeps Segment's API types, and tracking-log events whose name is allowed.
#[derive(Debug, Clone, Default)]
pub struct SegmentFilter {
    allowlist: HashSet<String>,
}

impl SegmentFilter {
    /// A filter that lets tracking-log events through when their name is in `allowlist`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(allowlist: I) -> Self {
        SegmentFilter { allowlist: allowlist.into_iter().map(Into::into).collect() }
    }

    /// Why `event` does not go to Segment, if it does not.
    pub fn check(&self, event: &Event) -> Option<Rejection> {
        match event_type(event).as_ref() {
            t if SEGMENT_TYPES.contains(&t) => None,
            TRACKING_LOG_TYPE if self.allowlist.contains(event.name().as_ref()) => None,
            TRACKING_LOG_TYPE => {
                Some(Rejection::new("not_on_segment_allowlist", "tracking-log event whose name is not on the Segment allowlist"))
            }
            _ => Some(Rejection::new("event_type_not_for_segment", "events of this type do not go to Segment")),
        }
    }
}

impl Processor for SegmentFilter {
    fn name(&self) -> &str {
        "segment_filter"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        Ok(match self.check(event) {
            None => Verdict::Keep,
            Some(why) => Verdict::Drop(why),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{Counters, Outcome, Router};
    use crate::text::{Fields, Json};

    fn event(name: &str, kind: Option<&str>) -> Event {
        let mut e = Event::new(name, Json::parse(r#"{"a":1}"#).unwrap(), Fields::new());
        if let Some(kind) = kind {
            e.fields_mut().insert("type", Json::str(kind));
        }
        e
    }

    #[test]
    fn segment_types_always_pass() {
        let filter = SegmentFilter::default();
        for kind in SEGMENT_TYPES {
            assert_eq!(filter.check(&event("edx.ui.thing.clicked", Some(kind))), None, "{kind}");
        }
    }

    #[test]
    fn tracking_log_events_need_the_allowlist() {
        let empty = SegmentFilter::default();
        assert_eq!(empty.check(&event("edx.course.enrollment.activated", None)).unwrap().reason, "not_on_segment_allowlist");
        let allow = SegmentFilter::new(["edx.course.enrollment.activated"]);
        assert_eq!(allow.check(&event("edx.course.enrollment.activated", None)), None);
        assert_eq!(allow.check(&event("edx.course.enrollment.activated", Some("tracking_log"))), None);
        assert_eq!(allow.check(&event("edx.course.enrollment.deactivated", None)).unwrap().reason, "not_on_segment_allowlist");
        // Exact names, as Open edX compares them: no prefixes.
        assert!(allow.check(&event("edx.course.enrollment", None)).is_some());
    }

    #[test]
    fn unknown_types_are_dropped() {
        let filter = SegmentFilter::new(["x.y.z"]);
        assert_eq!(filter.check(&event("x.y.z", Some("screen"))).unwrap().reason, "event_type_not_for_segment");
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let counters = Counters::new();
        let router = Router::builder()
            .path("root/segment")
            .counters(counters.clone())
            .processor(SegmentFilter::new(["edx.course.enrollment.activated"]))
            .build();
        assert!(router.process(event("edx.course.enrollment.activated", None)).is_ok());
        assert!(router.process(event("edx.ui.lms.link_clicked", Some("track"))).is_ok());
        assert!(router.process(event("edx.ui.lms.link_clicked", None)).is_err());
        assert!(router.process(event("edx.ui.lms.other", None)).is_err());
        assert_eq!(counters.get("segment_filter", Outcome::Dropped, "not_on_segment_allowlist"), 2);
    }

    #[cfg(feature = "config")]
    #[test]
    fn configured_in_toml() {
        let config = crate::config::RoutingConfig::from_toml(
            "[backends.segment]\nprocessors = [{ type = \"segment_filter\", allowlist = [\"edx.course.enrollment.activated\"] }]\n[backends.segment.backends.out]\ntype = \"segment\"\n",
        )
        .unwrap();
        let pipelines = config.pipelines(&Counters::new()).unwrap();
        let chain = &pipelines[0].chain;
        assert!(chain.process(event("edx.course.enrollment.activated", None)).is_ok());
        assert_eq!(chain.process(event("edx.ui.lms.link_clicked", None)).unwrap_err().reason, "not_on_segment_allowlist");
        let default = crate::config::RoutingConfig::from_toml("processors = [{ type = \"segment_filter\" }]").unwrap();
        let router = default.build(&mut |_| unreachable!()).unwrap();
        assert!(router.process(event("edx.course.enrollment.activated", None)).is_err(), "the allowlist is empty by default");
        assert!(crate::config::RoutingConfig::from_toml("processors = [{ type = \"segment_filter\", names = [] }]").is_err());
    }
}
