//! Course run keys found in page URLs: `/courses/<key>/…` (LMS) and
//! `/learning/course/<key>/…` (the learning MFE).

use alloc::borrow::{Cow, ToOwned};
use alloc::string::String;

/// A course run key found in a URL, with its organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseRef {
    /// The key as written, e.g. `course-v1:edX+DemoX+Demo_Course` or `edX/DemoX/Demo_Course`.
    pub course_id: String,
    /// The organisation part of the key, e.g. `edX`.
    pub org_id: String,
}

/// Finds the course run key in a page URL or path, as the LMS does for browser events.
///
/// The first `/courses/` or `/learning/course/` segment wins; a key that is not a
/// valid course run key yields `None`. Percent-encoded `+`, `:` and `/` are decoded.
pub fn course_from_url(url: &str) -> Option<CourseRef> {
    let path = strip_query(url);
    let (courses, learning) = (path.find("/courses/"), path.find("/learning/course/"));
    let rest = match (courses, learning) {
        (Some(a), Some(b)) if b < a => &path[b + "/learning/course/".len()..],
        (Some(a), _) => &path[a + "/courses/".len()..],
        (None, Some(b)) => &path[b + "/learning/course/".len()..],
        (None, None) => return None,
    };
    let decoded = percent_decode_key(rest);
    parse_key_prefix(&decoded)
}

/// Parses a whole string as a course run key (`courserun_key` of the legacy endpoint).
pub fn parse_course_key(key: &str) -> Option<CourseRef> {
    let found = parse_key_prefix(key)?;
    (found.course_id.len() == key.len()).then_some(found)
}

fn strip_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

fn percent_decode_key(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace("%2B", "+").replace("%2b", "+").replace("%3A", ":").replace("%3a", ":"))
}

/// Allowed characters of a key part, as Open edX's opaque keys allow them.
fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '~' | '.' | ':')
}

fn take_part(s: &str) -> &str {
    let end = s.find(|c: char| !is_key_char(c)).unwrap_or(s.len());
    &s[..end]
}

fn parse_key_prefix(s: &str) -> Option<CourseRef> {
    if let Some(body) = s.strip_prefix("course-v1:") {
        let org = take_part(body);
        let body = body[org.len()..].strip_prefix('+')?;
        let course = take_part(body);
        let body = body[course.len()..].strip_prefix('+')?;
        let run = take_part(body);
        if org.is_empty() || course.is_empty() || run.is_empty() {
            return None;
        }
        let len = "course-v1:".len() + org.len() + course.len() + run.len() + 2;
        return Some(CourseRef { course_id: s[..len].to_owned(), org_id: org.to_owned() });
    }
    // Old-style `Org/Course/Run`.
    let org = take_part(s);
    let body = s[org.len()..].strip_prefix('/')?;
    let course = take_part(body);
    let body = body[course.len()..].strip_prefix('/')?;
    let run = take_part(body);
    if org.is_empty() || course.is_empty() || run.is_empty() || org.contains(':') {
        return None;
    }
    let len = org.len() + course.len() + run.len() + 2;
    Some(CourseRef { course_id: s[..len].to_owned(), org_id: org.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(url: &str) -> Option<(String, String)> {
        course_from_url(url).map(|c| (c.course_id, c.org_id))
    }

    #[test]
    fn lms_and_mfe_urls() {
        let want = Some(("course-v1:edX+DemoX+Demo_Course".to_owned(), "edX".to_owned()));
        assert_eq!(found("https://lms.example.com/courses/course-v1:edX+DemoX+Demo_Course/courseware/abc/"), want);
        assert_eq!(found("/courses/course-v1:edX+DemoX+Demo_Course"), want);
        assert_eq!(found("https://apps.example.com/learning/course/course-v1:edX+DemoX+Demo_Course/block-v1:edX+DemoX+Demo_Course+type@sequential+block@1"), want);
        assert_eq!(found("https://apps.example.com/learning/course/course-v1%3AedX%2BDemoX%2BDemo_Course/home"), want);
        assert_eq!(found("/courses/course-v1:edX+DemoX+Demo_Course?x=/courses/other"), want);
    }

    #[test]
    fn old_style_keys() {
        assert_eq!(found("/courses/MITx/6.002x/2012_Fall/courseware"), Some(("MITx/6.002x/2012_Fall".into(), "MITx".into())));
    }

    #[test]
    fn no_course() {
        assert_eq!(found("https://lms.example.com/dashboard"), None);
        assert_eq!(found("/courses/"), None);
        assert_eq!(found("/courses/course-v1:edX+DemoX"), None);
        assert_eq!(found("/courses?q=/courses/a/b/c"), None);
    }

    #[test]
    fn whole_key() {
        assert_eq!(parse_course_key("course-v1:edX+DemoX+Demo_Course").unwrap().org_id, "edX");
        assert!(parse_course_key("course-v1:edX+DemoX+Demo_Course/extra").is_none());
        assert!(parse_course_key("nonsense").is_none());
    }
}
