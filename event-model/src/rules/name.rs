//! Event-name validation: `namespace.object.action` and the legacy forms.

/// Why a name is not a valid `namespace.object.action` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// Fewer than three dot-separated parts (`namespace.object.action`).
    TooFewParts,
    /// A part is empty, does not start with a lowercase letter, or holds a character
    /// other than `a-z`, `0-9` and `_`.
    BadPart,
    /// Longer than [`MAX_NAME_LEN`].
    TooLong,
}

/// Longest accepted event name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

impl NameProblem {
    /// A short reason code, stable for metrics and API responses.
    pub fn code(self) -> &'static str {
        match self {
            NameProblem::Empty => "name_empty",
            NameProblem::TooFewParts => "name_too_few_parts",
            NameProblem::BadPart => "name_bad_part",
            NameProblem::TooLong => "name_too_long",
        }
    }

    /// A sentence a developer can act on.
    pub fn message(self) -> &'static str {
        match self {
            NameProblem::Empty => "event name is empty",
            NameProblem::TooFewParts => "event name must have the form namespace.object.action (at least three dot-separated parts)",
            NameProblem::BadPart => "each part of an event name must start with a lowercase letter and hold only a-z, 0-9 and _",
            NameProblem::TooLong => "event name is longer than 255 bytes",
        }
    }
}

/// Checks a modern name: `namespace.object.action`, e.g. `edx.course.enrollment.activated`.
pub fn check_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameProblem::TooLong);
    }
    // One pass over the bytes: each part is a lowercase letter, then `a-z0-9_`.
    let (mut parts, mut part_starts) = (1, true);
    for &b in name.as_bytes() {
        match b {
            b'.' if !part_starts => {
                parts += 1;
                part_starts = true;
            }
            b'a'..=b'z' => part_starts = false,
            b'0'..=b'9' | b'_' if !part_starts => {}
            _ => return Err(NameProblem::BadPart),
        }
    }
    if part_starts {
        return Err(NameProblem::BadPart);
    }
    if parts < 3 {
        return Err(NameProblem::TooFewParts);
    }
    Ok(())
}

/// Names the Python platform still emits and legacy endpoints must accept:
/// single words such as `seq_goto`, `page_close`, `play_video`, and URL paths such
/// as `/courses/course-v1:edX+DemoX+Demo/xblock/.../handler/...`.
pub fn is_legacy_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 4096 {
        return false;
    }
    if name.starts_with('/') {
        return !name.chars().any(|c| c.is_control() || c.is_whitespace());
    }
    name.as_bytes().split(|&b| b == b'.').all(is_snake_word) || is_loose_legacy_word(name)
}

/// Whether `prefix` marks `name` as an internal (BI) event, e.g. `edx.bi.`.
pub fn has_internal_prefix(name: &str, prefix: &str) -> bool {
    !prefix.is_empty() && name.starts_with(prefix)
}

fn is_snake_word(part: &[u8]) -> bool {
    let mut bytes = part.iter().copied();
    matches!(bytes.next(), Some(b'a'..=b'z')) && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// Older browser events use mixed case and dashes (`problem_check`, `textbook.pdf.page.navigated`,
/// `edx.video.closed_captions.shown`, `oppia.exploration.loaded`), so legacy mode allows
/// ASCII letters, digits, `_`, `-` and `.`.
fn is_loose_legacy_word(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_names() {
        assert_eq!(check_name("edx.course.enrollment.activated"), Ok(()));
        assert_eq!(check_name("edx.ui.lms.link_clicked"), Ok(()));
        assert_eq!(check_name(""), Err(NameProblem::Empty));
        assert_eq!(check_name("seq_goto"), Err(NameProblem::TooFewParts));
        assert_eq!(check_name("edx.video"), Err(NameProblem::TooFewParts));
        assert_eq!(check_name("edx..played"), Err(NameProblem::BadPart));
        assert_eq!(check_name("edx.Video.played"), Err(NameProblem::BadPart));
        assert_eq!(check_name("edx.video.played "), Err(NameProblem::BadPart));
        assert_eq!(check_name("1dx.video.played"), Err(NameProblem::BadPart));
        assert_eq!(check_name(&"a.b.".repeat(100)), Err(NameProblem::TooLong));
    }

    proptest::proptest! {
        #[test]
        fn one_pass_names_match_their_parts(parts in proptest::collection::vec("[a-z][a-z0-9_]{0,3}|[a-z0-9_A -]{0,3}", 0..5)) {
            let name = parts.join(".");
            let by_parts = if name.is_empty() {
                Err(NameProblem::Empty)
            } else if !name.as_bytes().split(|&b| b == b'.').all(is_snake_word) {
                Err(NameProblem::BadPart)
            } else if name.split('.').count() < 3 {
                Err(NameProblem::TooFewParts)
            } else {
                Ok(())
            };
            proptest::prop_assert_eq!(check_name(&name), by_parts);
        }
    }

    #[test]
    fn legacy_names() {
        for name in [
            "seq_goto",
            "page_close",
            "play_video",
            "problem_check",
            "/courses/course-v1:edX+DemoX+Demo/xblock/block-v1:x/handler/xmodule_handler/problem_get",
            "edx.video.closed_captions.shown",
            "Oppia.exploration-loaded",
        ] {
            assert!(is_legacy_name(name), "{name}");
        }
        for name in ["", "has space", "/path with space", "ünïcode", "-dash"] {
            assert!(!is_legacy_name(name), "{name}");
        }
    }

    #[test]
    fn internal_prefix() {
        assert!(has_internal_prefix("edx.bi.user.account.registered", "edx.bi."));
        assert!(!has_internal_prefix("edx.bio.thing.happened", "edx.bi."));
        assert!(!has_internal_prefix("edx.bi.x.y", ""));
    }
}
