//! Course run keys, read as the Open edX LMS reads them: in a URL with its
//! `COURSE_REGEX`, as a key with opaque-keys' `CourseKey.from_string`.
//!
//! The golden file `tests/fixtures/course_keys.jsonl`, written by the Python libraries
//! themselves, pins both on several thousand keys and URLs.

use std::string::{String, ToString};

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The course fields a key gives the tracking context, as the LMS computes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseRef {
    /// The key in its canonical form (`course-v1:edX+DemoX+Demo_Course`,
    /// `ccx-v1:…+ccx@3`, `edX/DemoX/Demo` for an old-style key); `""` for a v1 library,
    /// which is a course key but not a course.
    pub course_id: String,
    /// The organisation; `None` (`null` in the log) for a key that names only a
    /// version (`course-v1:version@…`).
    pub org_id: Option<String>,
}

/// The course of a page or request URL: the key after the first `/course/` or
/// `/courses/` segment that is not an API version (`/api/courses/v1/courses/<key>` finds
/// the key), parsed as [`parse_course_key`] parses it. A percent-encoded key is not
/// decoded, so it is no key, as in the LMS.
pub fn course_from_url(url: &str) -> Option<CourseRef> {
    parse_course_key(course_key_in_url(url)?)
}

/// What the LMS's `COURSE_REGEX` takes out of `url` as the course key, unparsed:
/// `^(.*?/course(s)?/)(?!v[0-9]+/[^/]+)(?P<course_id>[^/+]+(/|\+)[^/+]+(/|\+)[^/?]+)`.
pub fn course_key_in_url(url: &str) -> Option<&str> {
    // `.*?` does not cross a line break.
    let line = &url.as_bytes()[..url.bytes().position(|c| c == b'\n').unwrap_or(url.len())];
    for (at, _) in line.iter().enumerate().filter(|(_, &c)| c == b'/') {
        if !line[at..].starts_with(b"/course") {
            continue;
        }
        let rest = &url[at + "/course".len()..];
        let rest = match rest.strip_prefix("s/").or_else(|| rest.strip_prefix('/')) {
            Some(rest) => rest,
            None => continue,
        };
        if is_api_version(rest) {
            continue;
        }
        if let Some(len) = key_pattern_len(rest) {
            return Some(&rest[..len]);
        }
    }
    None
}

/// `v[0-9]+/[^/]+` at the start of `s`.
fn is_api_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].strip_prefix('/').is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

/// The length of `[^/+]+(/|\+)[^/+]+(/|\+)[^/?]+` at the start of `s`.
fn key_pattern_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    for _ in 0..2 {
        let run = b[i..].iter().take_while(|c| !matches!(c, b'/' | b'+')).count();
        if run == 0 || i + run >= b.len() {
            return None;
        }
        i += run + 1;
    }
    let run = b[i..].iter().take_while(|c| !matches!(c, b'/' | b'?')).count();
    (run > 0).then_some(i + run)
}

/// `CourseKey.from_string(key)` and the context fields the LMS takes from it; `None`
/// where Python raises `InvalidKeyError`.
///
/// Namespaced keys: `course-v1:` and `slashes:` (a course), `ccx-v1:` (a CCX course,
/// `ccx@<n>` required, its prefixes in any case), `library-v1:` (a library: no
/// `course_id`). Anything else falls back to the old `org/course/run` form.
pub fn parse_course_key(key: &str) -> Option<CourseRef> {
    let namespaced = key.split_once(':').and_then(|(namespace, rest)| match namespace {
        "course-v1" | "slashes" => Locator::parse(rest, Flavor::Course),
        "ccx-v1" => Locator::parse(rest, Flavor::Ccx),
        "library-v1" => Locator::parse(rest, Flavor::Library),
        _ => None,
    });
    match namespaced {
        Some(locator) => Some(locator.context()),
        None => deprecated(key),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Course,
    Ccx,
    Library,
}

/// The fields opaque-keys' locator pattern matched.
struct Locator<'a> {
    flavor: Flavor,
    org: Option<&'a str>,
    course: Option<&'a str>,
    run: Option<&'a str>,
    branch: Option<&'a str>,
    version: Option<String>,
    ccx: Option<&'a str>,
}

impl<'a> Locator<'a> {
    /// `(org+course(+run)?)?(branch@…)?(version@…)?(ccx@…)(type@…)?(block@…)?`, each part
    /// followed by a `+` that is not last, then the checks of the locator's constructor.
    fn parse(rest: &'a str, flavor: Flavor) -> Option<Self> {
        // At most org, course, run and one of each of the five `@` parts: more is no key.
        let mut segments = [""; 8];
        let mut count = 0;
        for segment in rest.split('+') {
            if segment.is_empty() || count == segments.len() {
                // `++`, a trailing `+`, nothing at all, or too many parts.
                return None;
            }
            segments[count] = segment;
            count += 1;
        }
        let segments = &segments[..count];
        let plain = segments.iter().take_while(|s| !s.as_bytes().contains(&b'@')).count();
        let (org, course, run) = match plain {
            0 => (None, None, None),
            2 => (Some(segments[0]), Some(segments[1]), None),
            3 => (Some(segments[0]), Some(segments[1]), Some(segments[2])),
            _ => return None,
        };
        if ![org, course, run].into_iter().flatten().all(|p| p.chars().all(is_id_char)) {
            return None;
        }
        let mut locator = Locator { flavor, org, course, run, branch: None, version: None, ccx: None };
        let order: &[&str] = match flavor {
            Flavor::Ccx => &["branch", "version", "ccx", "type", "block"],
            _ => &["branch", "version", "type", "block"],
        };
        let mut next = 0;
        for segment in &segments[plain..] {
            let (prefix, value) = segment.split_once('@')?;
            let slot = order[next..].iter().position(|p| prefix_is(flavor, prefix, p))? + next;
            next = slot + 1;
            let valid = match order[slot] {
                "version" => !value.is_empty() && value.chars().all(|c| is_version_char(flavor, c)),
                "ccx" => !value.is_empty() && value.chars().all(|c| c.general_category() == GeneralCategory::DecimalNumber),
                "block" if flavor != Flavor::Ccx => !value.is_empty() && value.chars().all(|c| is_id_char(c) || c == '%'),
                _ => !value.is_empty() && value.chars().all(is_id_char),
            };
            if !valid {
                return None;
            }
            match order[slot] {
                "branch" => locator.branch = Some(value),
                // An ObjectId: exactly 24 hex digits, written in lower case.
                "version" if value.len() == 24 => locator.version = Some(value.to_ascii_lowercase()),
                "version" => return None,
                "ccx" => locator.ccx = Some(value),
                // Block parts belong to usage keys; a course key ignores them.
                _ => {}
            }
        }
        if flavor == Flavor::Ccx && locator.ccx.is_none() {
            return None;
        }
        let complete = match flavor {
            Flavor::Library => locator.org.is_some() && locator.course.is_some(),
            _ => locator.org.is_some() && locator.course.is_some() && locator.run.is_some(),
        };
        (complete || locator.version.is_some()).then_some(locator)
    }

    fn context(&self) -> CourseRef {
        let org_id = self.org.map(str::to_string);
        if self.flavor == Flavor::Library {
            return CourseRef { course_id: String::new(), org_id };
        }
        let mut course_id = String::with_capacity(64);
        course_id.push_str(match self.flavor {
            Flavor::Ccx => "ccx-v1:",
            _ => "course-v1:",
        });
        let mut parts = 0;
        let mut part = |course_id: &mut String, prefix: &str, value: &str| {
            if parts > 0 {
                course_id.push('+');
            }
            parts += 1;
            course_id.push_str(prefix);
            course_id.push_str(value);
        };
        if let (Some(org), Some(course), Some(run)) = (self.org, self.course, self.run) {
            part(&mut course_id, "", org);
            part(&mut course_id, "", course);
            part(&mut course_id, "", run);
            if let Some(branch) = self.branch {
                part(&mut course_id, "branch@", branch);
            }
        }
        if let Some(version) = &self.version {
            part(&mut course_id, "version@", version);
        }
        if let Some(ccx) = self.ccx {
            // After the namespace's colon too, as the original joins it.
            course_id.push_str("+ccx@");
            course_id.push_str(ccx);
        }
        CourseRef { course_id, org_id }
    }
}

/// The old `org/course/run` form: exactly two slashes, org and course not empty, every
/// part made of word characters, `.`, `%` and `-` (the run may be empty).
fn deprecated(key: &str) -> Option<CourseRef> {
    let mut parts = key.split('/');
    let (org, course, run) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || org.is_empty() || course.is_empty() {
        return None;
    }
    let allowed = |p: &str| p.chars().all(|c| is_word_char(c) || matches!(c, '.' | '%' | '-'));
    (allowed(org) && allowed(course) && allowed(run)).then(|| CourseRef { course_id: key.to_string(), org_id: Some(org.to_string()) })
}

fn prefix_is(flavor: Flavor, prefix: &str, want: &str) -> bool {
    match flavor {
        // The CCX pattern is compiled with IGNORECASE.
        Flavor::Ccx => prefix.eq_ignore_ascii_case(want),
        _ => prefix == want,
    }
}

fn is_version_char(flavor: Flavor, c: char) -> bool {
    match flavor {
        Flavor::Ccx => c.is_ascii_hexdigit(),
        _ => matches!(c, 'a'..='f' | '0'..='9'),
    }
}

/// opaque-keys' `ALLOWED_ID_CHARS`: `[\w\-~.:]`.
fn is_id_char(c: char) -> bool {
    is_word_char(c) || matches!(c, '-' | '~' | '.' | ':')
}

/// Python's `\w` on `str`: `_` and what `str.isalnum()` accepts (letters, and
/// numbers of every kind), which is not Rust's `is_alphanumeric` (that also takes
/// combining vowel signs such as Devanagari `ि`).
fn is_word_char(c: char) -> bool {
    use GeneralCategory::*;
    if c.is_ascii() {
        // The common case, without the table lookup: ASCII letters and digits.
        return c == '_' || c.is_ascii_alphanumeric();
    }
    matches!(
        c.general_category(),
        UppercaseLetter | LowercaseLetter | TitlecaseLetter | ModifierLetter | OtherLetter | DecimalNumber | LetterNumber | OtherNumber
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(url: &str) -> Option<(String, Option<String>)> {
        course_from_url(url).map(|c| (c.course_id, c.org_id))
    }

    #[test]
    fn lms_and_mfe_urls() {
        let want = Some(("course-v1:edX+DemoX+Demo_Course".into(), Some("edX".into())));
        assert_eq!(found("https://lms.example.com/courses/course-v1:edX+DemoX+Demo_Course/courseware/abc/"), want);
        assert_eq!(found("https://apps.example.com/learning/course/course-v1:edX+DemoX+Demo_Course/home"), want);
        assert_eq!(found("https://lms.example.com/api/courses/v1/courses/course-v1:edX+DemoX+Demo_Course/"), want);
        // Percent-encoded keys are not decoded, by the LMS either.
        assert_eq!(found("https://apps.example.com/learning/course/course-v1%3AedX%2BDemoX%2BDemo_Course/home"), None);
    }

    #[test]
    fn keys() {
        let key = |k: &str| parse_course_key(k).map(|c| (c.course_id, c.org_id));
        assert_eq!(key("ccx-v1:edX+DemoX+Demo+CCX@3"), Some(("ccx-v1:edX+DemoX+Demo+ccx@3".into(), Some("edX".into()))));
        assert_eq!(key("library-v1:edX+lib"), Some(("".into(), Some("edX".into()))));
        assert_eq!(key("course-v1:version@519665f6223ebd6980884f2b"), Some(("course-v1:version@519665f6223ebd6980884f2b".into(), None)));
        assert_eq!(key("MITx/6.002x/2012_Fall"), Some(("MITx/6.002x/2012_Fall".into(), Some("MITx".into()))));
        assert_eq!(key("course-v1:IITx+हिंदी+2024"), None);
        assert_eq!(key("course-v1:edX+DemoX"), None);
    }

    #[test]
    fn every_part_at_once_and_one_too_many() {
        // What opaque-keys 3 with edx-ccx-keys gives for each.
        let key = |k: &str| parse_course_key(k).map(|c| (c.course_id, c.org_id));
        let version = "version@519665f6223ebd6980884f2b";
        let all = format!("ccx-v1:o+c+r+branch@b+{version}+ccx@3");
        assert_eq!(key(&format!("{all}+type@t+block@b")), Some((all.clone(), Some("o".into()))), "eight parts");
        assert_eq!(key(&format!("{all}+type@t+block@b+x")), None, "nine parts");
        assert_eq!(
            key(&format!("course-v1:o:+c:+r:+branch@b+{version}+type@t+block@b")),
            Some((format!("course-v1:o:+c:+r:+branch@b+{version}"), Some("o:".into()))),
            "parts that end in a colon"
        );
        assert_eq!(key(&format!("ccx-v1:{version}+ccx@3")), Some((format!("ccx-v1:{version}+ccx@3"), None)));
    }
}
