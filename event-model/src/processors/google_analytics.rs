//! The Google Analytics copy: `label` = course id, `nonInteraction` = 1.

use crate::processor::{ProcessError, Processor, Verdict};
use crate::text::{Json, Text};
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
        let fields = event.fields_mut();
        if let Some(course_id) = course_id {
            fields.insert(Text::from_static("label"), course_id);
        }
        fields.insert(Text::from_static("nonInteraction"), Json::from_checked(Text::from_static("1")));
        Ok(Verdict::Keep)
    }
}
