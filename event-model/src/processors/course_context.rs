//! Adds `course_id` and `org_id` to the context from the page URL.

use crate::text::Json;

use crate::course::course_from_url;
use crate::processor::{ProcessError, Processor, Verdict};
use crate::Event;

/// Reads the page URL from a context field (`page` by default) and, when it names a
/// course run (`/courses/<key>/…` or `/learning/course/<key>/…`), sets `course_id` and
/// `org_id` in the context unless they are already set.
#[derive(Debug, Clone)]
pub struct CourseContextFromUrl {
    pub url_field: String,
}

impl Default for CourseContextFromUrl {
    fn default() -> Self {
        CourseContextFromUrl { url_field: "page".to_owned() }
    }
}

impl Processor for CourseContextFromUrl {
    fn name(&self) -> &str {
        "course_context"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        let context = event.context();
        let already_set = context.get_str("course_id").is_some_and(|s| !s.is_empty());
        if already_set {
            return Ok(Verdict::Keep);
        }
        let Some(found) = context.get_str(&self.url_field).and_then(|url| course_from_url(&url)) else {
            return Ok(Verdict::Keep);
        };
        let context = event.context_mut();
        context.insert("course_id", Json::str(&found.course_id));
        context.insert("org_id", found.org_id.as_deref().map_or(Json::NULL, Json::str));
        Ok(Verdict::Keep)
    }
}
