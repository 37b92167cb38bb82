//! The Google Analytics copy: `label` = course id, `nonInteraction` = 1.

use serde_json::Value;

use crate::processor::{ProcessError, Processor, Verdict};
use crate::Event;

/// Open edX's `GoogleAnalyticsProcessor`, for branches bound to Segment: adds
/// `label` (the context's `course_id`, when there is one) and `nonInteraction: 1`.
/// The routing tree gives the branch its own copy, so other branches never see them.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoogleAnalytics;

impl Processor for GoogleAnalytics {
    fn name(&self) -> &str {
        "google_analytics"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        let course_id = event.context().get("course_id").filter(|v| !v.is_null()).cloned();
        let map = event.as_map_mut();
        if let Some(course_id) = course_id {
            map.insert("label".to_owned(), course_id);
        }
        map.insert("nonInteraction".to_owned(), Value::from(1));
        Ok(Verdict::Keep)
    }
}
